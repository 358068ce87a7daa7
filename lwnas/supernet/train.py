"""Training the supernet with the sandwich rule and in-place distillation (BigNAS, Yu et al. 2020), on the
shared trainer (`lwnas.train.train`) and run folders (`lwnas.retrain.train_folder`): same checkpoints, resume,
EMA, AMP, logs and progress as `lwnas train`.

Every batch trains the space's largest network on the labels, then its smallest and `random_subnets` uniformly
drawn networks (under the budget, when one is given) on the largest one's predictions, and takes one optimizer
step on the summed loss. Without the sandwich rule only the random networks train, on the labels (SPOS). The
draws depend only on (seed, epoch, step), so a resumed run draws what the killed one would have.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import LwnasError
from ..search.space import SearchSpace
from ..train.loop import evaluate, recalibrate_batch_norm
from ..train.settings import TrainConfig
from .network import Supernet
from .sharing import check_separate


@dataclass(frozen=True)
class Sandwich:
    random_subnets: int = 2  # drawn per batch besides the largest and smallest
    distill: bool = True  # students learn the largest network's predictions, not the labels
    budget: int | None = None  # MAdds: random subnets are drawn under it
    sandwich: bool = True  # False: only the random subnets, on the labels (SPOS's uniform rule)

    def __post_init__(self):
        if self.distill and not self.sandwich:
            raise LwnasError("in-place distillation needs the sandwich rule: its teacher is the largest subnet")


def identity(space: SearchSpace, sandwich: Sandwich, separate=(), within: SearchSpace | None = None) -> str:
    """What a supernet checkpoint must match to be resumed or used: the space's content, the sandwich rule, the
    parameters kept separate and the sub-space it is restricted to."""
    rule = ", ".join(f"{k} {v}" for k, v in asdict(sandwich).items())
    kept = f", separate {' '.join(sorted(separate))}" if separate else ""
    restricted = f", within {within.name} ({_digest(within)})" if within is not None else ""
    return f"space {space.name} ({_digest(space)}), {rule}{kept}{restricted}"


def _digest(space: SearchSpace) -> str:
    return hashlib.sha256(space.text.encode()).hexdigest()[:12]


def sandwich_loss(supernet: Supernet, sandwich: Sandwich, seed: int, label_smoothing: float):
    """The loss of one batch under the sandwich rule (a `loss_fn` for lwnas.train.train)."""
    import paddle.nn.functional as F

    def loss_fn(net, images, labels, epoch, step):
        rng = np.random.default_rng((seed, epoch, step))
        loss, target = 0.0, None
        drawn = [supernet.space.random_sample(rng, supernet.num_classes, sandwich.budget, shrink=True).spec
                 for _ in range(sandwich.random_subnets)]
        if sandwich.sandwich:
            supernet.activate(supernet.largest)
            teacher = net(images)
            loss = F.cross_entropy(teacher, labels, label_smoothing=label_smoothing)
            target = F.softmax(teacher.detach().astype("float32"), axis=1) if sandwich.distill else None
            drawn = [supernet.smallest] + drawn
        for spec in drawn:
            supernet.activate(spec)
            logits = net(images)
            if target is None:
                loss = loss + F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
            else:
                loss = loss + F.cross_entropy(logits.astype("float32"), target, soft_label=True)
        return loss

    return loss_fn


def evaluate_subnet(supernet: Supernet, spec, train_loader, val_loader, batches: int) -> tuple[float, float, float]:
    """(loss, top-1, top-5) of one subnet with inherited weights, its batch-norm statistics re-estimated first."""
    subnet = supernet.subnet(spec)
    recalibrate_batch_norm(subnet, train_loader, batches)
    return evaluate(subnet, val_loader)


def train_supernet(space: SearchSpace, data: str, output: Path, config: TrainConfig, sandwich: Sandwich,
                   resume: bool = False, skip_bad: bool = False, stream=sys.stdout, epochs: int | None = None,
                   from_disk: bool | None = None, separate=(), within: SearchSpace | None = None,
                   init: Path | None = None):
    """Train the supernet of `space` (with `separate` parameters' values in banks of their own: `Supernet`) into
    the run folder `output` (or resume it); each epoch reports the largest subnet's top-1 (the run's top-1) and
    the smallest's. `within` restricts it to a sub-space (`Supernet.restrict`); `init`, a supernet run of the same
    space, gives its starting weights (few-shot NAS starts each split from the trained one-shot supernet)."""
    from ..train.runs import train_folder

    smallest: dict[str, float] = {}

    def hooks(supernet):
        _check_budget(supernet, sandwich)

        def evaluate_fn(model, train_loader, val_loader):
            smallest["top1"] = evaluate_subnet(supernet, supernet.smallest, train_loader, val_loader,
                                               config.bn_recalibration)[1]
            return evaluate_subnet(supernet, supernet.largest, train_loader, val_loader, config.bn_recalibration)[1:]

        return {"loss_fn": sandwich_loss(supernet, sandwich, config.seed, config.label_smoothing),
                "evaluate_fn": evaluate_fn, "epoch_note": lambda: f" (smallest {smallest['top1']:.2f}%)"}

    separate = sorted(check_separate(separate))
    key = identity(space, sandwich, separate, within)

    def make_model(classes):
        supernet = Supernet(space, len(classes), separate)
        if init is not None:
            _load_weights(supernet, init, space, separate)
        if within is not None:
            supernet.restrict(within)
        return supernet

    files = {"space.yaml": space.text, **({"within.yaml": within.text} if within is not None else {})}
    return train_folder(output, data, config,
                        identity={"supernet": key, "space": space.text, "sandwich": asdict(sandwich),
                                  "separate": separate, **({"within": within.text} if within is not None else {})},
                        key="supernet", files=files, make_model=make_model, hooks=hooks, resume=resume,
                        skip_bad=skip_bad, stream=stream, epochs=epochs, from_disk=from_disk)


def _load_weights(supernet: Supernet, path: Path, space: SearchSpace, separate: list[str]):
    """The trained weights of the supernet checkpoint or run folder `path`, which must hold `space`."""
    from ..train.checkpoint import trained_weights
    from .extract import supernet_state

    state = supernet_state(path)
    if state["space"] != space.text or sorted(state.get("separate", [])) != separate:
        raise LwnasError(f"{path} is not a supernet of space {space.name} with the same separate parameters; "
                         f"initialise from one that is")
    supernet.set_state_dict(trained_weights(state))


def _check_budget(supernet: Supernet, sandwich: Sandwich):
    """Before the first step: the budget must admit the space's smallest network (counted with the data's classes),
    and random draws shrunk toward it must land under it, or training would stop at its first draw."""
    from ..model.cost import count

    if sandwich.budget is None:
        return
    macs = count(supernet.smallest).macs
    if macs > sandwich.budget:
        raise LwnasError(f"budget {sandwich.budget} MAdds is below the smallest network of space "
                         f"{supernet.space.name} ({macs} MAdds with {supernet.num_classes} classes)")
    rng = np.random.default_rng(0)
    try:
        for _ in range(20):
            supernet.space.random_sample(rng, supernet.num_classes, sandwich.budget, attempts=50, shrink=True)
    except LwnasError:
        raise LwnasError(f"budget {sandwich.budget} MAdds: random networks of space {supernet.space.name} rarely "
                         f"fit it even shrunk (none in 50 draws); raise --budget toward the space's smallest "
                         f"network ({macs} MAdds) times two or more") from None
