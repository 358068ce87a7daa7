"""Every block type exports to a Paddle inference model and to ONNX, and the exported model computes what the
dynamic-graph network computes (ONNX run by onnxruntime)."""
import numpy as np
import onnxruntime
import paddle
import pytest
from conftest import tiny_spec
from test_blocks import MICRO, VARIANTS

import lwnas
from lwnas import ArchSpec
from lwnas.deploy.export import export_model

MICRONET_ENDS = tiny_spec([dict(MICRO, out=12, expand=[2, 2], pw1_groups=[0, 6], pw2_groups=[2, 2], dy=[2, 2, 1])],
                          stem=[{"type": "micro_stem", "groups": [3, 2]}],
                          head={"type": "micronet_head", "hidden": 32, "dropout": 0.1})
SPECS = {variant: tiny_spec(blocks) for variant, blocks in VARIANTS.items()} | {"micronet_stem_head": MICRONET_ENDS}


def test_every_block_type_is_exported():
    used = {block.type for spec in SPECS.values() for _, block in ArchSpec.from_dict(spec).blocks()}
    assert used == set(lwnas.BLOCKS)


def _relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-6))


@pytest.mark.parametrize("variant", sorted(SPECS))
def test_export_computes_what_the_network_computes(variant, tmp_path):
    spec = ArchSpec.from_dict(SPECS[variant])
    model = lwnas.build(spec)
    rng = np.random.RandomState(1)
    for layer in model.sublayers():  # statistics and affine weights far from the identity: the export must use them
        if isinstance(layer, (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D)):
            n = layer._mean.shape[0]
            layer._mean.set_value(rng.normal(0, 0.5, n).astype("float32"))
            layer._variance.set_value(rng.uniform(0.3, 3.0, n).astype("float32"))
            layer.weight.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.bias.set_value(rng.normal(0, 0.3, n).astype("float32"))
    model.eval()
    x = np.random.RandomState(0).randn(2, 3, 32, 32).astype("float32")
    expected = model(paddle.to_tensor(x)).numpy()

    onnx_path = export_model(model, spec, tmp_path / "onnx", "onnx")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert _relative_error(onnx_out, expected) < 1e-4

    paddle_path = export_model(model, spec, tmp_path / "paddle", "paddle")
    assert _relative_error(paddle.jit.load(str(paddle_path))(paddle.to_tensor(x)).numpy(), expected) < 1e-4


def test_export_restores_the_fast_shuffle_and_rejects_unknown_formats(tmp_path):
    """The portable shuffle is for tracing the export only; the network trains with Paddle's fused op after."""
    from lwnas.model.blocks import common

    spec = ArchSpec.from_dict(SPECS["shufflenet_v2"])
    export_model(lwnas.build(spec), spec, tmp_path, "onnx")
    assert common._portable_shuffle is False
    with pytest.raises(lwnas.LwnasError, match="expected paddle or onnx"):
        export_model(lwnas.build(spec), spec, tmp_path, "tflite")
