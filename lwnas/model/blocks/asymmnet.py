"""AsymmNet asymmetric bottleneck (Yang et al., arXiv 2104.07770; official code Spark001/AsymmNet).

The first pointwise conv is made cheaper by reusing the input features: it produces only
`expand - asymmrate*c_in` channels, which are concatenated with `asymmrate` copies of the input on each
side before the depthwise conv; the saving is spent in the (wider) second pointwise conv."""
from __future__ import annotations

import math

from .mobilenetv3 import BOTTLENECK_PARAMS, InvertedResidual, bottleneck_channels, inverted_residual_cost
from .registry import Param, register

PARAMS = {**BOTTLENECK_PARAMS, "asymmrate": Param(int, 1, minimum=1)}


def _squeeze(c_in, a):
    # The official code sizes SE on the depthwise width, rounding (channels // 4) *up* to a multiple of 8.
    if not a["se"]:
        return 0
    dw_c = bottleneck_channels(c_in, a["expand"], a["asymmrate"])[1]
    return int(math.ceil(dw_c // 4 / 8) * 8)


@register("asymm_bottleneck", PARAMS,
          cost=lambda t, a: inverted_residual_cost(t, a, _squeeze(t.c, a), a["asymmrate"]))
def asymm_bottleneck(c_in, a):
    """AsymmNet bottleneck: feature-reusing 1x1 expand, depthwise, SE, linear 1x1, residual."""
    return InvertedResidual(c_in, a["out"], a["kernel"], a["stride"], a["expand"], _squeeze(c_in, a), a["act"],
                            reuse=a["asymmrate"])
