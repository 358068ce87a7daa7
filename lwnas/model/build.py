"""Spec -> Paddle network. Blocks are looked up in the registry; nothing here knows a block family."""
from __future__ import annotations

import paddle.nn as nn

from .blocks import BLOCKS


class Network(nn.Layer):
    """stem -> stages -> head, with the spec kept for saving, counting and re-parameterization."""

    def __init__(self, spec, num_classes: int | None = None):
        super().__init__()
        if num_classes is not None and num_classes != spec.num_classes:
            spec = spec.replace(num_classes=num_classes)
        self.spec = spec
        c = spec.in_channels
        from .cost import trace

        widths = [row.out_shape[0] for row in trace(spec)]
        layers, names = [], []
        for (path, block), width in zip(spec.blocks(), widths):
            args = block.kwargs
            if BLOCKS[block.type].head:
                args["num_classes"] = spec.num_classes
            layers.append(BLOCKS[block.type].layer(c, args))
            names.append(path)
            c = width
        self.layers = nn.LayerList(layers)
        self.paths = names

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def build(spec_or_name, num_classes: int | None = None) -> Network:
    """Build a Paddle network from an ArchSpec, a spec file path or a named config."""
    from .configs import resolve

    return Network(resolve(spec_or_name), num_classes)
