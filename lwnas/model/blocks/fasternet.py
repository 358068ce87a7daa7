"""PConv and the FasterNet block (Chen et al., arXiv 2303.03667; official code JierunChen/FasterNet).

PConv applies a 3x3 conv to the first c/n_div channels and passes the rest through untouched; two 1x1
convs (expand by mlp_ratio with BN and activation, then project back) follow, with a residual and
drop path around them. Stages are joined by a 2x2 stride-2 conv + BN ("patch merging"), the stem is a
4x4 stride-4 conv + BN: both are `conv_bn_act` blocks with act none."""
from __future__ import annotations

import paddle
import paddle.nn as nn

from .common import DropPath, activation
from .registry import Param, register


class PartialConv(nn.Layer):
    def __init__(self, channels: int, n_div: int):
        super().__init__()
        self.conv_channels = channels // n_div
        self.rest = channels - self.conv_channels
        self.conv = nn.Conv2D(self.conv_channels, self.conv_channels, 3, 1, 1, bias_attr=False)

    def forward(self, x):
        head, tail = paddle.split(x, [self.conv_channels, self.rest], axis=1)
        return paddle.concat([self.conv(head), tail], axis=1)


class FasterNetBlock(nn.Layer):
    def __init__(self, channels, n_div, mlp_ratio, act, drop_path):
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.spatial_mixing = PartialConv(channels, n_div)
        self.mlp = nn.Sequential(
            nn.Conv2D(channels, hidden, 1, bias_attr=False),
            nn.BatchNorm2D(hidden),
            activation(act),
            nn.Conv2D(hidden, channels, 1, bias_attr=False),
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        return x + self.drop_path(self.mlp(self.spatial_mixing(x)))


def _cost(t, a):
    c = t.c
    part = c // a["n_div"]
    t.c = part
    t.conv(part, 3)
    t.c = c
    t.conv(int(c * a["mlp_ratio"]), 1, bn=True).conv(c, 1)


@register("fasternet_block", {
    "n_div": Param(int, 4, minimum=1),
    "mlp_ratio": Param(float, 2.0, minimum=0.25),
    "act": Param(str, "relu", choices=("relu", "gelu")),
    "drop_path": Param(float, 0.0),
}, cost=_cost, check=lambda c_in, a: None if c_in >= a["n_div"] else
   f"{c_in} channels cannot be split into n_div={a['n_div']} parts")
def fasternet_block(c_in, a):
    """FasterNet block: PConv 3x3 on c/n_div channels, 1x1 expand + BN + act, 1x1 project, residual."""
    return FasterNetBlock(c_in, a["n_div"], a["mlp_ratio"], a["act"], a["drop_path"])
