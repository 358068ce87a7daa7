"""The supernet: one Paddle layer holding the weights of every network of a search space.

A network of the space runs as a *subnet*: `lwnas.build(spec)` built without weights of its own (under
`paddle.LazyGuard`), each trainable weight replaced by its window of the position's bank (see `sharing`), cut
again at every call so that gradients reach the bank. Batch-norm statistics are the subnet's own: they are not
shared (a subnet's statistics depend on its own widths), so they are re-estimated on training batches before a
subnet is evaluated or extracted.
"""
from __future__ import annotations

import functools
import math
from collections import OrderedDict

import numpy as np
import paddle
import paddle.nn as nn

from ..blocks import BLOCKS
from ..build import Network
from ..cost import Tally
from ..errors import LwnasError
from ..space import SearchSpace
from ..spec import ArchSpec
from .sharing import Candidate, bank_key, candidates, maximal, window

CACHED_SUBNETS = 8  # the sandwich rule's largest and smallest, and a few recent others


class SupernetError(LwnasError):
    """A network that the supernet cannot run (not a point of its space, or weights beyond its banks)."""


class Bank(nn.Layer):
    """The shared weights of one position and bank key: one parameter per weight name of the block."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        self.names = sorted(shapes)
        for i, name in enumerate(self.names):
            shape = list(shapes[name])
            self.add_parameter(f"w{i}", self.create_parameter(shape, default_initializer=_initializer(name, shape)))

    def get(self, name: str):
        return getattr(self, f"w{self.names.index(name)}")


def _initializer(name: str, shape: list[int]):
    """Paddle's defaults, sized by the bank: He-normal on the input fan of convolutions and linear layers, ones
    for normalization scales, zeros for biases and shifts."""
    if len(shape) >= 2:
        fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))  # Linear weights are [in, out]
        return nn.initializer.Normal(0.0, math.sqrt(2.0 / fan_in))
    return nn.initializer.Constant(1.0 if name.endswith("weight") else 0.0)


class Subnet(nn.Layer):
    """One network of the space running on the supernet's banks (its own layers hold only batch-norm statistics)."""

    def __init__(self, spec: ArchSpec, net: Network, bindings: list, names: list[str]):
        super().__init__()
        self.spec, self.net = spec, net
        self.bindings, self.names = bindings, names  # (owner layer, attribute, bank weight, window); net's names

    def bind(self):
        """Cut every weight from its bank afresh (the banks change at every optimizer step)."""
        for owner, attr, bank_param, cut in self.bindings:
            object.__setattr__(owner, attr, bank_param[cut])

    def forward(self, x):
        self.bind()
        return self.net(x)

    def weights(self) -> dict:
        """The subnet's weights and statistics under `lwnas.build(spec)`'s names, as a normal network holds them."""
        state = {name: value.detach().clone() for name, value in self.net.state_dict().items()}
        for (_, _, bank_param, cut), name in zip(self.bindings, self.names):
            state[name] = bank_param[cut].detach().clone()
        return state


