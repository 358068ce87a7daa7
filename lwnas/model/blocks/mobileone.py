"""MobileOne (Vasu et al., arXiv 2206.04040; official code apple/ml-mobileone).

At train time a MobileOne conv sums k conv+BN branches, a 1x1 conv+BN "scale" branch (kernel > 1 only)
and a BN-only identity branch (when the shape is kept); `reparameterize()` folds them exactly into one
conv with bias. A MobileOne block is a depthwise 3x3 MobileOne conv followed by a pointwise one."""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .common import Conv2D, SqueezeExcite, conv_bn, squeeze_excite_cost
from .registry import Param, register

SE_RATIO = 0.0625


class MobileOneConv(nn.Layer):
    def __init__(self, c_in, out, kernel, stride, groups, branches, se):
        super().__init__()
        self.c_in, self.out, self.kernel, self.stride, self.groups = c_in, out, kernel, stride, groups
        self.conv_branches = nn.LayerList([conv_bn(c_in, out, kernel, stride, groups) for _ in range(branches)])
        self.scale_branch = conv_bn(c_in, out, 1, stride, groups) if kernel > 1 else None
        self.skip_branch = nn.BatchNorm2D(c_in) if c_in == out and stride == 1 else None
        self.fused = None
        self.se = SqueezeExcite(out, int(out * SE_RATIO), gate="sigmoid") if se else None
        self.act = nn.ReLU()  # a layer, not F.relu: hooks on activations (lwnas.zero_cost's NASWOT) see it

    def forward(self, x):
        if self.fused is not None:
            y = self.fused(x)
        else:
            y = sum(branch(x) for branch in self.conv_branches)
            if self.scale_branch is not None:
                y = y + self.scale_branch(x)
            if self.skip_branch is not None:
                y = y + self.skip_branch(x)
        if self.se is not None:
            y = self.se(y)
        return self.act(y)

    @paddle.no_grad()
    def reparameterize(self):
        """Fold all branches into a single conv with bias; the network's function is unchanged (eval mode)."""
        if self.fused is not None:
            return
        weight, bias = 0, 0
        for branch in self.conv_branches:
            w, b = _fuse(branch[0].weight, branch[1])
            weight, bias = weight + w, bias + b
        if self.scale_branch is not None:
            w, b = _fuse(self.scale_branch[0].weight, self.scale_branch[1])
            pad = self.kernel // 2
            weight, bias = weight + F.pad(w, [pad, pad, pad, pad]), bias + b
        if self.skip_branch is not None:
            identity = paddle.zeros([self.c_in, self.c_in // self.groups, self.kernel, self.kernel])
            centre = self.kernel // 2
            for i in range(self.c_in):
                identity[i, i % (self.c_in // self.groups), centre, centre] = 1.0
            w, b = _fuse(identity, self.skip_branch)
            weight, bias = weight + w, bias + b
        self.fused = Conv2D(self.c_in, self.out, self.kernel, self.stride, self.kernel // 2, groups=self.groups)
        self.fused.weight.set_value(weight)
        self.fused.bias.set_value(bias)
        self.conv_branches = nn.LayerList()
        self.scale_branch = self.skip_branch = None


def _fuse(weight, bn: nn.BatchNorm2D):
    """Kernel and bias of conv(weight) followed by an eval-mode batch norm."""
    std = paddle.sqrt(bn._variance + bn._epsilon)
    scale = bn.weight / std
    return weight * scale.reshape([-1, 1, 1, 1]), bn.bias - bn._mean * scale


def mobileone_conv_cost(t, out, kernel, stride, groups, branches, se):
    c_in = t.c
    weights = out * (c_in // groups) * kernel * kernel
    train = branches * (weights + 2 * out)
    if kernel > 1:
        train += out * (c_in // groups) + 2 * out
    if c_in == out and stride == 1:
        train += 2 * c_in
    t.conv(out, kernel, stride, groups, bias=True, train_params=train)
    if se:
        squeeze_excite_cost(t, out, int(out * SE_RATIO))


def _conv_groups(c_in, a):
    return c_in if a["depthwise"] else 1


@register("mobileone_conv", {
    "out": Param(int, minimum=1),
    "kernel": Param(int, 3, choices=(1, 3, 5, 7)),
    "stride": Param(int, 1, choices=(1, 2)),
    "depthwise": Param(bool, False),
    "branches": Param(int, 1, minimum=1),
    "se": Param(bool, False),
}, cost=lambda t, a: mobileone_conv_cost(t, a["out"], a["kernel"], a["stride"], _conv_groups(t.c, a),
                                         a["branches"], a["se"]),
   check=lambda c_in, a: f"a depthwise conv keeps its width: input {c_in}, out {a['out']}"
   if a["depthwise"] and c_in != a["out"] else None)
def mobileone_conv(c_in, a):
    """One re-parameterizable MobileOne conv (the stem): k conv branches, 1x1 scale branch, BN identity."""
    return MobileOneConv(c_in, a["out"], a["kernel"], a["stride"], _conv_groups(c_in, a), a["branches"], a["se"])


def _block_cost(t, a):
    mobileone_conv_cost(t, t.c, 3, a["stride"], t.c, a["branches"], a["se"])
    mobileone_conv_cost(t, a["out"], 1, 1, 1, a["branches"], a["se"])


@register("mobileone_block", {
    "out": Param(int, minimum=1),
    "stride": Param(int, 1, choices=(1, 2)),
    "branches": Param(int, 1, minimum=1),
    "se": Param(bool, False),
}, cost=_block_cost)
def mobileone_block(c_in, a):
    """MobileOne block: depthwise 3x3 then pointwise 1x1 MobileOne convs, each with k train-time branches."""
    return nn.Sequential(
        MobileOneConv(c_in, c_in, 3, a["stride"], c_in, a["branches"], a["se"]),
        MobileOneConv(c_in, a["out"], 1, 1, 1, a["branches"], a["se"]),
    )


def reparameterize(model: nn.Layer) -> nn.Layer:
    """Convert every re-parameterizable layer of `model` in place (call in eval mode); returns the model."""
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, MobileOneConv):
            layer.reparameterize()
    return model
