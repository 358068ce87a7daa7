"""Checkpoints that survive kill -9: written to a temporary file and renamed into place, the previous good
one kept beside it. A checkpoint holds everything to continue exactly (model, optimizer, lr schedule, EMA,
epoch, RNG state, history) and everything to use the model alone (spec, arch hash, class names)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import LwnasError

LAST, PREVIOUS, BEST = "last.pdckpt", "previous.pdckpt", "best.pdckpt"


def save(folder: Path, state: dict, best: bool = False):
    """Write `state` as folder/last.pdckpt atomically; the old last becomes previous.pdckpt."""
    import paddle

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{LAST}.tmp"
    paddle.save(state, str(tmp))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    if (folder / LAST).exists():
        os.replace(folder / LAST, folder / PREVIOUS)
    os.replace(tmp, folder / LAST)
    if best:
        save_best(folder, state)


def save_best(folder: Path, state: dict):
    """Write folder/best.pdckpt atomically: the weights and identity of `state`, without what only resuming needs."""
    import paddle

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{BEST}.tmp"
    paddle.save({k: v for k, v in state.items() if k not in ("optimizer", "schedule", "rng")}, str(tmp))
    os.replace(tmp, folder / BEST)


def load(path: Path) -> dict:
    """Read one checkpoint file; a truncated or foreign file is a clear error."""
    import paddle

    if not path.is_file():
        raise LwnasError(f"checkpoint not found: {path}")
    try:
        state = paddle.load(str(path))
    except Exception as err:  # paddle raises assorted errors on truncated files
        raise LwnasError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__})") from None
    if not isinstance(state, dict) or "model" not in state or not ("spec" in state or "supernet" in state):
        raise LwnasError(f"{path} is not an lwnas checkpoint")
    return state


def load_latest(folder: Path, warn=print) -> dict | None:
    """The newest readable checkpoint in a run folder: last, else previous (with a warning); None if none."""
    candidates = [folder / LAST, folder / PREVIOUS]
    if not any(p.exists() for p in candidates):
        return None
    problems = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = load(path)
        except LwnasError as err:
            problems.append(str(err))
            continue
        for problem in problems:
            warn(f"warning: {problem}; resuming from {path.name} instead")
        return state
    raise LwnasError(f"no readable checkpoint in {folder}: {'; '.join(problems)}")


def trained_weights(state: dict) -> dict:
    """The weights a checkpoint's model is used with: the EMA ones when there are any."""
    return state["ema"] if state.get("ema") is not None else state["model"]


def load_trained(path: Path):
    """(model in eval mode with the EMA weights when there are any, checkpoint state) from a checkpoint file
    or a run folder (its best checkpoint, else its last)."""
    from ..model.build import build
    from ..model.spec import ArchSpec

    if path.is_dir():
        path = path / BEST if (path / BEST).exists() else path / LAST
    state = load(path)
    if "supernet" in state:
        raise LwnasError(f"{path} is a supernet checkpoint; take a network out of it first: lwnas supernet extract "
                         f"{path} --arch NAME|SPEC.yaml|STUDY:TRIAL --data DATA --output DIR")
    spec = ArchSpec.from_yaml(state["spec"], str(path))
    model = build(spec, len(state["classes"]))
    model.set_state_dict(trained_weights(state))
    model.eval()
    return model, state, spec
