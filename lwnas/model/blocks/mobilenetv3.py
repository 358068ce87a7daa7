"""MobileNetV3 inverted residual (Howard et al., arXiv 1905.02244): expand 1x1, depthwise kxk, optional
squeeze-excite with a hard-sigmoid gate, linear 1x1 projection, identity shortcut when shapes agree.

The same layer, with `reuse` > 0, is AsymmNet's asymmetric bottleneck (see asymmnet.py)."""
from __future__ import annotations

import paddle
import paddle.nn as nn

from .common import SqueezeExcite, conv_bn, make_divisible, squeeze_excite_cost
from .registry import Param, register


def bottleneck_channels(c_in: int, mid: int, reuse: int) -> tuple[int, int]:
    """(channels produced by the expansion conv, channels of the depthwise conv); 0 means no expansion.

    AsymmNet (official code) reuses the input `reuse` times on each side of the expansion output, so the
    expansion only makes `mid - reuse*c_in` channels and the depthwise conv sees `mid + reuse*c_in`."""
    if reuse:
        if mid > max(c_in, reuse * c_in):
            return mid - reuse * c_in, mid + reuse * c_in
        return 0, c_in
    return (mid, mid) if mid != c_in else (0, c_in)


class InvertedResidual(nn.Layer):
    def __init__(self, c_in, out, kernel, stride, mid, squeeze, act, reuse=0):
        super().__init__()
        expand_out, dw_c = bottleneck_channels(c_in, mid, reuse)
        self.reuse = reuse
        self.expand = conv_bn(c_in, expand_out, 1, act=act) if expand_out else None
        self.depthwise = conv_bn(dw_c, dw_c, kernel, stride, groups=dw_c, act=act)
        self.se = SqueezeExcite(dw_c, squeeze) if squeeze else None
        self.project = conv_bn(dw_c, out, 1)
        self.residual = stride == 1 and c_in == out

    def forward(self, x):
        y = x
        if self.expand is not None:
            y = self.expand(x)
            if self.reuse:
                y = paddle.concat([x] * self.reuse + [y] + [x] * self.reuse, axis=1)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


def inverted_residual_cost(t, a, squeeze, reuse=0):
    expand_out, dw_c = bottleneck_channels(t.c, a["expand"], reuse)
    if expand_out:
        t.conv(expand_out, 1, bn=True)
        t.c = dw_c
    t.conv(dw_c, a["kernel"], a["stride"], groups=dw_c, bn=True)
    if squeeze:
        squeeze_excite_cost(t, dw_c, squeeze)
    t.conv(a["out"], 1, bn=True)


BOTTLENECK_PARAMS = {
    "out": Param(int, minimum=1),
    "kernel": Param(int, 3, choices=(3, 5, 7)),
    "stride": Param(int, 1, choices=(1, 2)),
    "expand": Param(int, minimum=1),  # expansion channels, absolute (the papers' "exp size")
    "se": Param(bool, False),
    "act": Param(str, "relu", choices=("relu", "hswish")),
}


def _mbv3_squeeze(a):
    return make_divisible(a["expand"] / 4) if a["se"] else 0


@register("inverted_residual", BOTTLENECK_PARAMS, cost=lambda t, a: inverted_residual_cost(t, a, _mbv3_squeeze(a)))
def inverted_residual(c_in, a):
    """MobileNetV3 bneck: 1x1 expand, depthwise, SE (exp/4 rounded to 8), linear 1x1, residual."""
    return InvertedResidual(c_in, a["out"], a["kernel"], a["stride"], a["expand"], _mbv3_squeeze(a), a["act"])
