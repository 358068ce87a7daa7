"""The fast paths of lwnas.model.blocks.common.Conv2D (unfolded depthwise, grouped 1x1 as a batched matmul) compute
what Paddle's conv op computes: the same outputs and the same gradients for the input, the weight and the bias, on
the shapes MicroNet trains on."""
import numpy as np
import paddle
import pytest

import lwnas
from lwnas.model.blocks.common import Conv2D

# (input shape, out channels, kernel, stride, padding, bias): depthwise on 1x1 and 2x2 maps, strided, a channel
# multiplier of 2 (MicroNet's spatially separable expansion), a bias (MobileOne's folded conv)
CASES = [
    ((4, 12, 1, 1), 12, (1, 3), (1, 1), (0, 1), False),
    ((4, 12, 2, 2), 12, (5, 1), (2, 1), (2, 0), False),
    ((4, 8, 2, 4), 8, (1, 5), (1, 2), (0, 2), False),
    ((4, 6, 4, 4), 12, (3, 1), (1, 1), (1, 0), False),
    ((4, 8, 2, 2), 8, (3, 3), (1, 1), (1, 1), True),
    # taps that only meet padding are left out: a 1x1 map (one tap: a per-channel scale, with a multiplier and
    # with a bias), strided windows on 3x3, and a strided 1x1 kernel whose last input row and column no window reads
    ((4, 6, 1, 1), 12, (3, 1), (1, 1), (1, 0), False),
    ((4, 8, 1, 1), 8, (5, 5), (1, 1), (2, 2), True),
    ((4, 8, 3, 3), 8, (3, 3), (2, 2), (1, 1), False),
    ((4, 8, 4, 4), 8, (1, 1), (2, 2), (0, 0), False),
]


def _forward_and_grads(conv, x):
    x = x.detach()
    x.stop_gradient = False
    y = conv(x)
    (y * paddle.arange(y.size, dtype="float32").reshape(y.shape)).sum().backward()  # weights every output apart
    grads = [x.grad.numpy()] + [p.grad.numpy() for p in conv.parameters()]
    conv.clear_gradients()
    return y.numpy(), grads


@pytest.mark.parametrize("shape,out,kernel,stride,padding,bias", CASES)
def test_unfolded_depthwise_equals_the_conv_op_in_outputs_and_gradients(shape, out, kernel, stride, padding, bias):
    conv = Conv2D(shape[1], out, kernel, stride, padding, groups=shape[1], bias_attr=None if bias else False)
    if bias:
        conv.bias.set_value(paddle.randn(conv.bias.shape))
    x = paddle.randn(shape)
    assert conv._unfolds(x)  # the fast path is the one under test
    fast, fast_grads = _forward_and_grads(conv, x)
    reference = paddle.nn.functional.conv2d(x, conv.weight, conv.bias, stride, padding, groups=shape[1]).numpy()
    np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-5)
    conv._unfolds = lambda _: False  # the same layer through Paddle's conv op
    _, reference_grads = _forward_and_grads(conv, x)
    assert len(fast_grads) == len(reference_grads) == 2 + bias
    for got, expected in zip(fast_grads, reference_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# (input shape, out channels, groups, bias): grouped 1x1 convs on 1x1, 2x2 and 1x4 maps, outputs per group above
# and below the inputs per group, a bias
GROUPED = [((4, 12, 1, 1), 24, 4, False), ((4, 16, 2, 2), 8, 2, False), ((3, 18, 1, 4), 12, 6, True)]


@pytest.mark.parametrize("shape,out,groups,bias", GROUPED)
def test_batched_grouped_pointwise_equals_the_conv_op_in_outputs_and_gradients(shape, out, groups, bias):
    conv = Conv2D(shape[1], out, 1, groups=groups, bias_attr=None if bias else False)
    if bias:
        conv.bias.set_value(paddle.randn(conv.bias.shape))
    x = paddle.randn(shape)
    assert conv._batches_groups(x) and not conv._unfolds(x)  # the fast path is the one under test
    fast, fast_grads = _forward_and_grads(conv, x)
    reference = paddle.nn.functional.conv2d(x, conv.weight, conv.bias, groups=groups).numpy()
    np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-5)
    conv._batches_groups = lambda _: False
    _, reference_grads = _forward_and_grads(conv, x)
    assert len(fast_grads) == len(reference_grads) == 2 + bias
    for got, expected in zip(fast_grads, reference_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_large_maps_and_dense_convs_keep_the_conv_op():
    assert not Conv2D(8, 8, 3, padding=1, groups=8)._unfolds(paddle.randn([2, 8, 16, 16]))
    assert not Conv2D(8, 8, 3, padding=1)._unfolds(paddle.randn([2, 8, 1, 1]))
    assert not Conv2D(8, 8, 1, groups=2)._batches_groups(paddle.randn([2, 8, 4, 4]))  # 16 pixels: the conv op
    assert not Conv2D(8, 8, 1)._batches_groups(paddle.randn([2, 8, 1, 1]))  # dense: already one GEMM
    assert not Conv2D(8, 8, 3, padding=1, groups=2)._batches_groups(paddle.randn([2, 8, 1, 1]))


def test_micronet_m2_trains_identically_through_the_fast_paths_and_the_conv_op():
    """One SGD step of MicroNet-M2 at 32 px: loss and updated weights equal with and without the fast paths. In
    float64, where the two summation orders agree to about 1e-12: in float32 their rounding alone moves a gradient
    by up to 1e-4 of its size through the network's 15 blocks, which would hide a real error of that size."""
    spec = lwnas.get_config("micronet_m2").replace(num_classes=10, resolution=32)
    results = []
    paddle.set_default_dtype("float64")
    try:
        x, labels = paddle.randn([4, 3, 32, 32]), paddle.to_tensor([0, 1, 2, 3])
        for fast_paths in (True, False):
            paddle.seed(0)
            model = lwnas.build(spec)
            convs = [layer for layer in model.sublayers() if isinstance(layer, Conv2D)]
            assert sum(conv._unfolds(paddle.randn([1, conv._in_channels, 1, 1])) for conv in convs) > 10
            assert sum(conv._batches_groups(paddle.randn([1, conv._in_channels, 1, 1])) for conv in convs) > 10
            if not fast_paths:
                for conv in convs:
                    conv._unfolds = conv._batches_groups = lambda _: False
            optimizer = paddle.optimizer.SGD(0.1, parameters=model.parameters())
            loss = paddle.nn.functional.cross_entropy(model(x), labels)
            loss.backward()
            optimizer.step()
            results.append((float(loss), {k: v.numpy() for k, v in model.state_dict().items()}))
    finally:
        paddle.set_default_dtype("float32")
    (loss_fast, fast), (loss_ref, ref) = results
    assert abs(loss_fast - loss_ref) < 1e-10
    for key in ref:
        np.testing.assert_allclose(fast[key], ref[key], rtol=1e-9, atol=1e-10, err_msg=key)
