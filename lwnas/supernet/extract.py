"""Taking networks out of a trained supernet: its checkpoint back as a Supernet, one subnet's accuracy with
inherited weights, and a subnet written as a normal run folder that `lwnas train --init`, `eval` and `export` take.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import LwnasError
from ..model.spec import ArchSpec
from ..search.space_files import space_from_text
from ..train import checkpoint
from ..train.settings import TrainConfig
from .network import Supernet


def supernet_state(path: Path) -> dict:
    """The checkpoint state of a supernet checkpoint file or run folder (its last checkpoint: a supernet's best is
    its last epoch's largest subnet, not a better supernet)."""
    if path.is_dir():
        path = path / checkpoint.LAST
    state = checkpoint.load(path)
    if "supernet" not in state:
        raise LwnasError(f"{path} is a network's checkpoint, not a supernet's (train one with lwnas supernet train)")
    return state


def load_supernet(path: Path) -> tuple[Supernet, dict]:
    """(supernet with the checkpoint's trained weights, EMA ones if any; checkpoint state) from
    `supernet_state(path)`."""
    state = supernet_state(path)
    space = space_from_text(state["space"], f"{path} (its search space)")
    supernet = Supernet(space, len(state["classes"]), state.get("separate", ()))
    supernet.set_state_dict(checkpoint.trained_weights(state))
    if "within" in state:
        supernet.restrict(space_from_text(state["within"], f"{path} (the sub-space it was trained on)"))
    supernet.eval()
    return supernet, state


def extract(supernet: Supernet, state: dict, spec: ArchSpec, data: str, output: Path, batches: int | None = None,
            skip_bad: bool = False) -> dict:
    """Write `spec` with its inherited weights (batch-norm statistics re-estimated on `batches` training batches of
    `data`) as a run folder: spec.yaml, classes.json, config.json and the best checkpoint of `lwnas.build(spec)`.
    Returns the subnet's top-1/top-5 on the data's validation split."""
    from ..train.loop import loaders
    from ..train.splits import load_data
    from .train import evaluate_subnet

    config = TrainConfig.from_dict(state["config"], "the supernet's stored settings")
    batches = config.bn_recalibration if batches is None else batches
    train_set, val_set = load_data(data, config, skip_bad)
    if train_set.classes != state["classes"]:
        raise LwnasError(f"{data} has classes {train_set.classes[:5]}..., the supernet was trained on "
                         f"{state['classes'][:5]}...; extract with the data it was trained on")
    _, _, train_loader, val_loader = loaders(train_set, val_set, config)
    spec = spec.replace(num_classes=len(state["classes"]))
    _, top1, top5 = evaluate_subnet(supernet, spec, train_loader, val_loader, batches)
    output.mkdir(parents=True, exist_ok=True)
    (output / "spec.yaml").write_text(spec.to_yaml())
    (output / "classes.json").write_text(json.dumps(state["classes"]))
    (output / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    result = {"arch_hash": spec.arch_hash, "top1": top1, "top5": top5, "bn_batches": batches}
    run = {"model": supernet.subnet(spec).weights(), "spec": spec.to_yaml(), "arch_hash": spec.arch_hash,
           "classes": state["classes"], "config": config.to_dict(), "epoch": 0, "history": [],
           "inherited": {**result, "supernet": state["supernet"]}}
    checkpoint.save_best(output, run)
    return result
