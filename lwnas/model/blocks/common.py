"""Layers and helpers shared by several block families, plus the generic stem and head blocks."""
from __future__ import annotations

import contextlib

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .registry import ACTIVATIONS, Param, register


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of `divisor`, never more than 10% down (TF MobileNet rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


_portable_shuffle = False


def shuffle_channels(x, groups: int):
    """ShuffleNet channel shuffle. Paddle's fused op is several times faster than reshape/transpose, but
    paddle2onnx cannot convert it (and aborts the process), so ONNX export traces the reshape form."""
    if not _portable_shuffle:
        return F.channel_shuffle(x, groups)
    _, c, h, w = x.shape
    return x.reshape([-1, groups, c // groups, h, w]).transpose([0, 2, 1, 3, 4]).reshape([-1, c, h, w])


def shuffle_order(channels: int, groups: int):
    """Where each output channel of `shuffle_channels` comes from: output channel i is input channel order[i]."""
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


@contextlib.contextmanager
def portable_shuffle():
    """Trace channel shuffles as reshape/transpose/reshape, which every ONNX runtime supports."""
    global _portable_shuffle
    _portable_shuffle = True
    try:
        yield
    finally:
        _portable_shuffle = False


def activation(name: str) -> nn.Layer:
    layers = {"none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish,
              "gelu": nn.GELU, "hsigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid}
    return layers[name]()


def padding(kernel: int) -> int:
    """'Same' padding for odd kernels; even kernels (patch embeddings) are not padded."""
    return kernel // 2 if kernel % 2 else 0


# Output positions x kernel taps per channel up to which an eager CPU depthwise conv runs unfolded (Conv2D below):
# at 64 images, unfolding wins 5-20x at 1-10 (1x1 and 2x2 maps), breaks even near 80 and loses 2-8x from 150 up.
UNFOLD_DEPTHWISE_WORK = 64
# Grouped 1x1 convs as one batched matmul up to this many pixels per map: forward and backward at 64 images, e.g.
# 576 -> 576 channels in 12 groups at 2x2 in a quarter of the conv op's time; level at 4x4, slower at 8x8.
GROUPED_POINTWISE_PIXELS = 4


class Conv2D(nn.Conv2D):
    """nn.Conv2D whose depthwise convolutions on small maps run as an unfold and a per-channel weighted sum, and
    whose grouped 1x1 convolutions on small maps run as a batched matmul, in eager mode on CPU. Paddle's CPU
    kernel runs a grouped conv as one small GEMM per (image, group): 28 ms for 64 images of 576 channels at 1x1
    with a 1x3 kernel, against 2 ms unfolded; MicroNet's late stages are made of such convs. Traced graphs
    (export, Paddle Inference) and other devices keep the conv op. Same parameters and state, same function up to
    float rounding."""

    def forward(self, x):
        if self._unfolds(x):
            return unfolded_depthwise(x, self.weight, self.bias, self._stride, self._updated_padding,
                                      self._out_channels // self._in_channels)
        if self._batches_groups(x):
            return grouped_pointwise(x, self.weight, self.bias, self._groups)
        return super().forward(x)

    def _eager_cpu_nchw(self, x) -> bool:
        return self._padding_mode == "zeros" and self._data_format == "NCHW" and self._dilation == [1, 1] and \
            paddle.in_dynamic_mode() and x.place.is_cpu_place()

    def _batches_groups(self, x) -> bool:
        return 1 < self._groups < self._in_channels and self._kernel_size == [1, 1] and self._stride == [1, 1] and \
            not any(self._updated_padding) and x.shape[2] * x.shape[3] <= GROUPED_POINTWISE_PIXELS and \
            self._eager_cpu_nchw(x)

    def _unfolds(self, x) -> bool:
        if self._groups != self._in_channels or self._padding_algorithm != "EXPLICIT" or \
                not self._eager_cpu_nchw(x):
            return False
        (ph, pw), (sh, sw), (kh, kw) = _pair_padding(self._updated_padding), self._stride, self._kernel_size
        return _out_size(x.shape[2], kh, ph, sh) * _out_size(x.shape[3], kw, pw, sw) * kh * kw <= UNFOLD_DEPTHWISE_WORK


def _pair_padding(padding) -> tuple[int, int]:
    """(top/bottom, left/right) of a symmetric explicit padding as nn.Conv2D stores it ([ph, pw] or 4 values)."""
    if len(padding) == 2:
        return padding[0], padding[1]
    if len(padding) == 4 and padding[0] == padding[1] and padding[2] == padding[3]:
        return padding[0], padding[2]
    raise ValueError(f"asymmetric padding {padding}")


def unfolded_depthwise(x, weight, bias, stride, padding, multiplier: int = 1):
    """A depthwise conv (each input channel feeding `multiplier` output channels, weight [C*m, 1, kh, kw]) as
    unfold -> multiply by each channel's taps -> sum over taps. Taps that only ever meet the zero padding are left
    out (on a 1x1 map a 1x3 kernel is its middle tap alone, a plain per-channel scale)."""
    n, c, h, w = x.shape
    ph, pw = _pair_padding(padding)
    out_h, out_w = _out_size(h, weight.shape[2], ph, stride[0]), _out_size(w, weight.shape[3], pw, stride[1])
    (top, rows), (left, cols) = (_used_taps(h, weight.shape[2], ph, stride[0], out_h),
                                 _used_taps(w, weight.shape[3], pw, stride[1], out_w))
    if rows != weight.shape[2] or cols != weight.shape[3]:
        weight = weight[:, :, top:top + rows, left:left + cols]
    if multiplier > 1:
        x = paddle.repeat_interleave(x, multiplier, axis=1)
        c *= multiplier
    if rows == cols == 1 and list(stride) == [1, 1] and (out_h, out_w) == (h, w):
        out = x * weight.reshape([1, c, 1, 1])
    else:
        # the padding before the used taps, and after them as much as keeps the output size (none where the last
        # window ends inside the input: unfold leaves the rest out)
        pads = [ph - top, pw - left, max(0, (out_h - 1) * stride[0] + rows - h - (ph - top)),
                max(0, (out_w - 1) * stride[1] + cols - w - (pw - left))]
        columns = F.unfold(x, [rows, cols], strides=list(stride), paddings=pads).reshape(
            [n, c, rows * cols, out_h * out_w])
        out = (columns * weight.reshape([1, c, rows * cols, 1])).sum(axis=2).reshape([n, c, out_h, out_w])
    return out if bias is None else out + bias.reshape([1, c, 1, 1])


def grouped_pointwise(x, weight, bias, groups: int):
    """A grouped 1x1 conv as one batched matmul over the groups, [G, O/G, C/G] x [G, C/G, N*H*W], instead of
    Paddle's GEMM per (image, group)."""
    n, c, h, w = x.shape
    o = weight.shape[0]
    columns = x.reshape([n, groups, c // groups, h * w]).transpose([1, 2, 0, 3]).reshape(
        [groups, c // groups, n * h * w])
    out = paddle.bmm(weight.reshape([groups, o // groups, c // groups]), columns)
    out = out.reshape([groups, o // groups, n, h * w]).transpose([2, 0, 1, 3]).reshape([n, o, h, w])
    return out if bias is None else out + bias.reshape([1, o, 1, 1])


def _out_size(size: int, kernel: int, pad: int, stride: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _used_taps(size: int, kernel: int, pad: int, stride: int, out: int) -> tuple[int, int]:
    """(first, count) of the kernel taps along one axis that meet at least one of the `out` windows' inputs."""
    first = max(0, pad - (out - 1) * stride)
    last = min(kernel - 1, size - 1 + pad)
    return first, last - first + 1


def conv_bn(c_in, c_out, kernel=1, stride=1, groups=1, act="none", bias=False, bn=True) -> nn.Sequential:
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    layers = [Conv2D(c_in, c_out, (kh, kw), stride, (padding(kh), padding(kw)), groups=groups,
                        bias_attr=None if bias else False)]
    if bn:
        layers.append(nn.BatchNorm2D(c_out))
    if act != "none":
        layers.append(activation(act))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Layer):
    """Global pool -> FC(reduce) -> ReLU -> FC(expand) -> gate, scaling the input channels."""

    def __init__(self, channels: int, squeeze: int, gate: str = "hsigmoid"):
        super().__init__()
        self.reduce = nn.Conv2D(channels, squeeze, 1)
        self.expand = nn.Conv2D(squeeze, channels, 1)
        self.gate = activation(gate)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.expand(F.relu(self.reduce(s))))


def squeeze_excite_cost(tally, channels: int, squeeze: int):
    tally.linear(channels, squeeze)
    tally.linear(squeeze, channels)


class DropPath(nn.Layer):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = paddle.bernoulli(paddle.full([x.shape[0], 1, 1, 1], keep, dtype=x.dtype))
        return x * mask / keep


# ---- generic stem and head blocks -----------------------------------------------------------

CONV_PARAMS = {
    "out": Param(int, minimum=1),
    "kernel": Param(int, 3, minimum=1),
    "stride": Param(int, 1, minimum=1),
    "groups": Param(int, 1, minimum=1),
    "act": Param(str, "relu", choices=ACTIVATIONS),
    "bn": Param(bool, True),
}


def _conv_cost(t, a):
    t.conv(a["out"], a["kernel"], a["stride"], a["groups"], bias=not a["bn"], bn=a["bn"])


def _conv_check(c_in, a):
    if c_in % a["groups"] or a["out"] % a["groups"]:
        return f"channels {c_in}->{a['out']} are not divisible by groups={a['groups']}"
    return None


@register("conv_bn_act", CONV_PARAMS, cost=_conv_cost, check=_conv_check)
def conv_bn_act(c_in, a):
    """Convolution, batch norm (or a bias when bn is false), activation: stems, patch embeddings, 1x1 heads."""
    return conv_bn(c_in, a["out"], a["kernel"], a["stride"], a["groups"], a["act"], bias=not a["bn"], bn=a["bn"])


@register("maxpool", {"kernel": Param(int, 3, minimum=1), "stride": Param(int, 2, minimum=1)},
          cost=lambda t, a: t.pool(a["kernel"], a["stride"], a["kernel"] // 2))
def maxpool(c_in, a):
    """Max pooling with 'same' padding (the ShuffleNet stem)."""
    return nn.MaxPool2D(a["kernel"], a["stride"], a["kernel"] // 2)


CLASSIFIER_PARAMS = {
    "hidden": Param(int, 0),
    "hidden_bias": Param(bool, True),
    "act": Param(str, "hswish", choices=ACTIVATIONS),
    "dropout": Param(float, 0.0),
    "bias": Param(bool, True),
}


def _classifier_cost(t, a):
    width = t.c
    if a["hidden"]:
        t.linear(width, a["hidden"], bias=a["hidden_bias"])
        width = a["hidden"]
    t.linear(width, a["num_classes"], bias=a["bias"])
    t.c, t.h, t.w = a["num_classes"], 1, 1


class Classifier(nn.Layer):
    def __init__(self, c_in, num_classes, hidden, hidden_bias, act, dropout, bias):
        super().__init__()
        layers = []
        if hidden:
            layers += [nn.Linear(c_in, hidden, bias_attr=None if hidden_bias else False), activation(act)]
            c_in = hidden
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(c_in, num_classes, bias_attr=None if bias else False))
        self.fc = nn.Sequential(*layers)

    def forward(self, x):
        return self.fc(paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register("classifier", CLASSIFIER_PARAMS, cost=_classifier_cost, head=True)
def classifier(c_in, a):
    """Global average pool, optional hidden FC + activation, dropout, final FC."""
    return Classifier(c_in, a["num_classes"], a["hidden"], a["hidden_bias"], a["act"], a["dropout"], a["bias"])
