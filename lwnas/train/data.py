"""Image data sets for proxy training and retraining: decoded once into memory when small, streamed from disk
when large.

Formats read (nothing is ever downloaded), with the splits each can hold (train, val, test):
- `synthetic`: a learnable built-in set (oriented colour gratings, one orientation and tint per class)
  generated on the fly from a seed, all three splits; the embedded default of `lwnas search`.
- a CIFAR-10/100 python tarball (`cifar-10-python.tar.gz`, `cifar-100-python.tar.gz`): train and test;
- an ImageFolder tree (`ROOT/train/<class>/*.jpg`, optional `ROOT/val/...` and `ROOT/test/...`), or a folder of
  class folders alone (`ROOT/<class>/*.jpg`), which is the train split;
- a PaddleClas list layout (`ROOT/train_list.txt`, optional `val_list.txt` and `test_list.txt`, lines
  `relative/path.jpg label`).
A split the data set lacks raises MissingSplit; lwnas.train.splits carves a validation split out of train instead.

Small folders and lists are decoded and resized once (short side to resolution/0.875, centre-cropped square)
and kept as uint8 arrays. Above STREAM_ABOVE_BYTES of decoded pixels (or with stream=True) only the file list is
kept, and each image is read, decoded and augmented when its batch is drawn, in the DataLoader's workers, so
memory does not grow with the set. Either way augmentation runs per item, seeded by (seed, epoch, index).
"""
from __future__ import annotations

import io
import pickle
import sys
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import LwnasError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".gif", ".tif", ".tiff")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
STREAM_ABOVE_BYTES = 2 * 1024 ** 3  # decoded size of a folder or list set above which it is streamed from disk


def stored_side(resolution: int) -> int:
    """Side of the square an image is stored and centre-cropped at: resolution / 0.875, the usual eval crop."""
    return round(resolution / 0.875)


@dataclass
class ImageSet:
    """Images with integer labels and class names: decoded (N, H, W, 3 uint8) in `images`, or streamed from
    `paths` (images None), each file decoded when it is drawn."""

    images: np.ndarray | None
    labels: np.ndarray
    classes: list[str]
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (with --skip-bad-images)
    paths: list[str] | None = None  # the files of a streamed set

    def __len__(self):
        return len(self.labels)

    @property
    def streamed(self) -> bool:
        return self.images is None

    def image(self, index: int) -> np.ndarray:
        """Image `index`: stored (H, W, 3) uint8, or read from its file as a full-size PIL image. Streamed files
        passed a header check when the set was listed; one that still fails to decode (truncated data) is replaced
        by the next readable image with a warning, since an error raised inside a DataLoader worker hangs or
        garbles the loader instead of reaching the user."""
        if not self.streamed:
            return self.images[index]
        for step in range(len(self)):
            path = self.paths[(index + step) % len(self)]
            try:
                return _open(path, lambda img: img.convert("RGB"))
            except LwnasError as err:
                print(f"lwnas: warning: {err}; the next image is used in its place", file=sys.stderr)
        raise LwnasError("no readable images in the data set")

    def skipped_note(self, other: "ImageSet") -> str:
        """One line on the images --skip-bad-images left out of this split and `other`, or '' if none."""
        skipped = self.skipped + other.skipped
        if not skipped:
            return ""
        return f"--skip-bad-images: skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}"

    def split(self, fraction: float, seed: int = 0) -> tuple["ImageSet", "ImageSet"]:
        """(rest, held out): `fraction` of every class's images held out, drawn by `seed`. A class of n >= 2
        images keeps at least one on each side; a class of one image stays in the rest."""
        rng = np.random.default_rng(seed)
        held = []
        for label in np.unique(self.labels):
            members = np.flatnonzero(self.labels == label)
            count = min(max(round(fraction * len(members)), 1), len(members) - 1)
            held.extend(rng.permutation(members)[:count])
        held_mask = np.zeros(len(self), dtype=bool)
        held_mask[held] = True
        return self._take(np.flatnonzero(~held_mask)), self._take(np.flatnonzero(held_mask))

    def _take(self, keep: np.ndarray) -> "ImageSet":
        if self.streamed:
            return replace(self, labels=self.labels[keep], paths=[self.paths[i] for i in keep])
        return replace(self, images=self.images[keep], labels=self.labels[keep])

    def subset(self, n: int | None, seed: int = 0) -> "ImageSet":
        """At most n images, the same classes in the same proportions for a given seed."""
        if n is None or n >= len(self):
            return self
        return self._take(np.sort(np.random.default_rng(seed).permutation(len(self))[:n]))


