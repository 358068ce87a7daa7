"""Training loop shared by the search's proxy training and full retraining.

SGD (momentum) or AdamW, linear warm-up then cosine decay per step, label smoothing, no weight decay on
BN and bias, gradient clipping, AMP on GPU, deterministic seeding (data order and augmentation depend
only on the seed and the epoch). A non-finite loss raises TrainingDiverged.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable

import numpy as np

from .errors import LwnasError


class TrainingDiverged(LwnasError):
    """The loss became NaN or infinite."""


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
    workers: int = 0
    seed: int = 0
    ema_decay: float = 0.0  # 0: no EMA; else evaluate (and export) an exponential moving average of the weights
    bn_recalibration: int = 16  # training batches that re-estimate batch-norm statistics before each evaluation

    @classmethod
    def from_dict(cls, data: dict, source: str = "training settings") -> "TrainConfig":
        names = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise LwnasError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(names)}")
        config = cls(**data)
        if config.optimizer not in ("sgd", "adamw"):
            raise LwnasError(f"{source}: optimizer must be sgd or adamw, got {config.optimizer!r}")
        if config.epochs < 1 or config.batch_size < 1 or config.resolution < 8:
            raise LwnasError(f"{source}: epochs and batch_size must be >= 1 and resolution >= 8")
        return config

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EpochResult:
    epoch: int
    loss: float
    top1: float
    top5: float
    lr: float
    images_per_s: float
    seconds: float


def set_device(device: str) -> str:
    """'cpu' or 'gpu' (or 'gpu:N'); a GPU request on a machine without one is a clear error."""
    import paddle

    if device.startswith("gpu") and not paddle.device.is_compiled_with_cuda():
        raise LwnasError("--device gpu asked, but this Paddle build has no CUDA support; install "
                         "paddlepaddle-gpu or use --device cpu")
    if device != "cpu" and not device.startswith("gpu"):
        raise LwnasError(f"unknown device {device!r}; expected cpu or gpu")
    paddle.set_device(device)
    return device


def seed_everything(seed: int):
    import random

    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def _param_groups(model, weight_decay: float):
    """BN parameters and biases (1-D tensors) get no weight decay, as in the papers' recipes."""
    decay = [p for p in model.parameters() if not p.stop_gradient and p.ndim > 1]
    no_decay = [p for p in model.parameters() if not p.stop_gradient and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model, config: TrainConfig, steps_per_epoch: int):
    import paddle

    total = config.epochs * steps_per_epoch
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(config.lr, T_max=max(1, total - warmup))
    if warmup:
        schedule = paddle.optimizer.lr.LinearWarmup(schedule, warmup, 0.0, config.lr)
    clip = paddle.nn.ClipGradByGlobalNorm(config.grad_clip) if config.grad_clip else None
    groups = _param_groups(model, config.weight_decay)
    if config.optimizer == "adamw":
        optimizer = paddle.optimizer.AdamW(schedule, parameters=groups, grad_clip=clip)
    else:
        optimizer = paddle.optimizer.Momentum(schedule, config.momentum, parameters=groups, grad_clip=clip,
                                              use_nesterov=False)
    return optimizer, schedule


class _EpochOrder:
    """Sampler whose order depends only on (seed, epoch): a resumed run sees the same batches. Under
    paddle.distributed.launch each of the `world` processes takes every world-th index of that order."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch, self.rank, self.world = n, seed, 0, rank, world

    def __iter__(self):
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        return iter(order[self.rank::self.world].tolist())

    def __len__(self):
        return len(range(self.rank, self.n, self.world))


def distributed() -> tuple[int, int]:
    """(rank, world size); more than one process when started by paddle.distributed.launch."""
    import paddle.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def load_data(source: str, config: TrainConfig, skip_bad: bool = False):
    """(train, val) ImageSets of `source` at the config's resolution, cut to its subset sizes."""
    from . import data

    splits = [data.load(source, split, config.resolution, skip_bad=skip_bad, seed=config.seed)
              for split in ("train", "val")]
    return splits[0].subset(config.train_subset, config.seed), splits[1].subset(config.val_subset, config.seed)


def loaders(train_set, val_set, config: TrainConfig):
    import paddle

    from .data import Augmented

    train_view = Augmented(train_set, config.resolution, train=True, seed=config.seed)
    order = _EpochOrder(len(train_set), config.seed, *distributed())
    batches = paddle.io.BatchSampler(sampler=order, batch_size=config.batch_size, drop_last=False)
    train_loader = paddle.io.DataLoader(train_view, batch_sampler=batches, num_workers=config.workers)
    val_loader = paddle.io.DataLoader(Augmented(val_set, config.resolution, train=False),
                                      batch_size=config.batch_size, shuffle=False, num_workers=config.workers)
    return train_view, order, train_loader, val_loader


def recalibrate_batch_norm(model, loader, batches: int):
    """Re-estimate every batch norm's running mean and variance at the current weights: exact averages over
    `batches` training batches, forward only, with dropout and drop-path off as at evaluation.

    Short proxy runs need this. With momentum 0.9 the running variance still holds 0.9^57 of its initial 1.0
    after a 57-step proxy, several times the true variance of a small activation (MicroNet-M2's depthwise layers
    at 1x1: 0.0008), and the evaluated top-1 of an otherwise well-trained network falls to chance."""
    import paddle

    norms = [layer for layer in model.sublayers()
             if isinstance(layer, (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D))]
    if not norms or batches <= 0:
        return
    was_training, momenta = model.training, [layer._momentum for layer in norms]
    model.eval()
    for layer in norms:
        layer.train()
    try:
        with paddle.no_grad():
            for i, (images, _) in enumerate(loader):
                if i >= batches:
                    break
                for layer in norms:
                    layer._momentum = i / (i + 1)  # running value = mean over the batches so far
                model(images)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer._momentum = momentum
        model.train(was_training)


