"""MobileOne structural re-parameterization is exact."""
import paddle
from conftest import tiny_spec

import lwnas
from lwnas import ArchSpec


def _randomize_batch_norms(model):
    """Non-trivial BN statistics and affine parameters, so that folding them is really tested."""
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            c = layer.weight.shape[0]
            layer._mean.set_value(paddle.randn([c]) * 0.5)
            layer._variance.set_value(paddle.rand([c]) * 2 + 0.1)
            layer.weight.set_value(paddle.randn([c]) * 0.5 + 1)
            layer.bias.set_value(paddle.randn([c]) * 0.5)


def _mobileone_spec(branches=3, se=True):
    return ArchSpec.from_dict(tiny_spec(
        [{"type": "mobileone_block", "out": 16, "branches": branches},
         {"type": "mobileone_block", "out": 24, "stride": 2, "branches": branches, "se": se},
         {"type": "mobileone_block", "out": 24, "branches": branches, "se": se}],
        stem=[{"type": "mobileone_conv", "out": 16, "stride": 2, "branches": 1}]))


def test_outputs_agree_after_reparameterization():
    model = lwnas.build(_mobileone_spec())
    _randomize_batch_norms(model)
    model.eval()
    x = paddle.randn([2, 3, 32, 32])
    before = model(x).numpy()
    lwnas.reparameterize(model)
    after = model(x).numpy()
    assert abs(before - after).max() < 1e-4
    assert not any(isinstance(layer, paddle.nn.BatchNorm2D) for layer in model.sublayers())


def test_named_config_reparameterizes_exactly():
    model = lwnas.build("mobileone_s0")  # four conv branches per block
    _randomize_batch_norms(model)
    model.eval()
    x = paddle.randn([1, 3, 64, 64])
    before = model(x).numpy()
    after = lwnas.reparameterize(model)(x).numpy()
    # random BN statistics compound over 28 layers into huge activations: compare relative to their size
    assert abs(before - after).max() < 1e-4 * max(1.0, abs(before).max())


def test_parameter_count_equals_single_branch_network():
    spec = ArchSpec.from_dict(tiny_spec(
        [{"type": "mobileone_block", "out": 16, "branches": 4}],
        stem=[{"type": "mobileone_conv", "out": 8, "stride": 2, "branches": 4}]))
    model = lwnas.build(spec)
    model.eval()
    lwnas.reparameterize(model)
    # single-branch network: conv3x3 3->8 + bias, depthwise 3x3 on 8 + bias, 1x1 8->16 + bias, linear 16->10
    single_branch = (8 * 3 * 9 + 8) + (8 * 9 + 8) + (16 * 8 + 16) + (16 * 10 + 10)
    params = sum(int(p.numel()) for p in model.parameters() if p.trainable)
    assert params == single_branch
    assert lwnas.count(spec).params == single_branch
    assert lwnas.count(spec).train_params > single_branch


def test_reparameterize_is_idempotent_and_trains_no_more_branches():
    model = lwnas.build(_mobileone_spec(branches=2, se=False))
    model.eval()
    lwnas.reparameterize(model)
    x = paddle.randn([1, 3, 32, 32])
    once = model(x).numpy()
    lwnas.reparameterize(model)
    assert abs(model(x).numpy() - once).max() == 0
