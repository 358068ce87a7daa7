"""Every block type, in every stride/group variant: it builds, gives the right shape, has a gradient for every
weight and learns a batch."""
import numpy as np
import paddle
import pytest
from conftest import tiny_spec

import lwnas
from lwnas import ArchSpec
from lwnas.model.cost import trace

MICRO = dict(type="micro_block", reduction=8)
VARIANTS = {
    "conv_bn_act": [dict(type="conv_bn_act", out=32, stride=2, groups=4, act="hswish")],
    "conv_bn_act_nobn": [dict(type="conv_bn_act", out=16, kernel=1, bn=False, act="none")],
    "maxpool": [dict(type="maxpool")],
    "micro_block_depthwise_first": [dict(MICRO, out=24, stride=2, expand=[2, 2], pw1_groups=[0, 8],
                                         pw2_groups=[4, 4], dy=[2, 2, 1])],
    "micro_block_relu6": [dict(MICRO, out=16, expand=[2, 2], pw1_groups=[0, 4], pw2_groups=[2, 2], dy=[2, 0, 1])],
    "micro_block_full": [dict(MICRO, out=16, kernel=5, expand=[1, 4], pw1_groups=[4, 4], pw2_groups=[4, 4],
                              dy=[2, 2, 1])],
    "micro_block_full_stride2": [dict(MICRO, out=32, stride=2, expand=[1, 6], pw1_groups=[8, 8],
                                      pw2_groups=[8, 8], dy=[0, 2, 0], init_a=[1.0, 0.5], init_b=[0.0, 0.5])],
    "micro_block_single_conv": [dict(MICRO, out=64, expand=[1, 4], pw1_groups=[8, 8], pw2_groups=[0, 0],
                                     dy=[2, 2, 1])],
    "shufflenet_v1": [dict(type="shufflenet_v1_unit", out=48, stride=2, groups=4, first_group=True),
                      dict(type="shufflenet_v1_unit", out=48, groups=4)],
    "shufflenet_v1_g1": [dict(type="shufflenet_v1_unit", out=40, stride=2, groups=1),
                         dict(type="shufflenet_v1_unit", out=40, groups=1)],
    "shufflenet_v2": [dict(type="shufflenet_v2_unit", out=32, stride=2), dict(type="shufflenet_v2_unit", out=32)],
    "fasternet": [dict(type="fasternet_block", act="gelu", drop_path=0.1), dict(type="fasternet_block")],
    "asymm_bottleneck": [dict(type="asymm_bottleneck", out=24, expand=64, stride=2, se=True, act="hswish"),
                         dict(type="asymm_bottleneck", out=24, kernel=5, expand=72)],
    "asymm_no_expand": [dict(type="asymm_bottleneck", out=16, expand=16)],
    "inverted_residual": [dict(type="inverted_residual", out=24, expand=64, stride=2, se=True, act="hswish"),
                          dict(type="inverted_residual", out=24, kernel=5, expand=72),
                          dict(type="inverted_residual", out=24, expand=24)],
    "mobileone": [dict(type="mobileone_block", out=32, stride=2, branches=3, se=True),
                  dict(type="mobileone_block", out=32, branches=1)],
    "mobileone_conv": [dict(type="mobileone_conv", out=16, depthwise=True, branches=2),
                       dict(type="mobileone_conv", out=24, kernel=1)],
}


def test_every_registered_block_is_exercised():
    used = {b["type"] for blocks in VARIANTS.values() for b in blocks} | {"classifier", "micronet_head", "micro_stem"}
    assert used == set(lwnas.BLOCKS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_block_shapes_and_gradients(variant):
    spec = ArchSpec.from_dict(tiny_spec(VARIANTS[variant]))
    model = lwnas.build(spec)
    model.train()
    x = paddle.randn([2, 3, 32, 32])
    out = model(x)
    assert out.shape == [2, 10]
    out.square().mean().backward()
    missing = [p.name for p in model.parameters() if p.trainable and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    # the feature map each block produces has the shape the analytic trace predicts
    body = paddle.nn.Sequential(*model.layers[:-1])
    model.eval()
    predicted = trace(spec)[-2].out_shape
    assert tuple(body(x).shape[1:]) == predicted


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_block_trains(variant):
    """Fifteen Adam steps on one batch of four images with fixed labels: every block variant can fit them (the
    loss falls by half), so its gradients point the right way, not merely exist."""
    spec = ArchSpec.from_dict(tiny_spec(VARIANTS[variant], num_classes=4))
    model = lwnas.build(spec)
    model.train()
    optimizer = paddle.optimizer.Adam(0.03, parameters=model.parameters())
    x, labels = paddle.randn([4, 3, 32, 32]), paddle.to_tensor([0, 1, 2, 3])
    losses = []
    for _ in range(15):
        loss = paddle.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0] / 2, losses


def test_micronet_stem_and_head():
    spec = ArchSpec.from_dict(tiny_spec(
        [dict(MICRO, out=12, expand=[2, 2], pw1_groups=[0, 6], pw2_groups=[2, 2], dy=[2, 2, 1])],
        stem=[{"type": "micro_stem", "groups": [3, 2]}], head={"type": "micronet_head", "hidden": 32, "dropout": 0.1}))
    model = lwnas.build(spec)
    out = model(paddle.randn([2, 3, 32, 32]))
    assert out.shape == [2, 10]
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.trainable)