def evaluate(model, loader) -> tuple[float, float, float]:
    """(loss, top-1, top-5) in percent over the loader."""
    import paddle
    import paddle.nn.functional as F

    model.eval()
    total = correct1 = correct5 = 0
    loss_sum = 0.0
    with paddle.no_grad():
        for images, labels in loader:
            logits = model(images)
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            k = min(5, logits.shape[1])
            top = paddle.topk(logits, k, axis=1)[1].numpy()
            truth = labels.numpy().reshape(-1, 1)
            correct1 += int((top[:, :1] == truth).sum())
            correct5 += int((top == truth).any(axis=1).sum())
            total += len(truth)
    return loss_sum / max(total, 1), 100.0 * correct1 / max(total, 1), 100.0 * correct5 / max(total, 1)


class EMA:
    """Exponential moving average of a model's parameters and buffers (evaluated in their place)."""

    def __init__(self, model, decay: float):
        self.decay, self.updates = decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model):
        """One step; the decay ramps up as (1 + n) / (10 + n) so short runs are not dominated by the init."""
        import paddle

        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with paddle.no_grad():
            for key, value in model.state_dict().items():
                if paddle.is_floating_point(value):
                    self.shadow[key] = self.shadow[key] * decay + value.detach() * (1 - decay)
                else:
                    self.shadow[key] = value.detach().clone()

    def swap(self, model):
        """Exchange the model's weights with the average (call twice to swap back)."""
        current = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.set_state_dict(self.shadow)
        self.shadow = current


def train(model, train_set, val_set, config: TrainConfig,
          on_epoch: Callable[[EpochResult], None] | None = None,
          on_step: Callable[[int, int, float], None] | None = None,
          resume: dict | None = None,
          save: Callable[[dict, bool], None] | None = None) -> list[EpochResult]:
    """Train `model` for config.epochs; `on_epoch` sees each epoch's validation result (it may raise to stop,
    e.g. optuna.TrialPruned); `on_step(step, steps, loss)` is for progress output. `save(state, is_best)` gets
    the full training state after every epoch, and `resume` (such a state) continues from it exactly."""
    import paddle
    import paddle.nn.functional as F

    seed_everything(config.seed)
    rank, world = distributed()
    net = model
    if world > 1:  # multi-GPU: gradients averaged across the processes paddle.distributed.launch started
        paddle.distributed.init_parallel_env()
        net = paddle.DataParallel(model)
    view, order, train_loader, val_loader = loaders(train_set, val_set, config)
    steps = len(train_loader)
    optimizer, schedule = make_optimizer(model, config, steps)
    ema = EMA(model, config.ema_decay) if config.ema_decay else None
    use_amp = paddle.device.get_device().startswith("gpu")
    scaler = paddle.amp.GradScaler() if use_amp else None
    history, start_epoch = [], 0
    if resume is not None:
        model.set_state_dict(resume["model"])
        optimizer.set_state_dict(resume["optimizer"])
        schedule.set_state_dict(resume["schedule"])
        if ema is not None and resume.get("ema") is not None:
            ema.shadow, ema.updates = resume["ema"], resume["ema_updates"]
        paddle.set_rng_state(resume["rng"])
        history = [EpochResult(**h) for h in resume["history"]]
        start_epoch = resume["epoch"]
    for epoch in range(start_epoch, config.epochs):
        view.epoch = order.epoch = epoch
        model.train()
        start, seen, loss_sum = time.perf_counter(), 0, 0.0
        for step, (images, labels) in enumerate(train_loader):
            with paddle.amp.auto_cast(enable=use_amp):
                logits = net(images)
                loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
            value = float(loss)
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                                       f"lower the learning rate (now {config.lr})")
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.minimize(optimizer, loss)
            else:
                loss.backward()
                optimizer.step()
            optimizer.clear_grad()
            schedule.step()
            if ema is not None:
                ema.update(model)
            seen += len(labels)
            loss_sum += value * len(labels)
            if on_step is not None:
                on_step(step + 1, steps, value)
        elapsed = time.perf_counter() - start
        if ema is not None:
            ema.swap(model)
        recalibrate_batch_norm(model, train_loader, config.bn_recalibration)
        _, top1, top5 = evaluate(model, val_loader)
        if ema is not None:
            ema.swap(model)
        result = EpochResult(epoch + 1, loss_sum / max(seen, 1), top1, top5, float(optimizer.get_lr()),
                             seen / max(elapsed, 1e-9), elapsed)
        history.append(result)
        if save is not None and rank == 0:  # one writer
            best = top1 >= max(h.top1 for h in history)
            save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "schedule": schedule.state_dict(), "ema": ema.shadow if ema is not None else None,
                  "ema_updates": ema.updates if ema is not None else 0,
                  "rng": paddle.get_rng_state(), "epoch": epoch + 1,
                  "history": [h.__dict__ for h in history]}, best)
        if on_epoch is not None:
            on_epoch(result)
    return history
