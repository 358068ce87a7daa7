"""When a trial stops early: Optuna's median rule on proxy top-1, never after the last epoch."""
from __future__ import annotations

from .storage import trained_trials

PRUNE_STARTUP_TRIALS, PRUNE_WARMUP_EPOCHS = 3, 2  # epoch 1 is too noisy to prune on


def make_pruner(multi: bool):
    """Optuna's median pruner for one objective; with two, Optuna's pruners do not apply and `prune_now` applies
    the same rule itself."""
    import optuna

    if multi:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=PRUNE_WARMUP_EPOCHS)


def prune_now(trial, epoch: int, epochs: int, top1: float | None = None, multi: bool = False) -> bool:
    """The pruner's verdict after `epoch`, except after the last: the network is trained by then, and pruning
    would discard a finished result. Two-objective studies prune on top-1 alone (Optuna's pruners take one
    objective), by the same median rule."""
    if epoch >= epochs:
        return False
    return below_median(trial.study, epoch, top1) if multi else trial.should_prune()


def below_median(study, epoch: int, top1: float) -> bool:
    """Optuna's MedianPruner rule (3 startup trials, 2 warm-up epochs) on the top-1 histories of the trained
    trials: below their median at this epoch."""
    import statistics

    if epoch < PRUNE_WARMUP_EPOCHS:
        return False
    seen = [h["top1"] for t in trained_trials(study) for h in t.user_attrs.get("history", [])
            if h["epoch"] == epoch]
    return len(seen) >= PRUNE_STARTUP_TRIALS and top1 < statistics.median(seen)
