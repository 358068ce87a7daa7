"""When a trial stops early, on validation top-1 at the end of an epoch, never after the last epoch.

- `sha` (the default): asynchronous successive halving (Optuna's SuccessiveHalvingPruner). Rungs at
  min_epochs * reduction_factor**k epochs; at a rung a trial goes on only if its top-1 is among the best
  1/reduction_factor of the trials that reached that rung. Trials that pass the last rung train to the end of
  the schedule and are finished networks.
- `hyperband`: several successive-halving brackets with different first rungs (Optuna's HyperbandPruner).
- `median`: stop below the median of earlier trials at the same epoch (from epoch 2, after 3 trials).
- `none`: every trial trains to the end.

Validation top-1 is the rung score: from the reference ranking's histories (benchmarks/rank_fidelity.py) top-1
after 2 / 6 of 15 epochs ranks `micro` at Kendall tau 0.44 / 0.64 against the finished networks, the sum of
training losses (TSE) at 0.19 / 0.40. With two objectives Optuna's pruners do not apply, and `prune_now`
applies the same rules to top-1 itself (hyperband excepted).
"""
from __future__ import annotations

import statistics

from ..errors import LwnasError
from .storage import trained_trials

PRUNERS = ("sha", "hyperband", "median", "none")
MEDIAN_STARTUP_TRIALS, MEDIAN_WARMUP_EPOCHS = 3, 2  # epoch 1 is too noisy to prune on


def make_pruner(settings):
    """The Optuna pruner of a one-objective study; NopPruner with two objectives, where `prune_now` decides."""
    import optuna

    name, epochs = settings.pruner, settings.proxy.epochs
    if name not in PRUNERS:
        raise LwnasError(f"unknown pruner {name!r}; expected one of: {', '.join(PRUNERS)}")
    if settings.multi:
        if name == "hyperband":
            raise LwnasError("--pruner hyperband takes one objective; with accuracy-latency use sha or median")
        return optuna.pruners.NopPruner()
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=settings.min_epochs,
                                                      reduction_factor=settings.reduction_factor)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=settings.min_epochs, max_resource=epochs,
                                              reduction_factor=settings.reduction_factor)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS,
                                           n_warmup_steps=MEDIAN_WARMUP_EPOCHS)
    return optuna.pruners.NopPruner()


def rungs(settings) -> list[int]:
    """The epochs at which successive halving decides (before the last epoch)."""
    out, rung = [], settings.min_epochs
    while rung < settings.proxy.epochs:
        out.append(rung)
        rung *= settings.reduction_factor
    return out


def prune_now(trial, epoch: int, top1: float, settings) -> bool:
    """The pruner's verdict after `epoch`, never after the last: the network is finished then, and pruning would
    discard it. Two-objective studies decide on top-1 alone, by the rule of the chosen pruner."""
    if epoch >= settings.proxy.epochs:
        return False
    if not settings.multi:
        return trial.should_prune()
    if settings.pruner == "median":
        return below_median(trial.study, epoch, top1)
    if settings.pruner == "sha" and epoch in rungs(settings):
        return not among_best(trial.study, trial.number, epoch, top1, settings.reduction_factor)
    return False


def _top1_at(study, epoch: int, exclude: int | None = None) -> list[float]:
    """Top-1 at `epoch` of every trial (finished, stopped or running) whose history reaches it."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
    return [h["top1"] for t in study.get_trials(deepcopy=False, states=states) if t.number != exclude
            for h in t.user_attrs.get("history", []) if h["epoch"] == epoch]


def among_best(study, number: int, epoch: int, top1: float, reduction_factor: int) -> bool:
    """Asynchronous successive halving's rule, as Optuna's SuccessiveHalvingPruner applies it: go on if top-1 is
    within the best 1/reduction_factor of all top-1s at this rung, this one included (while fewer than
    reduction_factor trials reached the rung, only if it is the best of them)."""
    competing = sorted(_top1_at(study, epoch, exclude=number) + [top1], reverse=True)
    keep = max(1, len(competing) // reduction_factor)
    return top1 >= competing[keep - 1]


def below_median(study, epoch: int, top1: float) -> bool:
    """Optuna's MedianPruner rule (3 startup trials, 2 warm-up epochs) on the top-1 histories of the finished
    trials: below their median at this epoch."""
    if epoch < MEDIAN_WARMUP_EPOCHS:
        return False
    seen = [h["top1"] for t in trained_trials(study) for h in t.user_attrs.get("history", [])
            if h["epoch"] == epoch]
    return len(seen) >= MEDIAN_STARTUP_TRIALS and top1 < statistics.median(seen)


def epochs_spent(study) -> int:
    """Training epochs the study's trials have run, each architecture counted once: a retried trial that
    continued from its original's checkpoint did not train those epochs again."""
    reached: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        arch, history = t.user_attrs.get("arch_hash"), t.user_attrs.get("history")
        if arch and history and "duplicate_of" not in t.user_attrs:
            reached[arch] = max(reached.get(arch, 0), history[-1]["epoch"])
    return sum(reached.values())
