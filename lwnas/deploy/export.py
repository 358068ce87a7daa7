"""How a trained network ships: re-parameterized and exported for Paddle Inference or ONNX, with the
preprocessing a deployment needs written beside it."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import LwnasError
from ..train.checkpoint import load_trained


def deployable(model):
    """The network as it is deployed: eval mode, multi-branch blocks folded into single convs."""
    from ..model.blocks.mobileone import reparameterize

    model.eval()
    reparameterize(model)
    return model


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
    from .. import __version__
    from ..train.data import MEAN, STD, stored_side

    return {"input_name": "x", "input_shape": [1, channels, resolution, resolution], "layout": "NCHW",
            "channel_order": "RGB", "resize_short": stored_side(resolution), "resolution": resolution,
            "interpolation": "bilinear", "mean": [round(float(m), 4) for m in MEAN],
            "std": [round(float(v), 4) for v in STD], "lwnas_version": __version__}


def export_model(model, spec, output: Path, fmt: str = "paddle", resolution: int | None = None) -> Path:
    """Re-parameterize and save: a Paddle inference model (paddle.jit.save) or ONNX (opset 13)."""
    import paddle


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

    from ..model.blocks.common import portable_shuffle
    from ..quiet import third_party_output

    with portable_shuffle(), third_party_output():  # paddle2onnx and Polygraphy print banners and progress
        paddle.onnx.export(model, str(prefix), input_spec=input_spec, opset_version=13)
    return prefix.with_name(prefix.name + ".onnx")
