"""Training settings: one TrainConfig, every value checked against its rule before anything uses it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import LwnasError

AMP_DTYPES = ("float16", "bfloat16")
OPTIMIZERS = ("sgd", "adamw")
MAX_WARMUP_FRACTION = 0.25


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 64
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_epochs: float = 0.3
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    resolution: int = 32
    train_subset: int | None = None  # images of the training split used (None: all)
    val_subset: int | None = None
    val_split: float = 0.1  # share of each class held out for validation where the data set has no val split
    split_seed: int = 0  # draws the held-out share and the subsets, apart from `seed`: every seed sees the same images
    workers: int = 0
    seed: int = 0
    ema_decay: float = 0.0  # 0: no EMA; else evaluate (and export) an exponential moving average of the weights
    bn_recalibration: int = 16  # training batches that re-estimate batch-norm statistics before each evaluation
    amp: bool = False  # automatic mixed precision, autocast level O1 (the command line turns it on for GPUs)
    amp_dtype: str = "float16"  # float16 (with dynamic loss scaling) or bfloat16
    crop_scale: float = 0.25  # smallest area share of a random resized crop (torchvision's default is 0.08)
    decay_norm_and_bias: bool = False  # weight decay on batch-norm scales/shifts and biases too (MicroNet's code)
    weight_decay_end: float | None = None  # SGD: weight decay follows a cosine from weight_decay to this (MobileOne)
    rand_augment: float = 0.0  # RandAugment magnitude (0-10; 0: off), two operations per image (lwnas.train.augment)
    mixup: float = 0.0  # mixup's Beta alpha (0: off)
    cutmix: float = 0.0  # cutmix's Beta alpha (0: off); with mixup too, each batch uses one of them

    @classmethod
    def from_dict(cls, data: dict, source: str = "training settings") -> "TrainConfig":
        """Settings from flags, a YAML file or a stored study, each value checked against _RULES before anything
        uses it: a wrong one is one error naming the source, the key, the value and what would be right."""
        names = [f.name for f in fields(cls)]
        unknown = set(data) - set(names)
        if unknown:
            raise LwnasError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(names)}")
        config = cls(**{key: _checked(key, value, source) for key, value in data.items()})
        if config.weight_decay_end is not None and config.optimizer != "sgd":
            raise LwnasError(f"{source}: weight_decay_end anneals SGD's weight decay; with {config.optimizer} leave it "
                             f"null")
        return config

    def to_dict(self) -> dict:
        return asdict(self)


OPTIONAL = ("train_subset", "val_subset", "weight_decay_end")  # settings that may be None (null in YAML)
# Each setting: its type, the values it accepts, and how the error message says so.
_RULES = {
    "epochs": (int, lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "optimizer": (str, lambda v: v in OPTIMIZERS, " or ".join(OPTIMIZERS)),
    "lr": (float, lambda v: v > 0, "a number > 0, e.g. 0.1"),
    "momentum": (float, lambda v: 0 <= v < 1, "a number in [0, 1), e.g. 0.9"),
    "weight_decay": (float, lambda v: v >= 0, "a number >= 0, e.g. 4.0e-5"),
    "warmup_epochs": (float, lambda v: v >= 0, "a number of epochs >= 0"),
    "label_smoothing": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "grad_clip": (float, lambda v: v >= 0, "a number >= 0 (0: no clipping)"),
    "resolution": (int, lambda v: v >= 8, "an integer >= 8"),
    "train_subset": (int, lambda v: v >= 1, "an integer >= 1, or null for all images"),
    "val_subset": (int, lambda v: v >= 1, "an integer >= 1, or null for all images"),
    "val_split": (float, lambda v: 0 < v < 1, "a fraction in (0, 1), e.g. 0.1"),
    "split_seed": (int, lambda v: True, "an integer"),
    "workers": (int, lambda v: v >= 0, "an integer >= 0"),
    "seed": (int, lambda v: True, "an integer"),
    "ema_decay": (float, lambda v: 0 <= v < 1, "a number in [0, 1) (0: no EMA)"),
    "bn_recalibration": (int, lambda v: v >= 0, "an integer >= 0"),
    "amp": (bool, lambda v: True, "true or false"),
    "amp_dtype": (str, lambda v: v in AMP_DTYPES, " or ".join(AMP_DTYPES)),
    "crop_scale": (float, lambda v: 0 < v <= 1, "a number in (0, 1], e.g. 0.08"),
    "decay_norm_and_bias": (bool, lambda v: True, "true or false"),
    "weight_decay_end": (float, lambda v: v >= 0, "a number >= 0, or null for a constant weight decay"),
    "rand_augment": (float, lambda v: 0 <= v <= 10, "a magnitude in [0, 10] (0: off), e.g. 7"),
    "mixup": (float, lambda v: v >= 0, "a Beta alpha >= 0 (0: off), e.g. 0.2"),
    "cutmix": (float, lambda v: v >= 0, "a Beta alpha >= 0 (0: off), e.g. 1.0"),
}


def _checked(key: str, value, source: str):
    """`value` as the type of setting `key` (an integer is a valid float), or a LwnasError."""
    kind, accepts, expected = _RULES[key]
    if kind is float and type(value) is int:
        value = float(value)
    if value is None and key in OPTIONAL:
        return value
    if type(value) is not kind or not accepts(value):  # type(), not isinstance(): True is no integer here
        raise LwnasError(f"{source}: {key}: {value!r} is not valid; expected {expected}")
    return value


def warmup_epochs(config: TrainConfig) -> float:
    """The warm-up actually used: at most a quarter of the run, so that a short run (2 epochs with the default
    3-epoch warm-up) still reaches its learning rate instead of ending inside the warm-up."""
    return min(config.warmup_epochs, config.epochs * MAX_WARMUP_FRACTION)
