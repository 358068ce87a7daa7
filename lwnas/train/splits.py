"""Train, validation and test: what selects and what only reports.

Everything that chooses (a trial's score, pruning, the best checkpoint, baselines, supernet scoring) reads the
validation split. It is the data set's own (a `val/` folder, `val_list.txt`, the synthetic set's), or, where the
data set has none (CIFAR-layout tarballs, a folder with `train/` only), `val_split` of the training images held
out per class with `split_seed`. The test split (CIFAR's test batch, `test/`, `test_list.txt`) is read only by
`test_set`, which `lwnas eval --split test` calls: no selection can see it.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import LwnasError
from . import data


def data_reference(data: str) -> str:
    """How a checkpoint records its data set: 'synthetic', or the absolute path (commands that continue from it may
    run from another folder)."""
    return data if data == "synthetic" else str(Path(data).resolve())


def load_data(source: str, config, skip_bad: bool = False, from_disk: bool | None = None):
    """(train, val) ImageSets of `source` at the config's resolution, cut to its subset sizes (drawn by
    `split_seed`, like the held-out share: every training seed sees the same images); folder and list sets
    streamed from disk when `from_disk`, or when None and too large to decode into memory."""
    def load(split):
        return data.load(source, split, config.resolution, skip_bad=skip_bad, seed=config.seed, stream=from_disk)

    train = load("train")
    if len(train.classes) < 2:
        raise LwnasError(f"{source}: {len(train.classes)} class ({', '.join(train.classes)}); a classifier needs "
                         f"at least two")
    try:
        val = on_classes(load("val"), train.classes, source, "val")
    except data.MissingSplit:
        train, val = train.split(config.val_split, config.split_seed)
    return train.subset(config.train_subset, config.split_seed), val.subset(config.val_subset, config.split_seed)


def test_set(source: str, config, skip_bad: bool = False, from_disk: bool | None = None, classes=None):
    """The data set's test split (never selected on), labelled by `classes` (the trained model's) if given."""
    try:
        test = data.load(source, "test", config.resolution, skip_bad=skip_bad, seed=config.seed, stream=from_disk)
    except data.MissingSplit as err:
        raise LwnasError(f"{err}: this data set has no test split (give it a test/ folder or test_list.txt, or "
                         f"evaluate --split val)") from None
    return test if classes is None else on_classes(test, classes, source, "test")


def on_classes(images: data.ImageSet, classes: list[str], source: str, split: str) -> data.ImageSet:
    """`images` with labels re-indexed by name into `classes` (the training split's): a validation folder that
    lacks a class keeps every other label right. A class the training split does not have is an error."""
    if images.classes == classes:
        return images
    extra = sorted(set(images.classes) - set(classes))
    if extra:
        raise LwnasError(f"{source}: the {split} split has class(es) the training split lacks: {', '.join(extra)}; "
                         f"training classes: {', '.join(classes)}")
    index = np.asarray([classes.index(name) for name in images.classes], dtype=np.int64)
    return replace(images, labels=index[images.labels], classes=list(classes))
