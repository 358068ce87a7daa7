"""Run folders: full training of a found (or named) network, or of a supernet, with checkpoints that resume
exactly.

A run folder holds spec.yaml, classes.json, config.json, metrics.jsonl / metrics.csv and the checkpoints
(lwnas.train.checkpoint). Checkpoints carry the spec, arch hash, class names and data set, so nothing else is
needed to evaluate, predict with or export a trained model (lwnas.deploy).
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import LwnasError
from ..progress import EpochBar
from ..model.spec import ArchSpec
from . import checkpoint
from .checkpoint import load_trained
from .loop import EpochResult
from .settings import TrainConfig


def _write_logs(folder: Path, rows: list[dict], append: bool = True):
    """Per-epoch rows to metrics.jsonl and metrics.csv; append=False rewrites both from `rows`."""
    mode = "a" if append else "w"
    with open(folder / "metrics.jsonl", mode) as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    header = not append or not (folder / "metrics.csv").exists()
    with open(folder / "metrics.csv", mode, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(EpochResult.__dataclass_fields__))
        if header:
            writer.writeheader()
        writer.writerows(rows)


def _visualdl(folder: Path):
    try:
        from visualdl import LogWriter
    except ImportError:
        return None
    return LogWriter(logdir=str(folder / "visualdl"))


def train_run(spec: ArchSpec, data: str, output: Path, config: TrainConfig, resume: bool = False,
              skip_bad: bool = False, stream=sys.stdout, epochs: int | None = None, from_disk: bool | None = None,
              init: Path | None = None):
    """Train `spec` into the run folder `output`, or continue the run there (`resume`) with its stored settings;
    `epochs` (--epochs given with --resume) may extend it, a finished run included: the cosine schedule then
    stretches to the new length. `init` (a run folder or checkpoint of the same architecture, e.g. one taken out
    of a supernet) gives the starting weights of a new run."""
    from ..model.build import build

    start = None
    if init is not None and not resume:
        start, _, init_spec = load_trained(init)
        if init_spec.arch_hash != spec.replace(num_classes=init_spec.num_classes).arch_hash:
            raise LwnasError(f"--init {init} holds another architecture ({init_spec.name}, {init_spec.arch_hash}) "
                             f"than --arch ({spec.name}, {spec.arch_hash})")

    def make_model(classes):
        if start is not None and len(classes) != start.spec.num_classes:
            raise LwnasError(f"--init {init} has {start.spec.num_classes} classes, the data {len(classes)}")
        model = build(spec, len(classes))
        if start is not None:
            model.set_state_dict(start.state_dict())
        return model

    return train_folder(output, data, config, identity={"spec": spec.to_yaml(), "arch_hash": spec.arch_hash},
                        key="arch_hash", files={"spec.yaml": spec.to_yaml()}, make_model=make_model, resume=resume,
                        skip_bad=skip_bad, stream=stream, epochs=epochs, from_disk=from_disk)


def train_folder(output: Path, data: str, config: TrainConfig, *, identity: dict, key: str, files: dict[str, str],
                 make_model: Callable, hooks: Callable | None = None, resume: bool = False, skip_bad: bool = False,
                 stream=sys.stdout, epochs: int | None = None, from_disk: bool | None = None):
    """The run-folder side of training, for a network (`train_run`) or a supernet: refuse to mix runs (the
    checkpoints' `identity[key]` must match), resume with the stored settings, write `files` and the logs, print
    progress. `make_model(classes)` builds what is trained; `hooks(model)` may give `loss_fn`, `evaluate_fn`
    (see lwnas.train.train) and `epoch_note()`, a text appended to each epoch's line."""
    from .devices import distributed, seed_everything
    from .loop import train
    from .settings import warmup_epochs
    from .splits import load_data

    state = checkpoint.load_latest(output, warn=lambda m: print(m, file=sys.stderr)) if output.exists() else None
    if state is not None and not resume:
        raise LwnasError(f"{output} already holds a training run; pass --resume to continue it or choose "
                         f"another --output")
    if resume and state is None:
        raise LwnasError(f"nothing to resume in {output}: no checkpoint there")
    if state is not None:
        if state.get(key) != identity[key]:
            raise LwnasError(f"{output} holds another run ({key} {state.get(key)}, asked {identity[key]}); choose "
                             f"another --output")
        config = TrainConfig.from_dict(state["config"], f"{output}'s stored settings")
        if epochs is not None and epochs != config.epochs:
            if epochs < state["epoch"]:
                raise LwnasError(f"{output} has trained {state['epoch']} epochs already; --epochs {epochs} cannot "
                                 f"shorten it (give more epochs to extend it)")
            stream.write(f"extending {output} from {config.epochs} to {epochs} epochs\n")
            config = TrainConfig.from_dict({**config.to_dict(), "epochs": epochs})
    if warmup_epochs(config) < config.warmup_epochs:
        stream.write(f"warm-up shortened from {config.warmup_epochs:g} to {warmup_epochs(config):g} epochs, a "
                     f"quarter of this {config.epochs}-epoch run\n")
    train_set, val_set = load_data(data, config, skip_bad, from_disk)
    skipped = train_set.skipped_note(val_set)
    if skipped:
        stream.write(skipped + "\n")
    writer_process = distributed()[0] == 0  # under paddle.distributed.launch only rank 0 writes files
    if writer_process:
        output.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (output / name).write_text(text)
        (output / "classes.json").write_text(json.dumps(train_set.classes))
        (output / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    seed_everything(config.seed)
    model = make_model(train_set.classes)
    extra = hooks(model) if hooks is not None else {}
    epoch_note = extra.pop("epoch_note", lambda: "")
    from .splits import data_reference

    identity = {**identity, "data": data_reference(data), "classes": train_set.classes, "config": config.to_dict()}
    writer = _visualdl(output) if writer_process else None
    bar, done, started = EpochBar(stream), [], time.time()

    def on_step(step, steps, loss):
        bar.update(f"epoch {(state['epoch'] if state else 0) + len(done) + 1}/{config.epochs}", step, steps, loss)

    def on_epoch(result):
        if writer_process:
            _write_logs(output, [result.__dict__])
        if writer is not None:
            for name in ("loss", "top1", "top5", "lr", "images_per_s"):
                writer.add_scalar(name, getattr(result, name), result.epoch)
        done.append(result.epoch)
        per_epoch = (time.time() - started) / len(done)
        left = time.strftime("%H:%M:%S", time.gmtime(per_epoch * (config.epochs - result.epoch)))
        stream.write(f"epoch {result.epoch}/{config.epochs}: loss {result.loss:.4f} "
                     f"val top-1 {result.top1:.2f}% top-5 {result.top5:.2f}%{epoch_note()} lr {result.lr:.5f} "
                     f"{result.images_per_s:.0f} img/s, {left} left\n")
        stream.flush()

    if state is not None:
        stream.write(f"resuming {output} after epoch {state['epoch']} of {config.epochs}, with the run's stored "
                     f"settings (config.json)\n")
        if writer_process:  # a kill can fall between the log and the checkpoint: the checkpoint's history rules
            _write_logs(output, state["history"], append=False)
    history = train(model, train_set, val_set, config, on_epoch=on_epoch, on_step=on_step, resume=state,
                    save=lambda s, best: checkpoint.save(output, {**s, **identity}, best), **extra)
    return model, history