class Supernet(nn.Layer):
    """Every network of `space` for `num_classes` classes; `forward` runs the active subnet (`activate`)."""

    def __init__(self, space: SearchSpace, num_classes: int):
        super().__init__()
        self.space, self.num_classes = space, num_classes
        self.largest = space.largest(num_classes).spec
        self.smallest = space.smallest(num_classes).spec
        self.banks = nn.LayerList()
        self._bank_of: dict[tuple, int] = {}
        for position, key, shapes in _bank_shapes(space, num_classes):
            self._bank_of[(position, key)] = len(self.banks)
            self.banks.append(Bank(shapes))
        self._subnets: OrderedDict[str, Subnet] = OrderedDict()  # not sublayers: checkpoints hold the banks only
        object.__setattr__(self, "_active", None)

    def subnet(self, spec: ArchSpec) -> Subnet:
        """The subnet of `spec` (cached: its batch-norm statistics persist while it stays in the cache)."""
        if spec.num_classes != self.num_classes:
            spec = spec.replace(num_classes=self.num_classes)
        cached = self._subnets.get(spec.arch_hash)
        if cached is not None:
            self._subnets.move_to_end(spec.arch_hash)
            return cached
        subnet = self._build(spec)
        self._subnets[spec.arch_hash] = subnet
        while len(self._subnets) > CACHED_SUBNETS:
            self._subnets.popitem(last=False)
        return subnet

    def activate(self, spec: ArchSpec) -> Subnet:
        """Make `spec` the subnet that `forward` runs."""
        object.__setattr__(self, "_active", self.subnet(spec))
        return self._active

    def forward(self, x):
        if self._active is None:
            self.activate(self.largest)
        self._active.train() if self.training else self._active.eval()
        return self._active(x)

    def _build(self, spec: ArchSpec) -> Subnet:
        try:
            positions = self.space.positions(spec)
        except LwnasError as err:  # "NAME: not a network of space S: why"
            raise SupernetError(str(err)) from None
        with paddle.LazyGuard():
            net = Network(spec)
        bindings, names = [], []
        for (path, block), position, layer, prefix in zip(spec.blocks(), positions, net.layers,
                                                         (f"layers.{i}." for i in range(len(net.layers)))):
            index = self._bank_of.get((position, bank_key(block)))
            if index is None:
                raise SupernetError(f"{spec.name}: no weights for {block.type} at {position} ({path})")
            bank = self.banks[index]
            for name, param in list(layer.named_parameters()):
                owner, attr = _owner(layer, name)
                if param.stop_gradient:  # batch-norm statistics: the subnet's own
                    param.initialize()
                    continue
                if name not in bank.names:
                    raise SupernetError(f"{spec.name}: {position} {block.type} has weight {name}, which its bank "
                                        f"lacks")
                bank_param = bank.get(name)
                if any(p > b for p, b in zip(param.shape, bank_param.shape)):
                    raise SupernetError(f"{spec.name}: {position} {block.type} weight {name} {list(param.shape)} "
                                        f"exceeds its bank {list(bank_param.shape)}")
                del owner._parameters[attr]
                bindings.append((owner, attr, bank_param, window(bank_param.shape, param.shape)))
                names.append(prefix + name)
        return Subnet(spec, net, bindings, names)


def _owner(layer: nn.Layer, dotted: str):
    *path, attr = dotted.split(".")
    for step in path:
        layer = getattr(layer, step)
    return layer, attr


def _bank_shapes(space: SearchSpace, num_classes: int):
    """(position, bank key, {weight name: shape}) for every bank of the space, in a fixed order."""
    for position, strides, choices, widths, head in _positions(space):
        for choice in choices:
            for stride in strides:
                groups = candidates(choice, stride, widths, num_classes if head else None)
                for key in sorted(groups, key=repr):
                    shapes: dict[str, list[int]] = {}
                    for candidate in maximal(groups[key]):
                        for name, shape in _weight_shapes(candidate, num_classes if head else None).items():
                            old = shapes.setdefault(name, list(shape))
                            shapes[name] = [max(a, b) for a, b in zip(old, shape)]
                    yield position, key, {name: tuple(shape) for name, shape in shapes.items()}


@functools.lru_cache(maxsize=None)
def _weight_shapes(candidate: Candidate, num_classes: int | None) -> dict[str, tuple[int, ...]]:
    args = candidate.block.kwargs
    if num_classes is not None:
        args["num_classes"] = num_classes
    with paddle.LazyGuard():
        layer = BLOCKS[candidate.block.type].layer(candidate.c_in, args)
    return {name: tuple(p.shape) for name, p in layer.named_parameters() if not p.stop_gradient}


def _positions(space: SearchSpace):
    """(position, first-block strides, block choices, possible input widths, is head) for every position, in
    network order. Input widths are every width a valid earlier block can produce (a superset is harmless: a
    bank only grows)."""
    widths = {space.in_channels}
    for slot in list(space.stem) + list(space.stages):
        current, after = set(widths), set(widths) if 0 in slot.depths else set()
        for k in range(max(slot.depths)):
            strides = slot.strides if k == 0 else (1,)
            yield f"{slot.name}.{k}", strides, slot.choices, frozenset(current), False
            current = _outputs(slot.choices, strides, frozenset(current))
            if k + 1 in slot.depths:
                after |= current
        widths = after
    yield "head", (1,), space.head, frozenset(widths), True


def _outputs(choices, strides, widths) -> set[int]:
    out = set()
    for choice in choices:
        for stride in strides:
            for group in candidates(choice, stride, widths, None).values():
                for c in group:
                    tally = Tally(c.c_in, 64, 64)
                    BLOCKS[c.block.type].cost(tally, c.block.kwargs)
                    out.add(tally.c)
    return out
