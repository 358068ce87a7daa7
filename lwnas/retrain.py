"""`lwnas train | eval | predict | export`: full training of a found (or named) network with checkpoints
that resume exactly, and the deployable forms of the result.

A run folder holds spec.yaml, classes.json, config.json, metrics.jsonl / metrics.csv and the checkpoints
(lwnas.checkpoint). Checkpoints carry the spec, arch hash and class names, so nothing else is needed to
evaluate, predict with or export a trained model.
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Callable

from . import checkpoint
from .errors import LwnasError
from .spec import ArchSpec
from .train import EpochResult, TrainConfig


def resolve_arch(arch: str, storage: str | None = None, runs_dir: str = "runs") -> ArchSpec:
    """A config name, a spec YAML, or STUDY:TRIAL (a trained trial of a search study)."""
    from .configs import resolve

    if ":" in arch and not arch.endswith((".yaml", ".yml")) and "/" not in arch.split(":")[0]:
        study_name, _, number = arch.rpartition(":")
        if not number.isdigit():
            raise LwnasError(f"--arch {arch!r}: expected STUDY:TRIAL with a trial number, e.g. micro-12M-synthetic-acc:3")
        import optuna

        from .storage import load_study

        study = load_study(study_name, storage, runs_dir)
        trained = {t.number: t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                   if "spec" in t.user_attrs}
        found = [t for t in study.get_trials(deepcopy=False) if t.number == int(number)]
        if found and found[0].user_attrs.get("duplicate_of") in trained:  # a repeat: the trial that trained it
            number = str(found[0].user_attrs["duplicate_of"])
        if int(number) not in trained:
            state = {"FAIL": "failed"}.get(found[0].state.name, found[0].state.name.lower()) if found else ""
            what = f"trial {number} is {state}, not trained" if found else f"no trial {number}"
            listed = ", ".join(map(str, sorted(trained)[:20])) + (" ..." if len(trained) > 20 else "")
            raise LwnasError(f"study {study_name!r}: {what}; trained trials: {listed or 'none'}")
        return ArchSpec.from_yaml(trained[int(number)].user_attrs["spec"], f"{study_name}:{number}")
    return resolve(arch)


def searched_settings(arch: str, storage: str | None = None, runs_dir: str = "runs") -> dict | None:
    """The settings of the study that STUDY:TRIAL names (its data set, training schedule, ...), else None."""
    if ":" not in arch or arch.endswith((".yaml", ".yml")) or "/" in arch.split(":")[0]:
        return None
    from .storage import load_study

    return load_study(arch.rpartition(":")[0], storage, runs_dir).user_attrs.get("settings")


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
    from .build import build

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
    from .splits import load_data
    from .train import distributed, seed_everything, train, warmup_epochs

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
    tty = stream.isatty()
    bar, started = {}, {"epoch": state["epoch"] if state else 0, "time": time.time()}

    def on_step(step, steps, loss):
        """A progress bar inside the epoch with its rate and time left (a line every 30 s when not a terminal)."""
        from tqdm import tqdm

        if "bar" not in bar:
            epoch = started["epoch"] + len(bar.get("done", [])) + 1
            bar["bar"] = tqdm(total=steps, desc=f"epoch {epoch}/{config.epochs}", unit="step", file=stream,
                              leave=False, mininterval=0.5 if tty else 30, delay=0 if tty else 30,
                              dynamic_ncols=tty)
        bar["bar"].update(step - bar["bar"].n)
        bar["bar"].set_postfix_str(f"loss {loss:.3f}", refresh=False)
        if step == steps:
            bar.pop("bar").close()

    def on_epoch(result):
        if writer_process:
            _write_logs(output, [result.__dict__])
        if writer is not None:
            for name in ("loss", "top1", "top5", "lr", "images_per_s"):
                writer.add_scalar(name, getattr(result, name), result.epoch)
        bar.setdefault("done", []).append(result.epoch)
        per_epoch = (time.time() - started["time"]) / len(bar["done"])
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


def load_trained(path: Path):
    """(model in eval mode with the EMA weights when there are any, checkpoint state) from a checkpoint file
    or a run folder (its best checkpoint, else its last)."""
    from .build import build

    if path.is_dir():
        path = path / checkpoint.BEST if (path / checkpoint.BEST).exists() else path / checkpoint.LAST
    state = checkpoint.load(path)
    if "supernet" in state:
        raise LwnasError(f"{path} is a supernet checkpoint; take a network out of it first: lwnas supernet extract "
                         f"{path} --arch NAME|SPEC.yaml|STUDY:TRIAL --data DATA --output DIR")
    spec = ArchSpec.from_yaml(state["spec"], str(path))
    model = build(spec, len(state["classes"]))
    model.set_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    model.eval()
    return model, state, spec


def evaluate_run(path: Path, data: str | None, skip_bad: bool = False, split: str = "val") -> dict:
    """Top-1/top-5 of a trained run on `split` of `data` (default: the data set it was trained on): 'val', the
    split it was selected on (held out from the training images as its training held it out), or 'test',
    reported only, never selected on."""
    from .splits import load_data, on_classes, test_set
    from .train import evaluate, loaders

    model, state, spec = load_trained(path)
    data = data or trained_on(state, path)
    config = TrainConfig.from_dict(state["config"])
    if split == "test":
        images = test_set(data, config, skip_bad, classes=state["classes"])
    else:
        whole = TrainConfig.from_dict({**config.to_dict(), "val_subset": None})  # all of it, not the subset
        images = on_classes(load_data(data, whole, skip_bad)[1], state["classes"], data, split)
    _, _, _, loader = loaders(images, images, config)
    loss, top1, top5 = evaluate(model, loader)
    return {"arch_hash": spec.arch_hash, "data": data, "split": split, "images": len(images), "loss": loss,
            "top1": top1, "top5": top5}


def trained_on(state: dict, path: Path) -> str:
    """The data set a checkpoint was trained on, as recorded in it."""
    if "data" not in state:
        raise LwnasError(f"{path} does not record its data set (written by an older lwnas); pass --data")
    return state["data"]


def predict(path: Path, images: list[str], top_k: int = 5) -> list[dict]:
    import numpy as np
    import paddle
    from PIL import Image

    from .data import Augmented, ImageSet, _square, stored_side

    model, state, _ = load_trained(path)
    resolution = state["config"]["resolution"]
    results = []
    for image in images:
        try:
            with Image.open(image) as img:
                array = _square(img.convert("RGB"), stored_side(resolution))
        except FileNotFoundError:
            raise LwnasError(f"{image}: image file not found") from None
        except (OSError, ValueError) as err:
            raise LwnasError(f"{image}: unreadable image ({type(err).__name__})") from None
        x, _ = Augmented(ImageSet(array[None], np.zeros(1, np.int64), state["classes"]), resolution, False)[0]
        with paddle.no_grad():
            probs = paddle.nn.functional.softmax(model(paddle.to_tensor(x[None])), axis=1).numpy()[0]
        best = np.argsort(-probs)[:top_k]
        results.append({"image": image, "top": [{"class": state["classes"][i], "index": int(i),
                                                 "probability": float(probs[i])} for i in best]})
    return results


def export(path: Path, output: Path, fmt: str = "paddle", resolution: int | None = None) -> Path:
    """Export a trained checkpoint for deployment (see `export_model`) at the resolution it was trained and
    evaluated at, unless `resolution` says otherwise, with what a deployment needs beside it: preprocess.json
    (see `preprocessing`), classes.json and spec.yaml."""
    model, state, spec = load_trained(path)
    res = resolution or state["config"]["resolution"]
    exported = export_model(model, spec, output, fmt, res)
    files = sorted(f.name for f in output.iterdir() if f.name.startswith("model."))  # Paddle: graph + weights
    (output / "preprocess.json").write_text(json.dumps(
        {"format": fmt, "files": files, **preprocessing(res, spec.in_channels), "classes": state["classes"]}, indent=2))
    (output / "classes.json").write_text(json.dumps(state["classes"]))
    (output / "spec.yaml").write_text(spec.to_yaml())
    return exported


def preprocessing(resolution: int, channels: int = 3) -> dict:
    """How lwnas evaluates and predicts, in words a deployment can follow without lwnas (see the README's
    example): RGB; shorter side resized to `resize_short` (bilinear), centre square of that side, resized to
    `resolution` (bilinear); (pixel - mean) / std with pixels in 0-255; NCHW float32, input named `input_name`."""
    from . import __version__
    from .data import MEAN, STD, stored_side

    return {"input_name": "x", "input_shape": [1, channels, resolution, resolution], "layout": "NCHW",
            "channel_order": "RGB", "resize_short": stored_side(resolution), "resolution": resolution,
            "interpolation": "bilinear", "mean": [round(float(m), 4) for m in MEAN],
            "std": [round(float(v), 4) for v in STD], "lwnas_version": __version__}


def export_model(model, spec, output: Path, fmt: str = "paddle", resolution: int | None = None) -> Path:
    """Re-parameterize and save: a Paddle inference model (paddle.jit.save) or ONNX (opset 13)."""
    import paddle

    from .latency import deployable

    if fmt not in ("paddle", "onnx"):
        raise LwnasError(f"unknown export format {fmt!r}; expected paddle or onnx")
    if fmt == "onnx":  # checked before anything is written: a failed export leaves no empty folder
        try:
            import paddle2onnx  # noqa: F401
        except ImportError:
            raise LwnasError("ONNX export needs paddle2onnx: pip install paddle2onnx (from an lwnas checkout: "
                             "pip install -e '.[onnx]')") from None
    model = deployable(model)
    res = resolution or spec.resolution
    output.mkdir(parents=True, exist_ok=True)
    input_spec = [paddle.static.InputSpec([None, spec.in_channels, res, res], "float32", "x")]
    if fmt == "paddle":
        paddle.jit.save(model, str(output / "model"), input_spec=input_spec)
        return output / "model"
    return write_onnx(model, output / "model", input_spec)


def write_onnx(model, prefix: Path, input_spec) -> Path:
    """paddle.onnx.export at opset 13 with the shuffle ONNX can express, quietly; returns PREFIX.onnx."""
    import paddle

    from .blocks.common import portable_shuffle
    from .quiet import third_party_output

    with portable_shuffle(), third_party_output():  # paddle2onnx and Polygraphy print banners and progress
        paddle.onnx.export(model, str(prefix), input_spec=input_spec, opset_version=13)
    return prefix.with_name(prefix.name + ".onnx")
