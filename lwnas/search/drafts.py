"""How a draft network is decided and fitted: decisions asked from an Optuna trial, drawn at random, replayed
from a draft or read from stored parameters; blocks repaired to fit their input; drafts shrunk toward a budget."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SpecError
from ..model.blocks import BLOCKS
from ..model.spec import BlockSpec

if TYPE_CHECKING:
    from .space import BlockChoice, SearchSpace

# parameters whose smaller choices give a cheaper block: the budget shrinker lowers them
SHRINKABLE = ("out", "expand", "hidden", "mlp_ratio")


@dataclass
class Draft:
    """What Optuna chose for one trial: per slot a depth, a stride index and per block (choice, indices)."""

    slots: list[list]  # [depth, stride_index, [(choice, {param: index}), ...]]


def show_value(value) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _is_range(values: tuple) -> bool:
    return all(isinstance(v, int) for v in values) and list(values) == list(range(values[0], values[-1] + 1))


def _by_value(values: tuple) -> bool:
    """Strings and booleans are categories (stored by value); numbers and tuples are ordered (stored by index,
    so TPE models their order)."""
    return all(isinstance(v, (str, bool)) for v in values)


class AskTrial:
    """Decisions asked from an Optuna trial. A choice with one value is no parameter at all."""

    def __init__(self, trial):
        self.trial = trial

    def depth(self, key: str, values: tuple) -> int:
        if len(values) == 1:
            return values[0]
        return self.trial.suggest_int(key, values[0], values[-1]) if _is_range(values) else \
            self.trial.suggest_categorical(key, list(values))

    def index(self, key: str, values: tuple) -> int:
        if len(values) == 1:
            return 0
        if _by_value(values):
            return values.index(self.trial.suggest_categorical(key, list(values)))
        return self.trial.suggest_int(key, 0, len(values) - 1)

    def choice(self, key: str, choices: tuple[BlockChoice, ...]) -> BlockChoice:
        if len(choices) == 1:
            return choices[0]
        name = self.trial.suggest_categorical(key, [c.type for c in choices])
        return next(c for c in choices if c.type == name)


class RandomChoices:
    """Decisions drawn uniformly from a NumPy generator."""

    def __init__(self, rng):
        self.rng = rng

    def depth(self, key: str, values: tuple) -> int:
        return values[int(self.rng.integers(len(values)))]

    def index(self, key: str, values: tuple) -> int:
        return int(self.rng.integers(len(values)))

    def choice(self, key: str, choices: tuple[BlockChoice, ...]) -> BlockChoice:
        return choices[int(self.rng.integers(len(choices)))]


class ReplayDraft:
    """Decisions taken from a draft, in walk order, recording the parameters `AskTrial` would have stored."""

    def __init__(self, draft: Draft):
        def decisions():
            for depth, stride_index, blocks in draft.slots[:-1]:
                yield depth
                yield stride_index
                for choice, indices in blocks:
                    yield choice
                    yield from (indices[name] for name, _ in choice.domains)
            choice, indices = draft.slots[-1][2][0]
            yield choice
            yield from (indices[name] for name, _ in choice.domains)

        self.next, self.params = decisions().__next__, {}

    def depth(self, key, values):
        depth = self.next()
        if len(values) > 1:
            self.params[key] = depth
        return depth

    def index(self, key, values):
        i = self.next()
        if len(values) > 1:
            self.params[key] = values[i] if _by_value(values) else i
        return i

    def choice(self, key, choices):
        choice = self.next()
        if len(choices) > 1:
            self.params[key] = choice.type
        return choice


class ReadParams:
    """Decisions read from a parameter dict, checked against the space."""

    def __init__(self, params: dict):
        self.params, self.used = params, set()

    def _get(self, key, allowed):
        if key not in self.params:
            raise SpecError(key, "missing")
        value = self.params[key]
        if value not in allowed or isinstance(value, bool) != any(isinstance(a, bool) for a in allowed):
            raise SpecError(key, f"{value!r} is not among {', '.join(map(show_value, allowed))}")
        self.used.add(key)
        return value

    def depth(self, key, values):
        return values[0] if len(values) == 1 else self._get(key, values)

    def index(self, key, values):
        if len(values) == 1:
            return 0
        if _by_value(values):
            return values.index(self._get(key, values))
        return self._get(key, range(len(values)))

    def choice(self, key, choices):
        if len(choices) == 1:
            return choices[0]
        name = self._get(key, [c.type for c in choices])
        return next(c for c in choices if c.type == name)


def _block(choice: BlockChoice, indices: dict[str, int], stride: int) -> BlockSpec:
    domains = dict(choice.domains)
    args = []
    for name, param in sorted(BLOCKS[choice.type].params.items()):
        if name == "stride":
            args.append((name, stride))
        elif name in domains:
            args.append((name, domains[name][indices[name]]))
        else:
            args.append((name, param.default))
    return BlockSpec(choice.type, tuple(args))


def fit_block(choice: BlockChoice, indices: dict[str, int], stride: int, c_in: int, num_classes: int | None):
    """The drafted block, or the nearest one (one or two parameters moved) whose channels fit:
    (block, moved, indices); block None if nothing near fits."""
    check = BLOCKS[choice.type].check

    def fits(candidate: dict[str, int]) -> BlockSpec | None:
        block = _block(choice, candidate, stride)
        if check is None:
            return block
        args = block.kwargs
        if num_classes is not None:
            args["num_classes"] = num_classes
        return None if check(c_in, args) else block

    block = fits(indices)
    if block is not None:
        return block, 0, indices
    free = choice.free
    moves = [[(name, i) for i in sorted(range(len(values)), key=lambda i: (abs(i - indices[name]), i))
              if i != indices[name]] for name, values in free]
    for (name, i) in sorted((m for row in moves for m in row), key=lambda m: abs(m[1] - indices[m[0]])):
        block = fits({**indices, name: i})
        if block is not None:
            return block, 1, {**indices, name: i}
    pairs = []
    for a, b in itertools.combinations(range(len(free)), 2):
        for ma, mb in itertools.product(moves[a], moves[b]):
            pairs.append((abs(ma[1] - indices[ma[0]]) + abs(mb[1] - indices[mb[0]]), ma, mb))
    for _, (na, ia), (nb, ib) in sorted(pairs, key=lambda p: p[0]):
        block = fits({**indices, na: ia, nb: ib})
        if block is not None:
            return block, 1, {**indices, na: ia, nb: ib}
    return None, 0, indices


def shrink_draft(draft: Draft, space: SearchSpace) -> bool:
    """One step toward a cheaper network: every width-like choice one step down; once widths are at their
    smallest, one block fewer (last slot first); then smaller kernels. False when nothing is left to shrink."""
    if _lower(draft, SHRINKABLE):
        return True
    slots = list(space.stem) + list(space.stages)
    for slot, row in reversed(list(zip(slots, draft.slots))):
        if row[0] > min(slot.depths):
            row[0] -= 1
            row[2].pop()
            return True
    return _lower(draft, ("kernel",))


def _lower(draft: Draft, names: tuple[str, ...]) -> bool:
    moved = False
    for _, _, blocks in draft.slots:
        for _, indices in blocks:
            for name in names:
                if indices.get(name, 0) > 0:
                    indices[name] -= 1
                    moved = True
    return moved
