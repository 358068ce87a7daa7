"""The supernet: one Paddle layer holding the weights of every network of a search space.

A network of the space runs as a *subnet*: `lwnas.build(spec)` built without weights of its own (under
`paddle.LazyGuard`), each trainable weight replaced by its cut of the position's bank (which bank: `sharing`;
which entries: `routing`), cut again at every call so that gradients reach the bank. Batch-norm statistics are
the subnet's own: they are not shared (a subnet's statistics depend on its own widths), so they are re-estimated
on training batches before a subnet is evaluated or extracted.
"""
from __future__ import annotations

import functools
import math
from collections import OrderedDict

import numpy as np
import paddle
import paddle.nn as nn

from ..errors import LwnasError
from ..model.blocks import BLOCKS
from ..model.build import Network
from ..model.cost import Tally
from ..model.spec import ArchSpec
from ..search.space import SearchSpace
from .routing import ROUTERS, route
from .sharing import Candidate, bank_key, candidates, check_separate, maximal

CACHED_SUBNETS = 8  # the sandwich rule's largest and smallest, and a few recent others


class SupernetError(LwnasError):
    """A network that the supernet cannot run (not a point of its space, or weights beyond its banks)."""


class Bank(nn.Layer):
    """The shared weights of one position and bank key: one parameter per weight name of the block."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], inits: dict[str, tuple[str, float]]):
        super().__init__()
        self.names = sorted(shapes)
        for i, name in enumerate(self.names):
            self.add_parameter(f"w{i}", self.create_parameter(
                list(shapes[name]), default_initializer=_initializer(*inits[name])))

    def get(self, name: str):
        return getattr(self, f"w{self.names.index(name)}")


def standalone_init(layer: nn.Layer, name: str) -> tuple[str, float]:
    """How Paddle initialises weight `name` of `layer` built on its own: a convolution's kernel He-normal on
    kernel size x all input channels (Paddle counts every input channel, not a group's), a linear layer's matrix
    Xavier-uniform on its fan-in and fan-out, a normalization's scale ones, biases and shifts zeros. As
    (kind, scale): ('normal', std), ('uniform', limit) or ('constant', value)."""
    owner, attr = _owner(layer, name)
    if attr == "weight" and isinstance(owner, nn.Conv2D):
        return "normal", math.sqrt(2.0 / (int(np.prod(owner._kernel_size)) * owner._in_channels))
    if attr == "weight" and isinstance(owner, nn.Linear):
        fan_in, fan_out = owner.weight.shape
        return "uniform", math.sqrt(6.0 / (fan_in + fan_out))
    return "constant", 1.0 if attr == "weight" else 0.0


def _initializer(kind: str, scale: float):
    if kind == "normal":
        return nn.initializer.Normal(0.0, scale)
    if kind == "uniform":
        return nn.initializer.Uniform(-scale, scale)
    return nn.initializer.Constant(scale)


class Subnet(nn.Layer):
    """One network of the space running on the supernet's banks (its own layers hold only batch-norm statistics)."""

    def __init__(self, spec: ArchSpec, net: Network, bindings: list, names: list[str]):
        super().__init__()
        self.spec, self.net = spec, net
        self.bindings, self.names = bindings, names  # (owner layer, attribute, bank weight, Cut, taker); net's names

    def bind(self):
        """Cut every weight from its bank afresh (the banks change at every optimizer step)."""
        for owner, attr, bank_param, _, take in self.bindings:
            object.__setattr__(owner, attr, take(bank_param))

    def forward(self, x):
        self.bind()
        return self.net(x)

    def weights(self) -> dict:
        """The subnet's weights and statistics under `lwnas.build(spec)`'s names, as a normal network holds them."""
        state = {name: value.detach().clone() for name, value in self.net.state_dict().items()}
        for (_, _, bank_param, _, take), name in zip(self.bindings, self.names):
            state[name] = take(bank_param).detach().clone()
        return state


class Supernet(nn.Layer):
    """Every network of `space` for `num_classes` classes; `forward` runs the active subnet (`activate`).
    `separate` names shared block parameters ("micro_block.expand") whose every value gets its own banks."""

    def __init__(self, space: SearchSpace, num_classes: int, separate=()):
        super().__init__()
        self.space, self.num_classes = space, num_classes
        self.separate = check_separate(separate)
        self.largest = space.largest(num_classes).spec
        self.smallest = space.smallest(num_classes).spec
        self.banks = nn.LayerList()
        self._bank_of: dict[tuple, int] = {}
        self._room: dict[str, tuple[int, int]] = {}  # per position: identities its input can carry, widest input
        for position, n_in, widest, key, shapes, inits in _bank_shapes(space, num_classes, self.separate):
            self._room[position] = n_in, widest
            self._bank_of[(position, key)] = len(self.banks)
            self.banks.append(Bank(shapes, inits))
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

    def restrict(self, within: SearchSpace):
        """Draw, build and score only networks of `within`, a sub-space of this supernet's space on the same banks:
        few-shot NAS (Zhao et al. 2021) trains one copy of a supernet per value of a split choice this way."""
        largest, smallest = within.largest(self.num_classes).spec, within.smallest(self.num_classes).spec
        for spec in (largest, smallest):
            if not self.space.contains(spec):
                raise SupernetError(f"space {within.name} is not a sub-space of {self.space.name}: its network "
                                    f"{spec.name} is not a network of {self.space.name}")
        self.space, self.largest, self.smallest = within, largest, smallest
        self._subnets.clear()

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
        ids = np.arange(self.space.in_channels)
        for (path, block), position, layer, prefix in zip(spec.blocks(), positions, net.layers,
                                                         (f"layers.{i}." for i in range(len(net.layers)))):
            index = self._bank_of.get((position, bank_key(block, self.separate)))
            if index is None:
                raise SupernetError(f"{spec.name}: no weights for {block.type} at {position} ({path})")
            bank = self.banks[index]
            try:
                cuts, ids = route(block.type, layer, ids, *self._room[position], lambda: _out_width(block, len(ids)))
            except ValueError as err:
                raise SupernetError(f"{spec.name}: {position} ({path}): {err}") from None
            assert len(set(ids.tolist())) == len(ids), f"{spec.name}: {position} gives two channels one identity"
            for name, param in list(layer.named_parameters()):
                owner, attr = _owner(layer, name)
                if param.stop_gradient:  # batch-norm statistics: the subnet's own
                    param.initialize()
                    continue
                if name not in bank.names:
                    raise SupernetError(f"{spec.name}: {position} {block.type} has weight {name}, which its bank "
                                        f"lacks")
                bank_param, cut = bank.get(name), cuts[name]
                if any(n > b for n, b in zip(cut.needs(param.shape), bank_param.shape)):
                    raise SupernetError(f"{spec.name}: {position} {block.type} weight {name} needs "
                                        f"{list(cut.needs(param.shape))} of its bank {list(bank_param.shape)}")
                del owner._parameters[attr]
                bindings.append((owner, attr, bank_param, cut, cut.taker(bank_param.shape, param.shape)))
                names.append(prefix + name)
        return Subnet(spec, net, bindings, names)


def _out_width(block, c_in: int) -> int:
    tally = Tally(c_in, 64, 64)
    BLOCKS[block.type].cost(tally, block.kwargs)
    return tally.c


def _owner(layer: nn.Layer, dotted: str):
    *path, attr = dotted.split(".")
    for step in path:
        layer = getattr(layer, step)
    return layer, attr


def _bank_shapes(space: SearchSpace, num_classes: int, separate: frozenset[str]):
    """(position, n_in, widest input, bank key, {weight name: shape}, {weight name: initialisation}) for every bank
    of the space, in a fixed order. A weight is initialised as in the largest standalone layer it stands in for (the
    smallest scale among the maximal candidates: the largest fans). n_in bounds the channel identities a
    position's input can carry: the image's channels, then the most any block that can precede it gives."""
    depths = {slot.name: slot.depths for slot in list(space.stem) + list(space.stages)}
    n_after = n_out = space.in_channels  # at the previous slot's end (over its allowed depths); at the last position
    for position, strides, choices, widths, head in _positions(space):
        slot, _, k = position.rpartition(".")
        if head or k == "0":
            n_in = n_after
            n_after = n_in if not head and 0 in depths[slot] else 0
        else:
            n_in = n_out
        n_out, widest = 0, max(widths)
        for choice in choices:
            for stride in strides:
                groups = candidates(choice, stride, widths, num_classes if head else None, separate)
                for key in sorted(groups, key=repr):
                    shapes: dict[str, list[int]] = {}
                    inits: dict[str, tuple[str, float]] = {}
                    for candidate in maximal(groups[key], separate):
                        needs, made, init = _routed_shapes(candidate, n_in, widest, num_classes if head else None)
                        n_out = max(n_out, made)
                        for name, shape in needs.items():
                            old = shapes.setdefault(name, list(shape))
                            shapes[name] = [max(a, b) for a, b in zip(old, shape)]
                            inits[name] = min(inits.get(name, init[name]), init[name])
                    yield position, n_in, widest, key, {name: tuple(shape) for name, shape in shapes.items()}, inits
        if not head and int(k) + 1 in depths[slot]:
            n_after = max(n_after, n_out)


@functools.lru_cache(maxsize=None)
def _routed_shapes(candidate: Candidate, n_in: int, widest: int, num_classes: int | None):
    """For one candidate whose input carries the highest identity n_in-1 on every channel (every index a block
    derives grows with its input's identities, so this bounds them all): ({weight: bank shape it needs},
    how many identities its output can carry, {weight: its standalone initialisation})."""
    args = candidate.block.kwargs
    if num_classes is not None:
        args["num_classes"] = num_classes
    with paddle.LazyGuard():
        layer = BLOCKS[candidate.block.type].layer(candidate.c_in, args)
    routed = candidate.block.type in ROUTERS  # the others keep channels in place (see `route`)
    ids = np.full(candidate.c_in, n_in - 1) if routed else np.arange(candidate.c_in)
    cuts, out = route(candidate.block.type, layer, ids, n_in, widest,
                      lambda: _out_width(candidate.block, candidate.c_in))
    params = dict(layer.named_parameters())
    needs = {name: cut.needs(params[name].shape) for name, cut in cuts.items()}
    return needs, max(int(out.max()) + 1, len(out)), {name: standalone_init(layer, name) for name in cuts}


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
                out.update(_out_width(c.block, c.c_in) for c in group)
    return out
