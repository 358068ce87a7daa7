"""Block registry: each block family registers its types here; the builder and counter look them up."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

REQUIRED = object()
ACTIVATIONS = ("none", "relu", "relu6", "hswish", "gelu")


@dataclass(frozen=True)
class Param:
    """One typed block parameter. `kind` is int, float, bool, str, or a tuple of one of them."""

    kind: Any
    default: Any = REQUIRED
    choices: tuple | None = None
    length: int | None = None  # required length for tuple kinds
    minimum: float | None = 0  # numbers (and tuple items) must be >= minimum


@dataclass(frozen=True)
class BlockType:
    """A registered block: how to build it and how to count it.

    `layer(c_in, args)` returns a paddle.nn.Layer; `cost(tally, args)` adds its multiply-adds and
    parameters to a shape-tracking Tally (lwnas.model.cost) and moves the tally's shape to the block's output.
    `check(c_in, args)` returns an error message for channel counts the block cannot take, else None.
    Head blocks additionally receive `num_classes` in args.
    """

    name: str
    params: Mapping[str, Param]
    layer: Callable
    cost: Callable
    check: Callable | None = None
    head: bool = False


BLOCKS: dict[str, BlockType] = {}


def register(name: str, params: Mapping[str, Param], *, cost: Callable, check: Callable | None = None,
             head: bool = False):
    """Decorator registering `layer_factory(c_in, args)` under `name`."""

    def wrap(layer_factory):
        if name in BLOCKS:
            raise ValueError(f"block type {name!r} registered twice")
        BLOCKS[name] = BlockType(name, dict(params), layer_factory, cost, check, head)
        return layer_factory

    return wrap
