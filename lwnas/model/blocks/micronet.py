"""MicroNet (Li et al., arXiv 2108.05894; official code liyunsheng13/micronet).

Micro-factorized convolution: pointwise convs become group convs followed by channel shuffles, and
depthwise convs become a kx1 then a 1xk depthwise conv. Dynamic Shift-Max is the activation: an
input-dependent maximum of J=2 fusions (or a single fusion) of each channel with its circular shift
across channel groups, with coefficients from a small FC network on the pooled input.

`micro_block` follows the official DYMicroBlock; its three layouts are chosen by the groups exactly as
there: `pw1_groups[0] == 0` starts with a depthwise expansion (the first blocks), `pw2_groups[0] == 0`
ends after the first group conv (the last block), otherwise the full pointwise-depthwise-pointwise."""
from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .common import Conv2D, make_divisible, shuffle_channels
from .registry import Param, register


@dataclass(frozen=True)
class ChannelShuffle:
    """A shuffle step of a `Sequence`: a plain callable, not a layer, so it takes no place in the layers' names."""

    groups: int

    def __call__(self, x):
        return shuffle_channels(x, self.groups)


def channel_shuffle(groups: int):
    return ChannelShuffle(groups) if 1 < groups else None


class DynamicShiftMax(nn.Layer):
    """max_j (a_j * x + b_j * shift(x)), a and b from FC(ReLU(FC(avgpool(x)))) squashed by a hard sigmoid.

    shift(x) rotates the `groups` channel groups by one group and each group's channels by one channel,
    done with one reshape + roll (no gather). `branches` is J: 2 (max of two, acts like a ReLU) or 1.
    The fusion runs on [batch, channels, h*w] tensors with the coefficients split in one op: Paddle Inference's
    oneDNN backend multiplies a 4-D map by a [b, c, 1, 1] tensor sliced from a 5-D one several times slower
    than eager Paddle (MicroNet-M1 took 72 ms against 18 ms eager; 14-27 ms this way), same arithmetic."""

    def __init__(self, channels, groups, reduction, branches, init_a, init_b, act_max=2.0):
        super().__init__()
        squeeze = max(4, make_divisible(channels // reduction, 4))
        self.fc = nn.Sequential(nn.Linear(channels, squeeze), nn.ReLU(), nn.Linear(squeeze, channels * 2 * branches),
                                nn.Hardsigmoid())
        self.groups, self.branches, self.scale = groups, branches, 2 * act_max
        # A buffer, not a loose tensor: it follows the layer across devices, dtypes and state_dict.
        self.register_buffer("init", paddle.to_tensor(
            [init_a[0], init_b[0], init_a[1], init_b[1]][:2 * branches], dtype="float32").reshape(
            [1, 2 * branches, 1, 1, 1]))

    def forward(self, x):
        b, c, h, w = x.shape
        coeff = (self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1)) - 0.5) * self.scale
        coeff = coeff.reshape([b, 2 * self.branches, c, 1, 1]) + self.init
        a1, b1, *second = paddle.split(coeff.reshape([b, 2 * self.branches * c, 1]), 2 * self.branches, axis=1)
        groups = x.reshape([b, self.groups, c // self.groups, h * w])
        shifted = paddle.roll(groups, shifts=[-1, -1], axis=[1, 2]).reshape([b, c, h * w])
        x = groups.reshape([b, c, h * w])
        out = x * a1 + shifted * b1
        if second:
            a2, b2 = second
            out = paddle.maximum(out, x * a2 + shifted * b2)
        return out.reshape([b, c, h, w])


def dy_shift_max_cost(t, channels, reduction, branches):
    squeeze = max(4, make_divisible(channels // reduction, 4))
    t.linear(channels, squeeze)
    t.linear(squeeze, channels * 2 * branches)
    t.macs += fusion_macs(channels * t.h * t.w, branches)
    t.kernels += branches  # each fusion's element-wise pass writes the whole map
    t.written += branches * channels * t.h * t.w


def fusion_macs(elements: int, branches: int) -> int:
    """Each of the J fusions a*x + b*shift(x) is two multiply-adds per output element."""
    return 2 * branches * elements


def _spatial_separable(c_in, expand, kernel, stride):
    """kx1 depthwise (channel multiplier e1) + BN, then 1xk depthwise (multiplier e2) + BN."""
    mid, out = c_in * expand[0], c_in * expand[0] * expand[1]
    return [Conv2D(c_in, mid, (kernel, 1), (stride, 1), (kernel // 2, 0), groups=c_in, bias_attr=False),
            nn.BatchNorm2D(mid),
            Conv2D(mid, out, (1, kernel), (1, stride), (0, kernel // 2), groups=mid, bias_attr=False),
            nn.BatchNorm2D(out)]


def _spatial_separable_cost(t, expand, kernel, stride):
    t.conv(t.c * expand[0], (kernel, 1), (stride, 1), groups=t.c, bn=True)
    t.conv(t.c * expand[1], (1, kernel), (1, stride), groups=t.c, bn=True)


class Sequence(nn.Layer):
    """Runs layers and parameter-free callables (shuffles) in order."""

    def __init__(self, steps):
        super().__init__()
        self.steps = [s for s in steps if s is not None]
        self.layers = nn.LayerList([s for s in self.steps if isinstance(s, nn.Layer)])

    def forward(self, x):
        for step in self.steps:
            x = step(x)
        return x


class MicroStem(Sequence):
    def __init__(self, c_in, groups, kernel, stride):
        g1, g2 = groups
        super().__init__([
            nn.Conv2D(c_in, g1, (kernel, 1), (stride, 1), (kernel // 2, 0), bias_attr=False), nn.BatchNorm2D(g1),
            Conv2D(g1, g1 * g2, (1, kernel), (1, stride), (0, kernel // 2), groups=g1, bias_attr=False),
            nn.BatchNorm2D(g1 * g2), channel_shuffle(g1), nn.ReLU6()])


def _stem_cost(t, a):
    g1, g2 = a["groups"]
    t.conv(g1, (a["kernel"], 1), (a["stride"], 1), bn=True)
    t.conv(g1 * g2, (1, a["kernel"]), (1, a["stride"]), groups=g1, bn=True)


@register("micro_stem", {
    "groups": Param((int,), length=2, minimum=1),
    "kernel": Param(int, 3, minimum=1),
    "stride": Param(int, 2, choices=(1, 2)),
}, cost=_stem_cost)
def micro_stem(c_in, a):
    """MicroNet stem: kx1 conv to g1 channels, 1xk group conv to g1*g2 channels, shuffle, ReLU6."""
    return MicroStem(c_in, a["groups"], a["kernel"], a["stride"])


class MicroBlock(nn.Layer):
    def __init__(self, c_in, a):
        super().__init__()
        out, k, s = a["out"], a["kernel"], a["stride"]
        g1, g2 = a["pw1_groups"]
        g3, g4 = a["pw2_groups"]
        y1, y2, y3 = a["dy"]
        y3 = min(y3, 1)  # the official code never uses the max-of-two form after the last group conv
        r = a["reduction"]
        hidden = c_in * a["expand"][0] * a["expand"][1]

        def dy(channels, level, groups, reduction, init=True):
            if level == 0:
                return None
            init_a, init_b = (a["init_a"], a["init_b"]) if init else ((1.0, 0.0), (0.0, 0.0))
            return DynamicShiftMax(channels, groups, reduction, level, init_a, init_b, a["act_max"])

        def group_conv(c, o, groups):
            return [Conv2D(c, o, 1, groups=groups, bias_attr=False), nn.BatchNorm2D(o)]

        if g1 == 0:  # depthwise expansion first
            steps = _spatial_separable(c_in, a["expand"], k, s)
            steps += [dy(hidden, y2, g2, r) if y2 else nn.ReLU6(), channel_shuffle(g2),
                      channel_shuffle(hidden // 2) if y2 else None]
            steps += group_conv(hidden, out, g3)
            steps += [dy(out, y3, g4, r // 2, init=False), channel_shuffle(g4),
                      channel_shuffle(out // 2) if y3 and out % 2 == 0 else None]
        elif g3 == 0:  # a single group conv, e.g. the last block
            steps = group_conv(c_in, hidden, g1) + [dy(hidden, y3, g2, r, init=False)]
        else:
            steps = group_conv(c_in, hidden, g1)
            steps += [dy(hidden, y1, g2, r) if y1 else nn.ReLU6(), channel_shuffle(g2)]
            steps += _spatial_separable(hidden, (1, 1), k, s)
            # after the depthwise conv the shift runs over groups of g2 channels rather than g2 groups
            steps += [dy(hidden, y2, hidden // g2 if g2 > 1 else 1, r) if y2 else nn.ReLU6()]
            steps += [channel_shuffle(hidden // 4 if y1 and y2 else hidden // 2) if y1 or y2 else None]
            steps += group_conv(hidden, out, g3)
            steps += [dy(out, y3, g4, r // 2 if out < hidden else r, init=False), channel_shuffle(g4),
                      channel_shuffle(out // 2) if y3 else None]
        self.body = Sequence(steps)
        self.residual = s == 1 and c_in == out
        self.depthwise_first = g1 == 0

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def _block_cost(t, a):
    out, k, s = a["out"], a["kernel"], a["stride"]
    g1, _ = a["pw1_groups"]
    g3, _ = a["pw2_groups"]
    y1, y2, y3 = a["dy"]
    y3 = min(y3, 1)
    r = a["reduction"]
    c_in = t.c
    hidden = c_in * a["expand"][0] * a["expand"][1]
    if g1 == 0:
        _spatial_separable_cost(t, a["expand"], k, s)
        if y2:
            dy_shift_max_cost(t, hidden, r, y2)
        t.conv(out, 1, groups=g3, bn=True)
        if y3:
            dy_shift_max_cost(t, out, r // 2, y3)
    elif g3 == 0:
        t.conv(hidden, 1, groups=g1, bn=True)
        if y3:
            dy_shift_max_cost(t, hidden, r, y3)
    else:
        t.conv(hidden, 1, groups=g1, bn=True)
        if y1:
            dy_shift_max_cost(t, hidden, r, y1)
        _spatial_separable_cost(t, (1, 1), k, s)
        if y2:
            dy_shift_max_cost(t, hidden, r, y2)
        t.conv(out, 1, groups=g3, bn=True)
        if y3:
            dy_shift_max_cost(t, out, r // 2 if out < hidden else r, y3)


def _block_check(c_in, a):
    g1, g2 = a["pw1_groups"]
    g3, g4 = a["pw2_groups"]
    hidden = c_in * a["expand"][0] * a["expand"][1]
    if g3 == 0 and hidden != a["out"]:
        return f"without a second group conv the block's width is input*expand = {hidden}, but out is {a['out']}"
    for name, c, groups in (("pw1_groups", c_in, g1), ("pw1_groups", hidden, g1), ("pw1_groups", hidden, g2),
                            ("pw2_groups", hidden, g3), ("pw2_groups", a["out"], g3), ("pw2_groups", a["out"], g4)):
        if groups and c % groups:
            return f"{name}: {c} channels are not divisible by {groups} groups"
    if g1 and a["dy"][1] and g2 and hidden % (hidden // g2):
        return f"pw1_groups: {hidden} channels cannot form Dynamic Shift-Max groups of {g2}"
    return None


@register("micro_block", {
    "out": Param(int, minimum=1),
    "kernel": Param(int, 3, choices=(3, 5, 7)),
    "stride": Param(int, 1, choices=(1, 2)),
    "expand": Param((int,), length=2, minimum=1),      # channel multipliers (e1, e2); hidden = c_in*e1*e2
    "pw1_groups": Param((int,), length=2, minimum=0),  # (conv groups, shuffle/shift groups); 0 = depthwise first
    "pw2_groups": Param((int,), length=2, minimum=0),  # (conv groups, shuffle/shift groups); 0 = no second conv
    "dy": Param((int,), length=3, minimum=0),          # per activation: 0 = ReLU6/none, 1 or 2 = Shift-Max with J
    "reduction": Param(int, 8, minimum=1),
    "init_a": Param((float,), (1.0, 1.0), length=2, minimum=None),
    "init_b": Param((float,), (0.0, 0.0), length=2, minimum=None),
    "act_max": Param(float, 2.0),
}, cost=_block_cost, check=_block_check)
def micro_block(c_in, a):
    """MicroNet block: micro-factorized pointwise and depthwise convs with Dynamic Shift-Max."""
    return MicroBlock(c_in, a)


class MicroHead(nn.Layer):
    def __init__(self, c_in, hidden, num_classes, dropout):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(c_in, hidden), nn.BatchNorm1D(hidden), nn.Hardswish(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes), nn.BatchNorm1D(num_classes), nn.Hardswish())

    def forward(self, x):
        x = F.hardswish(F.adaptive_avg_pool2d(F.relu6(x), 1).flatten(1))
        return self.fc(x)


def _head_cost(t, a):
    t.linear(t.c, a["hidden"], bn=True)
    t.linear(a["hidden"], a["num_classes"], bn=True)
    t.c, t.h, t.w = a["num_classes"], 1, 1


@register("micronet_head", {"hidden": Param(int, minimum=1), "dropout": Param(float, 0.0)},
          cost=_head_cost, head=True)
def micronet_head(c_in, a):
    """MicroNet head: ReLU6, pool, h-swish, then two Linear+BN1d+h-swish layers with dropout between."""
    return MicroHead(c_in, a["hidden"], a["num_classes"], a["dropout"])
