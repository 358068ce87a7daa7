"""ShuffleNet units: v1 (Zhang et al., arXiv 1707.01083) and v2 (Ma et al., arXiv 1807.11164).

Layer tables follow megvii-model/ShuffleNet-Series. Channel shuffles sit where the papers draw them
(v1: after the first group conv; v2: after the concat); the official code moves them next to a
depthwise conv or a split, which is the same network up to a fixed channel permutation."""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .common import conv_bn, shuffle_channels
from .registry import Param, register


class ShuffleV1Unit(nn.Layer):
    def __init__(self, c_in, out, stride, groups, first_group, kernel):
        super().__init__()
        branch_out = out - c_in if stride == 2 else out
        mid = out // 4
        self.groups, self.stride = groups, stride
        self.reduce = conv_bn(c_in, mid, 1, groups=1 if first_group else groups, act="relu")
        self.depthwise = conv_bn(mid, mid, kernel, stride, groups=mid)
        self.expand = conv_bn(mid, branch_out, 1, groups=groups)

    def forward(self, x):
        y = self.reduce(x)
        if self.groups > 1:
            y = shuffle_channels(y, self.groups)
        y = self.expand(self.depthwise(y))
        if self.stride == 1:
            return F.relu(x + y)
        return F.relu(paddle.concat([F.avg_pool2d(x, 3, 2, 1), y], axis=1))


def _v1_cost(t, a):
    c_in, mid = t.c, a["out"] // 4
    t.conv(mid, 1, groups=1 if a["first_group"] else a["groups"], bn=True)
    t.conv(mid, a["kernel"], a["stride"], groups=mid, bn=True)
    t.conv(a["out"] - c_in if a["stride"] == 2 else a["out"], 1, groups=a["groups"], bn=True)
    t.c = a["out"]


def _v1_check(c_in, a):
    g, out, mid = a["groups"], a["out"], a["out"] // 4
    branch_out = out - c_in if a["stride"] == 2 else out
    if a["stride"] == 1 and c_in != out:
        return f"a stride-1 unit keeps its width: input has {c_in} channels, out is {out}"
    if branch_out <= 0:
        return f"a stride-2 unit concatenates its input: out ({out}) must exceed the input width ({c_in})"
    if mid % g or branch_out % g or (not a["first_group"] and c_in % g):
        return f"widths {c_in}->{mid}->{branch_out} are not divisible by groups={g}"
    return None


@register("shufflenet_v1_unit", {
    "out": Param(int, minimum=1),
    "stride": Param(int, 1, choices=(1, 2)),
    "groups": Param(int, 3, minimum=1),
    "first_group": Param(bool, False),  # the paper keeps the very first 1x1 ungrouped (few input channels)
    "kernel": Param(int, 3, choices=(3, 5, 7)),
}, cost=_v1_cost, check=_v1_check)
def shufflenet_v1_unit(c_in, a):
    """ShuffleNet v1 unit: grouped 1x1, shuffle, depthwise, grouped 1x1; add (stride 1) or concat avg-pool (stride 2)."""
    return ShuffleV1Unit(c_in, a["out"], a["stride"], a["groups"], a["first_group"], a["kernel"])


class ShuffleV2Unit(nn.Layer):
    def __init__(self, c_in, out, stride, kernel):
        super().__init__()
        self.stride = stride
        main_in = c_in // 2 if stride == 1 else c_in
        mid = out // 2
        self.main = nn.Sequential(
            conv_bn(main_in, mid, 1, act="relu"),
            conv_bn(mid, mid, kernel, stride, groups=mid),
            conv_bn(mid, out - main_in, 1, act="relu"),
        )
        self.proj = nn.Sequential(
            conv_bn(c_in, c_in, kernel, stride, groups=c_in),
            conv_bn(c_in, c_in, 1, act="relu"),
        ) if stride == 2 else None

    def forward(self, x):
        if self.stride == 1:
            keep, x = paddle.split(x, 2, axis=1)
        else:
            keep = self.proj(x)
        return shuffle_channels(paddle.concat([keep, self.main(x)], axis=1), 2)


def _v2_cost(t, a):
    c_in, h, w, out, mid = t.c, t.h, t.w, a["out"], a["out"] // 2
    if a["stride"] == 2:
        t.conv(c_in, a["kernel"], 2, groups=c_in, bn=True).conv(c_in, 1, bn=True)
        t.c, t.h, t.w = c_in, h, w
        main_in = c_in
    else:
        main_in = t.c = c_in // 2
    t.conv(mid, 1, bn=True).conv(mid, a["kernel"], a["stride"], groups=mid, bn=True).conv(out - main_in, 1, bn=True)
    t.c = out


def _v2_check(c_in, a):
    if a["stride"] == 1 and (c_in != a["out"] or c_in % 2):
        return f"a stride-1 unit splits and keeps an even width: input {c_in}, out {a['out']}"
    if a["stride"] == 2 and a["out"] <= c_in:
        return f"a stride-2 unit must widen: out ({a['out']}) must exceed the input width ({c_in})"
    return None


@register("shufflenet_v2_unit", {
    "out": Param(int, minimum=1),
    "stride": Param(int, 1, choices=(1, 2)),
    "kernel": Param(int, 3, choices=(3, 5, 7)),
}, cost=_v2_cost, check=_v2_check)
def shufflenet_v2_unit(c_in, a):
    """ShuffleNet v2 unit: channel split (stride 1) or two downsampling branches (stride 2), concat, shuffle."""
    return ShuffleV2Unit(c_in, a["out"], a["stride"], a["kernel"])
