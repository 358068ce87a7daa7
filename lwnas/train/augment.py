"""Training augmentations beyond crop and flip, as the papers' recipes use them: RandAugment on each image and
mixup / cutmix on each batch (timm's semantics, which FasterNet's and many PaddleClas configs use).

RandAugment (Cubuk et al. 2020) applies `N` operations drawn from a fixed list, each with probability 0.5, at
magnitude M of 10 plus Gaussian noise (std 0.5, timm's `mstd0.5`); the operations are timm's "increasing" set
(`inc1`), where a larger magnitude is always a stronger change. PIL does the image work. Every draw comes from the
generator the caller passes, so augmentation stays a function of (seed, epoch, index).
"""
from __future__ import annotations

import functools

import numpy as np

MAX_MAGNITUDE = 10.0
MAGNITUDE_STD = 0.5
OPERATIONS_PER_IMAGE = 2


def _signed(rng, value: float) -> float:
    return value if rng.random() < 0.5 else -value


@functools.lru_cache(maxsize=1)
def _operations():
    from PIL import Image, ImageEnhance, ImageOps

    fill = (128, 128, 128)

    def affine(img, matrix):
        return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=fill)

    def solarize_add(img, m):
        shifted = np.minimum(np.asarray(img, np.int32) + int(110 * m), 255).astype(np.uint8)
        return Image.fromarray(np.where(np.asarray(img) < 128, shifted, np.asarray(img)))

    def enhance(kind):
        return lambda img, m, rng: kind(img).enhance(1.0 + _signed(rng, 0.9 * m))

    return {
        "auto_contrast": lambda img, m, rng: ImageOps.autocontrast(img),
        "equalize": lambda img, m, rng: ImageOps.equalize(img),
        "invert": lambda img, m, rng: ImageOps.invert(img),
        "rotate": lambda img, m, rng: img.rotate(_signed(rng, 30 * m), resample=Image.BILINEAR, fillcolor=fill),
        "posterize": lambda img, m, rng: ImageOps.posterize(img, 8 - int(round(4 * m))),
        "solarize": lambda img, m, rng: ImageOps.solarize(img, int(256 - 256 * m)),
        "solarize_add": lambda img, m, rng: solarize_add(img, m),
        "color": enhance(ImageEnhance.Color),
        "contrast": enhance(ImageEnhance.Contrast),
        "brightness": enhance(ImageEnhance.Brightness),
        "sharpness": enhance(ImageEnhance.Sharpness),
        "shear_x": lambda img, m, rng: affine(img, (1, _signed(rng, 0.3 * m), 0, 0, 1, 0)),
        "shear_y": lambda img, m, rng: affine(img, (1, 0, 0, _signed(rng, 0.3 * m), 1, 0)),
        "translate_x": lambda img, m, rng: affine(img, (1, 0, _signed(rng, 0.45 * m) * img.size[0], 0, 1, 0)),
        "translate_y": lambda img, m, rng: affine(img, (1, 0, 0, 0, 1, _signed(rng, 0.45 * m) * img.size[1])),
    }


OPERATIONS = tuple(_operations())


def rand_augment(img: np.ndarray, magnitude: float, rng) -> np.ndarray:
    """`img` (HWC uint8 RGB) after RandAugment at `magnitude` (0-10)."""
    from PIL import Image

    operations = _operations()
    pil = Image.fromarray(img)
    for name in rng.choice(OPERATIONS, OPERATIONS_PER_IMAGE):
        if rng.random() < 0.5:
            continue
        m = float(np.clip(rng.normal(magnitude, MAGNITUDE_STD), 0, MAX_MAGNITUDE)) / MAX_MAGNITUDE
        pil = operations[name](pil, m, rng)
    return np.asarray(pil)


def mix_batch(images, labels, classes: int, mixup: float, cutmix: float, smoothing: float, rng):
    """(mixed images, soft targets) for one batch: with probability 0.5 each when both alphas are set, mixup (a
    Beta(alpha, alpha) blend with the batch reversed) or cutmix (a box of the reversed batch pasted in, the
    blend weight corrected to the box's true area); the targets blend the two label-smoothed one-hot rows."""
    import paddle
    import paddle.nn.functional as F

    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix, cutmix) if use_cutmix else rng.beta(mixup, mixup))
    reverse = images.flip([0])
    if use_cutmix:
        h, w = images.shape[2], images.shape[3]
        cut_h, cut_w = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        mask = np.ones((1, 1, h, w), np.float32)
        mask[..., y0:y1, x0:x1] = 0
        mask = paddle.to_tensor(mask)
        images = images * mask + reverse * (1 - mask)
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        images = images * lam + reverse * (1 - lam)
    onehot = F.one_hot(labels.reshape([-1]), classes) * (1 - smoothing) + smoothing / classes
    return images, onehot * lam + onehot.flip([0]) * (1 - lam)
