"""The papers' training recipes, by name, for `lwnas train --recipe NAME`: the settings each paper's official
training code uses on ImageNet, with the variants it uses per named config, and where they come from.

A recipe sets training settings (lwnas.train.settings.TrainConfig); a --config file and flags still override it. Recipes
are stated for the papers' batch sizes: a --batch-size of your own scales the learning rate linearly, unless --lr
is given too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LwnasError


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
    # The paper's ImageNet recipe (Sec. 4 and its appendix; mmpretrain reproduces it): 300 epochs, SGD momentum
    # 0.9 at batch 256 and lr 0.1 with cosine decay after a 5-epoch warm-up, weight decay annealed by a cosine
    # from 1e-4 to 1e-5 (none on BN and biases), label smoothing 0.1, an EMA of the weights (decay 0.9995).
    # Not expressible here: AutoAugment for S2-S4 and progressive resizing.
    "mobileone": Recipe(
        source="MobileOne paper (Vasu et al., CVPR 2023), Sec. 4; open-mmlab/mmpretrain configs/mobileone",
        settings={"epochs": 300, "optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "batch_size": 256,
                  "weight_decay": 1e-4, "weight_decay_end": 1e-5, "warmup_epochs": 5.0, "label_smoothing": 0.1,
                  "ema_decay": 0.9995, "crop_scale": 0.08, "decay_norm_and_bias": False},
    ),
    # Official configs (cfg/fasternet_*.yaml, timm's training loop): AdamW with lr 0.004 at batch 4096 (0.002 at
    # 2048 for M and L), 20 warm-up epochs, cosine, 300 epochs, label smoothing 0.1, cutmix (alpha 1.0) or mixup
    # per batch, RandAugment from T1 on; weight decay, mixup alpha, RandAugment magnitude and gradient clipping grow
    # with the model. Set in the spec, not here: the stochastic-depth rate (blocks' drop_path: 0, 0.02, 0.05, 0.1,
    # 0.2, 0.3 for T0-L). Not expressible here: the 192-px phase before epoch 280, bicubic resizing.
    "fasternet": Recipe(
        source="JierunChen/FasterNet: cfg/fasternet_{t0,t1,t2,s,m,l}.yaml",
        settings={"epochs": 300, "optimizer": "adamw", "lr": 0.004, "batch_size": 4096, "warmup_epochs": 20.0,
                  "weight_decay": 0.005, "mixup": 0.05,
                  "label_smoothing": 0.1, "cutmix": 1.0, "grad_clip": 0.0, "ema_decay": 0.0, "crop_scale": 0.08,
                  "decay_norm_and_bias": False},
        per_config={"fasternet_t0": {"weight_decay": 0.005, "mixup": 0.05},
                    "fasternet_t1": {"weight_decay": 0.01, "mixup": 0.1, "rand_augment": 3.0},
                    "fasternet_t2": {"weight_decay": 0.02, "mixup": 0.1, "rand_augment": 5.0},
                    "fasternet_s": {"weight_decay": 0.03, "mixup": 0.3, "rand_augment": 7.0},
                    "fasternet_m": {"weight_decay": 0.05, "mixup": 0.5, "rand_augment": 7.0, "lr": 0.002,
                                    "batch_size": 2048, "grad_clip": 1.0},
                    "fasternet_l": {"weight_decay": 0.05, "mixup": 0.7, "rand_augment": 7.0, "lr": 0.002,
                                    "batch_size": 2048, "grad_clip": 0.01}},
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