SPLITS = ("train", "val", "test")


class MissingSplit(LwnasError):
    """The data set holds no such split (a CIFAR tarball has no val, a folder may have no test/)."""


def native_resolution(source: str, largest: int) -> int:
    """The resolution to train at by default: 32 for the synthetic set and CIFAR-layout tarballs; for folders and
    lists, the short side of the first training image rounded up to a multiple of 8 (at least 32), at most
    `largest` (the network's own), so that 28-pixel digits are not blown up to 224."""
    path = Path(source)
    if source == "synthetic" or path.is_file():
        return 32
    listing = path / "train_list.txt"
    root = path / "train" if (path / "train").is_dir() else path
    if listing.is_file():
        first = next((root / line.rsplit(maxsplit=1)[0] for line in listing.read_text().splitlines() if line.strip()),
                     None)
    else:
        first = next((p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES), None)
    if first is None or not first.is_file():
        return largest
    short = min(_probe(first))
    return min(largest, max(32, -(-short // 8) * 8))


def describe_formats() -> str:
    return ("'synthetic', a CIFAR python tarball (*.tar.gz), an ImageFolder root with train/ (and optionally val/ "
            "and test/) or a folder of class folders, or a folder with train_list.txt (and optionally "
            "val_list.txt and test_list.txt)")


def load(source: str, split: str, resolution: int, *, skip_bad: bool = False, seed: int = 0,
         synthetic_size: int | None = None, stream: bool | None = None) -> ImageSet:
    """The `split` ('train', 'val' or 'test') of a data set named by `source`; see the module docstring. Folders
    and lists are streamed when `stream` is True, or when None and they would decode to more than
    STREAM_ABOVE_BYTES."""
    if split not in SPLITS:
        raise ValueError(split)
    if source == "synthetic":
        n = synthetic_size or (1200 if split == "train" else 400)
        return synthetic(n, resolution, seed=seed + 10_000 * SPLITS.index(split))
    path = Path(source)
    if not path.exists():
        raise LwnasError(f"data set not found: {source}; expected {describe_formats()}")
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return cifar_tarball(path, split)
    if path.is_dir() and (path / "train_list.txt").is_file():
        if not (path / f"{split}_list.txt").is_file():
            raise MissingSplit(f"{source}: no {split}_list.txt")
        return list_file(path, path / f"{split}_list.txt", resolution, skip_bad, stream)
    if path.is_dir() and (path / "train").is_dir():
        if not (path / split).is_dir():
            raise MissingSplit(f"{source}: no {split}/ folder")
        return image_folder(path / split, resolution, skip_bad, stream)
    if path.is_dir() and _class_folders(path):  # a bare folder of class folders: all of it is training data
        if split != "train":
            raise MissingSplit(f"{source}: a folder of class folders holds the train split only")
        return image_folder(path, resolution, skip_bad, stream)
    raise LwnasError(f"{source}: no train split found; expected {describe_formats()}")


def _class_folders(path: Path) -> bool:
    """`path` holds folders (classes) and no images of its own, and its first folder holds an image."""
    folders = sorted(p for p in path.iterdir() if p.is_dir())
    return bool(folders) and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folders[0].rglob("*"))


def synthetic(n: int, resolution: int, classes: int = 10, seed: int = 0) -> ImageSet:
    """Oriented sinusoidal gratings: class c has orientation c*pi/classes, its own frequency and tint;
    phase, contrast, shift and pixel noise are random. A small network learns it in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    ys, xs = np.mgrid[0:resolution, 0:resolution].astype(np.float32) / resolution
    tints = np.random.default_rng(12345).uniform(0.4, 1.0, size=(classes, 3)).astype(np.float32)
    images = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    for i, c in enumerate(labels):
        angle = np.pi * c / classes + rng.normal(0, 0.05)
        freq = (3 + 2 * (c % 3)) * 2 * np.pi
        wave = np.sin(freq * (xs * np.cos(angle) + ys * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
        img = 0.5 + 0.35 * rng.uniform(0.6, 1.0) * wave[..., None] * tints[c]
        img = img + rng.normal(0, 0.08, size=img.shape)
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return ImageSet(images, labels.astype(np.int64), [f"class{c}" for c in range(classes)])


def cifar_tarball(path: Path, split: str) -> ImageSet:
    """CIFAR-10 or CIFAR-100 from the official python tarball the user pointed at: its train or test split."""
    if split == "val":
        raise MissingSplit(f"{path}: a CIFAR tarball holds train and test batches, no validation split")
    try:
        tar = tarfile.open(path)
    except (tarfile.TarError, OSError) as err:
        raise LwnasError(f"{path}: not a readable CIFAR tarball ({err})") from None
    with tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        if "batches.meta" in members:  # CIFAR-10
            names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
            meta, label_key, class_key = "batches.meta", b"labels", b"label_names"
        elif "meta" in members and "train" in members:  # CIFAR-100
            names, meta, label_key, class_key = ["train" if split == "train" else "test"], "meta", \
                b"fine_labels", b"fine_label_names"
        else:
            raise LwnasError(f"{path}: not a CIFAR-10/100 python tarball (no batches.meta or meta file)")
        missing = [n for n in names if n not in members]
        if missing:
            raise LwnasError(f"{path}: CIFAR tarball lacks {', '.join(missing)}")
        classes = [c.decode() for c in _unpickle(tar, members[meta], path)[class_key]]
        images, labels = [], []
        for name in names:
            batch = _unpickle(tar, members[name], path)
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.extend(batch[label_key])
    return ImageSet(np.concatenate(images), np.asarray(labels, dtype=np.int64), classes)


def _unpickle(tar, member, path):
    try:
        return pickle.load(io.BytesIO(tar.extractfile(member).read()), encoding="bytes")
    except Exception as err:  # a damaged member: report the file, not pickle's internals
        raise LwnasError(f"{path}: cannot read {member.name} ({type(err).__name__})") from None


def image_folder(root: Path, resolution: int, skip_bad: bool, stream: bool | None = None) -> ImageSet:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise LwnasError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    files = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise LwnasError(f"{root / name}: class folder has no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)")
        files += [(p, label) for p in found]
    return _files(files, classes, resolution, skip_bad, stream)


def list_file(root: Path, listing: Path, resolution: int, skip_bad: bool, stream: bool | None = None) -> ImageSet:
    files = []
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
            raise LwnasError(f"{listing}:{number}: expected 'relative/path.jpg LABEL', got {line!r}")
        files.append((root / parts[0], int(parts[1])))
    if not files:
        raise LwnasError(f"{listing}: the list is empty")
    n_classes = max(label for _, label in files) + 1
    names_file = root / "label_list.txt"
    classes = [f"class{i}" for i in range(n_classes)]
    if names_file.is_file():  # PaddleClas `label_list.txt`: "index name" per line
        for line in names_file.read_text().splitlines():
            index, _, name = line.partition(" ")
            if index.isdigit() and int(index) < n_classes and name.strip():
                classes[int(index)] = name.strip()
    return _files(files, classes, resolution, skip_bad, stream)


def _files(files, classes, resolution: int, skip_bad: bool, stream: bool | None) -> ImageSet:
    """Decoded into memory, or (large sets, or stream=True) kept as a file list that is read per batch."""
    if stream is None:
        stream = len(files) * stored_side(resolution) ** 2 * 3 > STREAM_ABOVE_BYTES
    if not stream:
        return _decode(files, classes, resolution, skip_bad)
    kept, skipped = [], []
    for path, label in files:  # headers only: what decoding would reject at once, reported now, not mid-epoch
        try:
            _probe(path)
            kept.append((path, label))
        except LwnasError:
            if not skip_bad:
                raise
            skipped.append(str(path))
    if not kept:
        raise LwnasError("no readable images in the data set")
    return ImageSet(None, np.asarray([label for _, label in kept], dtype=np.int64), classes, skipped,
                    paths=[str(path) for path, _ in kept])


def _decode(files, classes, resolution: int, skip_bad: bool) -> ImageSet:
    from PIL import Image

    side = stored_side(resolution)
    images, labels, skipped = [], [], []
    for path, label in files:
        try:
            images.append(_square(Image.fromarray(_read(path)), side))
        except LwnasError:
            if not skip_bad:
                raise
            skipped.append(str(path))
            continue
        labels.append(label)
    if not images:
        raise LwnasError("no readable images in the data set")
    return ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64), classes, skipped)


def _read(path) -> np.ndarray:
    """One image file as (H, W, 3) uint8 RGB; LwnasError naming the file if it cannot be read."""
    return _open(path, lambda img: np.asarray(img.convert("RGB"), dtype=np.uint8))


def _probe(path):
    """The file's header parses as an image (no pixels decoded); LwnasError naming the file if not."""
    return _open(path, lambda img: img.size)


def _open(path, use):
    from PIL import Image

    try:
        with Image.open(path) as img:
            return use(img)
    except (OSError, ValueError) as err:
        problem = "image file not found" if isinstance(err, FileNotFoundError) else \
            f"unreadable image ({err.__class__.__name__})"
        raise LwnasError(f"{path}: {problem}; fix or remove it, or pass --skip-bad-images") from None


def _square(img, side: int) -> np.ndarray:
    from PIL import Image

    w, h = img.size
    scale = side / min(w, h)
    img = img.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - side) // 2, (h - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)), dtype=np.uint8)


class Augmented:
    """paddle.io.Dataset view of an ImageSet at `resolution`: training crops and flips, or a centre crop.

    Sets stored at the target size (CIFAR at 32, synthetic) use pad-and-crop; larger ones a random
    resized crop. Returns normalized CHW float32 and the label.
    """

    def __init__(self, data: ImageSet, resolution: int, train: bool, seed: int = 0, crop_scale: float = 0.25,
                 rand_augment: float = 0.0):
        self.data, self.resolution, self.train, self.crop_scale = data, resolution, train, crop_scale
        self.rand_augment = rand_augment  # RandAugment magnitude after the crop (0: none)
        self.seed, self.epoch = seed, 0  # augmentation draws depend only on (seed, epoch, index)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img = self.data.image(index)
        res = self.resolution
        rng = np.random.default_rng((self.seed, self.epoch, index)) if self.train else None
        if self.data.streamed:  # a full-size PIL image: crop it in PIL, never copying the whole image to NumPy
            img = self._crop_file(img, rng) if self.train else _square(img, stored_side(res))
        if img.shape[0] != res or img.shape[1] != res:
            img = self._crop(img, rng)
        elif self.train:
            pad = max(1, res // 8)
            padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
            y, x = rng.integers(0, 2 * pad + 1, size=2)
            img = padded[y:y + res, x:x + res]
        if self.train and self.rand_augment > 0:
            from .augment import rand_augment

            img = rand_augment(np.ascontiguousarray(img), self.rand_augment, rng)
        chw = img.transpose(2, 0, 1)  # views: the one copy is the subtraction below
        if self.train and rng.random() < 0.5:
            chw = chw[:, :, ::-1]
        out = np.empty(chw.shape, np.float32)
        np.subtract(chw, MEAN[:, None, None], out=out)
        np.divide(out, STD[:, None, None], out=out)
        return out, np.int64(self.data.labels[index])

    def _crop(self, img, rng):
        from PIL import Image

        h, w = img.shape[:2]
        res = self.resolution
        if rng is None:  # centre crop of res/0.875, resized to res
            side = min(h, w, stored_side(res))
        else:
            x, y, side_w, side_h = self._random_box(w, h, rng)
            crop = img[y:y + side_h, x:x + side_w]
            return np.asarray(Image.fromarray(crop).resize((res, res), Image.BILINEAR))
        y, x = (h - side) // 2, (w - side) // 2
        crop = img[y:y + side, x:x + side]
        return np.asarray(Image.fromarray(crop).resize((res, res), Image.BILINEAR)) if side != res else crop

    def _crop_file(self, img, rng) -> np.ndarray:
        """The random resized crop of a streamed (PIL) image, cut and scaled by PIL in one resize."""
        from PIL import Image

        x, y, side_w, side_h = self._random_box(*img.size, rng)
        box = (x, y, x + side_w, y + side_h)
        return np.asarray(img.resize((self.resolution, self.resolution), Image.BILINEAR, box=box))

    def _random_box(self, w: int, h: int, rng) -> tuple[int, int, int, int]:
        """(x, y, width, height) of a random resized crop: crop_scale to 100% of the area, aspect 3/4-4/3."""
        area = h * w * rng.uniform(self.crop_scale, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        side_w = int(min(w, round(np.sqrt(area * aspect))))
        side_h = int(min(h, round(np.sqrt(area / aspect))))
        y, x = rng.integers(0, h - side_h + 1), rng.integers(0, w - side_w + 1)
        return int(x), int(y), side_w, side_h