def test_dynamic_shift_max_shift_matches_official_index():
    """The roll-based circular shift equals the official gather index: group g+1, channel c+1 (mod)."""
    from lwnas.model.blocks.micronet import DynamicShiftMax

    groups, channels = 4, 12
    layer = DynamicShiftMax(channels, groups, reduction=4, branches=1, init_a=(0.0, 0.0), init_b=(1.0, 0.0))
    for p in layer.fc.parameters():  # coefficients become exactly init: a=0, b=1 -> output = shift(x)
        p.set_value(paddle.zeros_like(p))
    layer.scale = 0.0
    x = paddle.arange(channels, dtype="float32").reshape([1, channels, 1, 1])
    per_group = channels // groups
    expected = [((i // per_group + 1) % groups) * per_group + (i % per_group + 1) % per_group for i in range(channels)]
    assert layer(x).flatten().tolist() == [float(v) for v in expected]


@pytest.mark.parametrize("branches", [1, 2])
def test_dynamic_shift_max_computes_the_papers_function(branches):
    """The deployed-fast layout (3-D tensors, one split) computes max_j(a_j x + b_j shift(x)) with a, b from
    the squeeze FC, written out in NumPy the plain way; as the 5-D version it replaced did (to 1e-6)."""
    from lwnas.model.blocks.micronet import DynamicShiftMax

    paddle.seed(3)
    b, c, g, h, w = 2, 24, 4, 5, 7
    layer = DynamicShiftMax(c, g, reduction=4, branches=branches, init_a=(1.0, 0.5), init_b=(0.0, 0.5))
    layer.eval()
    x = paddle.randn([b, c, h, w])
    pooled = x.numpy().mean(axis=(2, 3))
    w1, b1, w2, b2 = (p.numpy() for p in layer.fc.parameters())
    hidden = np.maximum(pooled @ w1 + b1, 0) @ w2 + b2
    coeff = (np.clip(hidden / 6 + 0.5, 0, 1) - 0.5) * 4 + np.repeat([1.0, 0.0, 0.5, 0.5][:2 * branches], c)
    coeff = coeff.reshape(b, 2 * branches, c, 1, 1)
    per = c // g
    index = [((i // per + 1) % g) * per + (i % per + 1) % per for i in range(c)]
    shifted = x.numpy()[:, index]
    terms = [coeff[:, 2 * j] * x.numpy() + coeff[:, 2 * j + 1] * shifted for j in range(branches)]
    expected = np.maximum(*terms) if branches == 2 else terms[0]
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["micronet_m0", "shufflenet_v2_x0_5", "fasternet_t0", "mobileone_s0",
                                  "asymmnet_small_x1_0", "mobilenetv3_small_x1_0", "shufflenet_v1_g3_x0_5"])
def test_named_configs_run_at_224(name):
    model = lwnas.build(name)
    model.eval()
    assert model(paddle.randn([2, 3, 224, 224])).shape == [2, 1000]


def test_num_classes_override():
    model = lwnas.build("micronet_m0", num_classes=7)
    model.eval()
    assert model(paddle.randn([1, 3, 64, 64])).shape == [1, 7]
    assert model.spec.num_classes == 7


def test_dynamic_shift_max_coefficients_are_a_buffer_that_follows_the_layer():
    """Its initial coefficients (a1, b1, a2, b2) belong to the layer: in state_dict, and cast with it."""
    from lwnas.model.blocks.micronet import DynamicShiftMax

    layer = DynamicShiftMax(16, groups=4, reduction=4, branches=2, init_a=[1.0, 0.5], init_b=[0.0, 0.5])
    assert [float(v) for v in layer.state_dict()["init"].flatten()] == [1.0, 0.0, 0.5, 0.5]
    assert "init" in dict(layer.named_buffers())
    layer.to(dtype="float64")
    assert layer.init.dtype == paddle.float64
