"""The papers' training recipes, by name, for `lwnas train --recipe NAME`: the settings each paper's official
training code uses on ImageNet, with the variants it uses per named config, and where they come from.

A recipe sets training settings (lwnas.train.TrainConfig); a --config file and flags still override it. Recipes
are stated for the papers' batch sizes: a --batch-size of your own scales the learning rate linearly, unless --lr
is given too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import LwnasError


@dataclass(frozen=True)
class Recipe:
    source: str
    settings: dict
    per_config: dict = field(default_factory=dict)  # named config -> settings that differ for it

    def for_config(self, name: str) -> dict:
        return {**self.settings, **self.per_config.get(name, {})}


RECIPES = {
    # Official code: SGD (momentum 0.9) on every parameter, cosine decay without label smoothing, EMA or
    # gradient clipping; torchvision's RandomResizedCrop (area 8-100%) and flip; 600 epochs at 224 px (the
    # resolution stays the data's default: 32 px for CIFAR-size sets, the spec's otherwise).
    "micronet": Recipe(
        source="liyunsheng13/micronet: script/train_micronet_m{0,1,2,3}_*gpu.sh and main.py",
        settings={"epochs": 600, "optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "batch_size": 256,
                  "weight_decay": 3e-5, "warmup_epochs": 0.0, "label_smoothing": 0.0, "grad_clip": 0.0,
                  "ema_decay": 0.0, "crop_scale": 0.08, "decay_norm_and_bias": True},
        per_config={"micronet_m2": {"lr": 0.2, "batch_size": 512},
                    "micronet_m3": {"lr": 0.2, "batch_size": 512, "weight_decay": 4e-5, "warmup_epochs": 5.0}},
    ),
}


def recipe_settings(name: str, config_name: str, batch_size: int | None = None, lr: float | None = None) -> dict:
    """The recipe's settings for `config_name` (a named config, or any network: the recipe's base settings),
    its learning rate scaled to `batch_size` when that is given without `lr`."""
    if name not in RECIPES:
        raise LwnasError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    settings = RECIPES[name].for_config(config_name)
    if batch_size is not None and lr is None:
        settings["lr"] = settings["lr"] * batch_size / settings["batch_size"]
    return settings
