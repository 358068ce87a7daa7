"""Training loop shared by the search's proxy training and full retraining.

SGD (momentum) or AdamW, linear warm-up then cosine decay per step, label smoothing, no weight decay on
BN and bias, gradient clipping, optional AMP, deterministic seeding (data order and augmentation depend
only on the seed and the epoch). A non-finite loss raises TrainingDiverged.

Every device runs the same step: autocast, the GradScaler's scale/step/update (a disabled scaler on CPU and
for bfloat16, where Paddle makes both no-ops), so the tests on CPU run the lines a GPU runs.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from ..errors import LwnasError
from .devices import distributed, seed_everything
from .settings import TrainConfig, warmup_epochs


class TrainingDiverged(LwnasError):
    """The loss became NaN or infinite."""


LOG_EVERY = 10  # steps between reads of the loss on the host (each read waits for the device)


@dataclass
class EpochResult:
    epoch: int
    loss: float
    top1: float
    top5: float
    lr: float
    images_per_s: float
    seconds: float


def _param_groups(model, weight_decay: float, decay_norm_and_bias: bool = False):
    """BN parameters and biases (1-D tensors) get no weight decay, as in most papers' recipes, unless
    `decay_norm_and_bias` (MicroNet's training code decays every parameter)."""
    trained = [p for p in model.parameters() if not p.stop_gradient]
    if decay_norm_and_bias:
        return [{"params": trained, "weight_decay": weight_decay}]
    return [{"params": [p for p in trained if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in trained if p.ndim <= 1], "weight_decay": 0.0}]


def make_optimizer(model, config: TrainConfig, steps_per_epoch: int):
    import paddle

    total = config.epochs * steps_per_epoch
    warmup = int(round(warmup_epochs(config) * steps_per_epoch))
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(config.lr, T_max=max(1, total - warmup))
    if warmup:
        schedule = paddle.optimizer.lr.LinearWarmup(schedule, warmup, 0.0, config.lr)
    clip = paddle.nn.ClipGradByGlobalNorm(config.grad_clip) if config.grad_clip else None
    groups = _param_groups(model, config.weight_decay, config.decay_norm_and_bias)
    if config.optimizer == "adamw":
        optimizer = paddle.optimizer.AdamW(schedule, parameters=groups, grad_clip=clip)
    else:
        optimizer = paddle.optimizer.Momentum(schedule, config.momentum, parameters=groups, grad_clip=clip,
                                              use_nesterov=False)
    # Optimizer state (zeros) for every weight now, not at its first gradient: a supernet bank unused so far must
    # still be in a checkpoint's state, or Paddle refuses to resume it and a later save drops its momentum.
    optimizer._create_accumulators(paddle.static.default_main_program().global_block(),
                                   [p for group in groups for p in group["params"]])
    return optimizer, schedule


def _state_names(optimizer, model) -> dict[str, str]:
    """Paddle's name of each weight and optimizer accumulator (`conv2d_45.w_0_velocity_0`) -> the same named after
    the model's parameter path (`stages.0.body.layers.2.weight:velocity`). Paddle's names count every layer the
    process built before, so a state keyed by them resumes only in a process that built the same layers in the
    same order (a benchmark training several networks in turn could not)."""
    paths = {param.name: path for path, param in model.named_parameters()}  # AMP's master weights use these
    return {**paths, **{var.name: f"{paths[param]}:{kind}" for kind, per_param in optimizer._accumulators.items()
                        for param, var in per_param.items() if param in paths}}


def _renamed(state: dict, names: dict[str, str]) -> dict:
    """An optimizer state dict with its keys (and its master weights' keys) renamed; unknown keys pass as they are
    (a checkpoint written before states were portable is keyed by Paddle's names)."""
    state = {names.get(key, key): value for key, value in state.items()}
    if "master_weights" in state:
        state["master_weights"] = {names.get(k, k): v for k, v in state["master_weights"].items()}
    return state


class _EpochOrder:
    """Sampler whose order depends only on (seed, epoch): a resumed run sees the same batches.

    Under paddle.distributed.launch each of the `world` processes takes every world-th index of that order.
    When the images do not divide evenly, the order is padded with its own first indices (as Paddle's
    DistributedBatchSampler does) so that every process runs the same number of steps: a process with one
    batch fewer would wait forever in the other's gradient all-reduce. At most world - 1 images are seen twice
    per epoch."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch, self.rank, self.world = n, seed, 0, rank, world
        self.per_rank = -(-n // world)

    def __iter__(self):
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        order = np.resize(order, self.per_rank * self.world)  # repeats the first indices to fill the last round
        return iter(order[self.rank::self.world].tolist())

    def __len__(self):
        return self.per_rank


def loaders(train_set, val_set, config: TrainConfig):
    import paddle

    from .data import Augmented

    train_view = Augmented(train_set, config.resolution, train=True, seed=config.seed, crop_scale=config.crop_scale,
                           rand_augment=config.rand_augment)
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
          save: Callable[[dict, bool], None] | None = None,
          log_every: int = LOG_EVERY,
          loss_fn: Callable | None = None,
          evaluate_fn: Callable | None = None) -> list[EpochResult]:
    """Train `model` for config.epochs; `on_epoch` sees each epoch's validation result (it may raise to stop,
    e.g. optuna.TrialPruned); `on_step(step, steps, loss)` is for progress output, called every `log_every`
    steps and at an epoch's last with the mean loss since the previous call. `save(state, is_best)` gets the
    full training state after every epoch, and `resume` (such a state) continues from it exactly.

    `loss_fn(net, images, labels, epoch, step)` replaces the loss of one forward pass (the supernet sums several
    subnets' losses per batch) and `evaluate_fn(model, train_loader, val_loader)` -> (top-1, top-5) replaces the
    batch-norm recalibration and evaluation of `model`."""
    import paddle

    seed_everything(config.seed)
    rank, world = distributed()
    net, synchronize = model, None
    if world > 1:  # multi-GPU: gradients averaged across the processes paddle.distributed.launch started
        paddle.distributed.init_parallel_env()
        if loss_fn is None:
            net = paddle.DataParallel(model)
        else:  # several forwards per step over changing weights (a supernet's subnets): DataParallel's reducer
            synchronize = partial(_average_gradients, model.parameters(), world)  # cannot follow them
    view, order, train_loader, val_loader = loaders(train_set, val_set, config)
    steps = len(train_loader)
    optimizer, schedule = make_optimizer(model, config, steps)
    ema = EMA(model, config.ema_decay) if config.ema_decay else None
    # Loss scaling only where fp16 needs it; Paddle also disables it off accelerators.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="AmpScaler can only be enabled on")
        scaler = paddle.amp.GradScaler(enable=config.amp and config.amp_dtype == "float16")
    loss_fn = loss_fn or partial(_classification_loss, config=config, classes=len(train_set.classes))
    evaluate_fn = evaluate_fn or partial(_recalibrate_and_evaluate, batches=config.bn_recalibration)
    history, start_epoch = [], 0
    if resume is not None:
        model.set_state_dict(resume["model"])
        # The schedule is replayed rather than loaded: a run extended with more epochs has a new one (its warm-up,
        # capped at a quarter of the run, may appear where there was none), and replaying gives its exact value.
        for _ in range(resume["epoch"] * steps):
            schedule.step()
        local = {path: name for name, path in _state_names(optimizer, model).items()}
        optimizer.set_state_dict({**_renamed(resume["optimizer"], local),
                                  "LR_Scheduler": schedule.state_dict()})
        if resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        if ema is not None and resume.get("ema") is not None:
            ema.shadow, ema.updates = resume["ema"], resume["ema_updates"]
        paddle.set_rng_state(resume["rng"])
        history = [EpochResult(**h) for h in resume["history"]]
        start_epoch = resume["epoch"]
    for epoch in range(start_epoch, config.epochs):
        view.epoch = order.epoch = epoch
        model.train()
        start, seen = time.perf_counter(), 0
        loss_sum, read_sum, read_seen = None, 0.0, 0  # loss_sum stays on the device between reads
        for step, (images, labels) in enumerate(train_loader):
            if config.weight_decay_end is not None:  # set before the step: a resumed run's first step gets it too
                _anneal_weight_decay(optimizer, config, (epoch * steps + step) / (config.epochs * steps))
            loss = _train_step(partial(loss_fn, net, images, labels, epoch, step), optimizer, scaler, config,
                               synchronize)
            schedule.step()
            if ema is not None:
                ema.update(model)
            batch = labels.shape[0]
            loss_sum = loss * batch if loss_sum is None else loss_sum + loss * batch
            seen += batch
            if (step + 1) % log_every == 0 or step + 1 == steps:
                total = float(loss_sum)
                value = (total - read_sum) / (seen - read_seen)
                if not math.isfinite(value):
                    raise TrainingDiverged(f"loss became {value} at epoch {epoch + 1}, by step {step + 1}; "
                                           f"lower the learning rate (now {config.lr})")
                read_sum, read_seen = total, seen
                if on_step is not None:
                    on_step(step + 1, steps, value)
        elapsed = time.perf_counter() - start
        if ema is not None:
            ema.swap(model)
        top1, top5 = evaluate_fn(model, train_loader, val_loader)
        if ema is not None:
            ema.swap(model)
        result = EpochResult(epoch + 1, read_sum / max(seen, 1), top1, top5, float(optimizer.get_lr()),
                             seen / max(elapsed, 1e-9), elapsed)
        history.append(result)
        if save is not None and rank == 0:  # one writer
            best = top1 >= max(h.top1 for h in history)
            portable = _renamed(optimizer.state_dict(), _state_names(optimizer, model))
            save({"model": model.state_dict(), "optimizer": portable,
                  "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                  "ema": ema.shadow if ema is not None else None,
                  "ema_updates": ema.updates if ema is not None else 0,
                  "rng": paddle.get_rng_state(), "epoch": epoch + 1,
                  "history": [h.__dict__ for h in history]}, best)
        if on_epoch is not None:
            on_epoch(result)
    return history


def _classification_loss(net, images, labels, epoch, step, config: TrainConfig, classes: int):
    """Cross-entropy with label smoothing; on mixup / cutmix batches, against the blended soft targets (the mix
    drawn from (seed, epoch, step), so a resumed run mixes the same way)."""
    import paddle.nn.functional as F

    if config.mixup <= 0 and config.cutmix <= 0:
        return F.cross_entropy(net(images), labels, label_smoothing=config.label_smoothing)
    from .augment import mix_batch

    rng = np.random.default_rng((config.seed, epoch, step, 1))
    images, targets = mix_batch(images, labels, classes, config.mixup, config.cutmix, config.label_smoothing, rng)
    return F.cross_entropy(net(images), targets, soft_label=True)


def _average_gradients(parameters: list, world: int):
    """Average the gradients of `parameters` over the processes in one all-reduce. Every process must hold
    gradients for the same parameters: a supernet's processes draw the same subnets (from seed, epoch, step)."""
    import paddle

    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = paddle.concat([g.flatten() for g in grads])
    paddle.distributed.all_reduce(flat)
    offset = 0
    for g in grads:
        size = int(np.prod(g.shape))
        g.set_value((flat[offset:offset + size] / world).reshape(g.shape))
        offset += size


def _anneal_weight_decay(optimizer, config: TrainConfig, progress: float):
    """MobileOne's schedule: the weight decay of the decayed parameter groups follows a cosine from
    config.weight_decay to config.weight_decay_end over the run (Paddle's Momentum reads a group's
    `regularization_coeff` at every step)."""
    value = config.weight_decay_end + (config.weight_decay - config.weight_decay_end) * 0.5 * (
        1 + math.cos(math.pi * min(progress, 1.0)))
    for group in optimizer._param_groups:
        if group.get("regularization_coeff", 0.0) > 0:
            group["regularization_coeff"] = value


def _recalibrate_and_evaluate(model, train_loader, val_loader, batches: int) -> tuple[float, float]:
    recalibrate_batch_norm(model, train_loader, batches)
    _, top1, top5 = evaluate(model, val_loader)
    return top1, top5


def _train_step(compute_loss: Callable, optimizer, scaler, config: TrainConfig, synchronize: Callable | None = None):
    """`compute_loss()` under autocast, scaled backward, `synchronize()` (averaging gradients across processes),
    then the scaler's step (unscale, skip on inf/NaN gradients, clip, update) and update. The returned loss is
    detached and still on the device."""
    import paddle

    with warnings.catch_warnings():  # Paddle's autocast is a no-op off accelerators, and says so every step
        warnings.filterwarnings("ignore", message="amp_guard can only be enabled on")
        with paddle.amp.auto_cast(enable=config.amp, dtype=config.amp_dtype, level="O1"):
            loss = compute_loss()
    scaler.scale(loss).backward()
    if synchronize is not None:
        synchronize()
    scaler.step(optimizer)
    scaler.update()
    # None, not zeros: a weight this step did not use (a supernet bank) must not move by momentum or decay, or a
    # resumed run, whose weights start without gradients, would update differently from an uninterrupted one
    optimizer.clear_grad(set_to_zero=False)
    return loss.detach()
