"""Loaders read the real formats from small data sets the tests write; bad data gives clear errors."""
import io
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from lwnas.errors import LwnasError
from lwnas.train import data


def _cifar_tarball(path, classes=10):
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        def add(name, obj):
            raw = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))

        add("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(classes)]})
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            add(name, {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]})


def test_cifar_tarball(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    _cifar_tarball(path)
    train = data.load(str(path), "train", 32)
    test = data.load(str(path), "test", 32)
    assert train.images.shape == (20, 32, 32, 3) and test.images.shape == (4, 32, 32, 3)
    assert train.classes[:2] == ["c0", "c1"] and list(test.labels) == [0, 1, 2, 3]
    with pytest.raises(data.MissingSplit, match="no validation split"):
        data.load(str(path), "val", 32)


def test_validation_is_held_out_of_the_training_images_never_the_test_split(tmp_path):
    from lwnas.train.settings import TrainConfig
    from lwnas.train.splits import load_data, test_set

    path = tmp_path / "cifar-10-python.tar.gz"
    _cifar_tarball(path)  # 5 batches x [0, 1, 2, 3]: 5 images per class in train
    config = TrainConfig(val_split=0.4)
    train, val = load_data(str(path), config)
    assert len(train) == 12 and len(val) == 8 and np.bincount(val.labels).tolist() == [2, 2, 2, 2]
    everything = data.load(str(path), "train", 32).images.reshape(20, -1)
    rows = {row.tobytes(): i for i, row in enumerate(everything)}
    held = {rows[image.tobytes()] for image in val.images.reshape(8, -1)}
    kept = {rows[image.tobytes()] for image in train.images.reshape(12, -1)}
    assert len(held) == 8 and not held & kept  # disjoint, and all from the training batches
    again = load_data(str(path), TrainConfig(val_split=0.4, seed=7))[1]  # the training seed does not move it
    assert np.array_equal(again.images, val.images)
    subsets = [load_data(str(path), TrainConfig(val_split=0.4, seed=seed, train_subset=5, val_subset=3))
               for seed in (0, 7)]  # nor the subsets
    assert all(np.array_equal(a.images, b.images) for a, b in zip(*subsets)) and len(subsets[0][0]) == 5
    other = load_data(str(path), TrainConfig(val_split=0.4, split_seed=1))[1]
    assert not np.array_equal(other.images, val.images)
    assert np.array_equal(test_set(str(path), config).images, data.load(str(path), "test", 32).images)


def test_split_is_stratified_and_keeps_every_class_on_both_sides():
    images = data.synthetic(103, 8)
    rest, held = images.split(0.3, seed=3)
    assert len(rest) + len(held) == 103
    assert np.bincount(held.labels).tolist() == [3] * 10  # round(0.3 * 10 or 11 images) of every class
    assert set(rest.labels) == set(held.labels) == set(range(10))


def test_not_a_cifar_tarball(tmp_path):
    path = tmp_path / "other.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(LwnasError, match="not a CIFAR-10/100 python tarball"):
        data.load(str(path), "train", 32)


def _image(path, colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder(tmp_path):
    for split in ("train", "val"):
        for name, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            for i in range(3):
                _image(tmp_path / split / name / f"{i}.png", colour)
    train = data.load(str(tmp_path), "train", 24)
    assert train.classes == ["cat", "dog"] and len(train) == 6
    assert train.images.shape[1:] == (27, 27, 3)  # short side to 24/0.875, centre square
    assert train.images[0, 0, 0, 0] == 255 and train.images[-1, 0, 0, 2] == 255
    view = data.Augmented(train, 24, train=True)
    image, label = view[0]
    assert image.shape == (3, 24, 24) and image.dtype == np.float32 and label == 0


def test_empty_class_folder_and_bad_image(tmp_path):
    _image(tmp_path / "train" / "cat" / "0.png", (1, 2, 3))
    (tmp_path / "train" / "dog").mkdir()
    with pytest.raises(LwnasError, match="dog: class folder has no images"):
        data.load(str(tmp_path), "train", 24)
    (tmp_path / "train" / "dog" / "0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(LwnasError, match="unreadable image.*--skip-bad-images"):
        data.load(str(tmp_path), "train", 24)
    skipped = data.load(str(tmp_path), "train", 24, skip_bad=True)
    assert len(skipped) == 1 and len(skipped.skipped) == 1 and skipped.skipped[0].endswith("0.jpg")


def test_paddleclas_list_files(tmp_path):
    for i in range(4):
        _image(tmp_path / "images" / f"{i}.jpg", (60 * i, 0, 0))
    (tmp_path / "train_list.txt").write_text("images/0.jpg 0\nimages/1.jpg 1\nimages/2.jpg 2\n")
    (tmp_path / "val_list.txt").write_text("images/3.jpg 1\n")
    (tmp_path / "label_list.txt").write_text("0 red\n1 green\n2 blue\n")
    train = data.load(str(tmp_path), "train", 16)
    assert list(train.labels) == [0, 1, 2] and train.classes == ["red", "green", "blue"]
    assert len(data.load(str(tmp_path), "val", 16)) == 1
    (tmp_path / "train_list.txt").write_text("images/0.jpg zero\n")
    with pytest.raises(LwnasError, match=r"train_list.txt:1: expected"):
        data.load(str(tmp_path), "train", 16)
    (tmp_path / "train_list.txt").write_text("images/0.jpg 0\nimages/9.jpg 1\n")
    with pytest.raises(LwnasError, match=r"images/9.jpg: image file not found; fix or remove it"):
        data.load(str(tmp_path), "train", 16)


def test_skipped_images_are_counted_where_the_user_sees_them(tmp_path):
    import subprocess
    import sys

    for split, count in (("train", 12), ("val", 4)):
        for i in range(count):
            _image(tmp_path / split / ("cat" if i % 2 else "dog") / f"{i}.png", (40 * (i % 2), 0, 0))
    (tmp_path / "train" / "dog" / "bad.jpg").write_bytes(b"not a jpeg")
    result = subprocess.run([sys.executable, "-m", "lwnas.cli", "train", "--arch", "micronet_m0", "--data",
                             str(tmp_path), "--epochs", "1", "--resolution", "32", "--batch-size", "4",
                             "--output", str(tmp_path / "run"), "--skip-bad-images"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--skip-bad-images: skipped 1 unreadable image(s), e.g. " in result.stdout and "bad.jpg" in result.stdout


def test_missing_path_names_the_formats(tmp_path):
    with pytest.raises(LwnasError, match="data set not found.*synthetic"):
        data.load(str(tmp_path / "nowhere"), "train", 32)
    with pytest.raises(LwnasError, match="no train split"):
        data.load(str(tmp_path), "train", 32)


def test_synthetic_is_deterministic_and_balanced():
    a = data.load("synthetic", "train", 32, synthetic_size=100)
    b = data.load("synthetic", "train", 32, synthetic_size=100)
    assert np.array_equal(a.images, b.images) and np.bincount(a.labels).tolist() == [10] * 10
    val = data.load("synthetic", "val", 32, synthetic_size=100)
    assert not np.array_equal(a.images, val.images)


def test_augmentation_depends_on_seed_and_epoch_only():
    images = data.synthetic(4, 32)
    view = data.Augmented(images, 32, train=True, seed=1)
    first = view[2][0]
    assert np.array_equal(first, view[2][0])
    view.epoch = 1
    assert not np.array_equal(first, view[2][0])


def _varied_set(root, layout, per_class=6):
    """Images of several sizes in three classes, as an ImageFolder tree or a PaddleClas list set."""
    classes = ("cat", "dog", "fox")
    for split in ("train", "val"):
        lines = []
        for label, name in enumerate(classes):
            for i in range(per_class):
                relative = f"{split}/{name}/{i}.jpg"
                _image(root / relative, (80 * label, 20 * i, 90), size=(40 + 9 * i, 30 + 5 * label))
                lines.append(f"{relative} {label}")
        if layout == "list":
            (root / f"{split}_list.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("layout", ["folder", "list"])
def test_streamed_sets_train_in_the_in_memory_order(tmp_path, layout):
    """The same images read per batch from disk: same labels in the same seeded order as the decoded set,
    batches of the target size, and the same validation images (short side to res/0.875, centre crop)."""
    from lwnas.train.loop import loaders
    from lwnas.train.settings import TrainConfig
    from lwnas.train.splits import load_data

    root = _varied_set(tmp_path, layout)
    config = TrainConfig(batch_size=8, resolution=24, seed=3)
    memory, disk = load_data(str(root), config), load_data(str(root), config, from_disk=True)
    assert not memory[0].streamed and disk[0].streamed and disk[0].images is None
    assert memory[0].labels.tolist() == disk[0].labels.tolist()
    (_, _, train_a, val_a), (_, _, train_b, val_b) = loaders(*memory, config), loaders(*disk, config)
    (_, labels_a), (images_b, labels_b) = next(iter(train_a)), next(iter(train_b))
    assert labels_a.tolist() == labels_b.tolist() and images_b.shape == [8, 3, 24, 24]
    (val_images_a, _), (val_images_b, _) = next(iter(val_a)), next(iter(val_b))
    np.testing.assert_allclose(val_images_a.numpy(), val_images_b.numpy(), atol=1e-5)
    subset = disk[0].subset(5, seed=0)
    assert subset.streamed and len(subset.paths) == len(subset.labels) == 5


def test_a_corrupt_image_in_a_streamed_set_is_named_or_skipped(tmp_path):
    root = _varied_set(tmp_path, "folder", per_class=2)
    (root / "train" / "dog" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(LwnasError, match=r"bad.jpg: unreadable image.*--skip-bad-images"):
        data.load(str(root), "train", 24, stream=True)
    kept = data.load(str(root), "train", 24, stream=True, skip_bad=True)
    assert len(kept) == 6 and kept.skipped == [str(root / "train" / "dog" / "bad.jpg")]


def test_an_image_that_fails_to_decode_mid_epoch_is_replaced_with_a_warning(tmp_path, capfd):
    """A header that parses over truncated pixel data is found only when decoded, inside a loader worker: the
    batch keeps its size with the next image in its place, and the file is named on stderr."""
    from lwnas.train.loop import loaders
    from lwnas.train.settings import TrainConfig

    root = _varied_set(tmp_path, "folder", per_class=2)
    broken = root / "train" / "cat" / "0.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(broken, quality=95)
    broken.write_bytes(broken.read_bytes()[:len(broken.read_bytes()) // 2])
    config = TrainConfig(batch_size=6, resolution=24)
    train_set = data.load(str(root), "train", 24, stream=True)
    _, _, loader, _ = loaders(train_set, train_set, config)
    assert [labels.shape[0] for _, labels in loader] == [6]
    assert "0.jpg: unreadable image" in capfd.readouterr().err


def test_validation_folder_labels_follow_the_training_classes_by_name(tmp_path):
    from lwnas.train.settings import TrainConfig
    from lwnas.train.splits import load_data

    colours = {"ant": (255, 0, 0), "bee": (0, 255, 0), "cat": (0, 0, 255)}
    for name, colour in colours.items():
        for i in range(2):
            _image(tmp_path / "train" / name / f"{i}.png", colour)
    _image(tmp_path / "val" / "cat" / "0.png", colours["cat"])  # no ant, no bee: cat must keep label 2
    train, val = load_data(str(tmp_path), TrainConfig(resolution=16))
    assert train.classes == val.classes == ["ant", "bee", "cat"] and val.labels.tolist() == [2]
    _image(tmp_path / "val" / "dog" / "0.png", (9, 9, 9))
    with pytest.raises(LwnasError, match="val split has class\\(es\\) the training split lacks: dog"):
        load_data(str(tmp_path), TrainConfig(resolution=16))


def test_a_folder_of_class_folders_is_split_and_one_class_is_refused(tmp_path):
    from lwnas.train.settings import TrainConfig
    from lwnas.train.splits import load_data

    for i in range(10):
        _image(tmp_path / "only" / f"{i}.png", (i, 0, 0))
    with pytest.raises(LwnasError, match="1 class \\(only\\); a classifier needs at least two"):
        load_data(str(tmp_path), TrainConfig(resolution=16))
    for i in range(10):
        _image(tmp_path / "other" / f"{i}.png", (0, i, 0))
    train, val = load_data(str(tmp_path), TrainConfig(resolution=16, val_split=0.2))
    assert train.classes == ["only", "other"] and len(train) == 16 and val.labels.tolist() == [0, 0, 1, 1]
