"""Search spaces: which networks a search may build, read from `search_spaces/*.yaml`.

A space is a list of stem slots, a list of stage slots and a head. Each slot allows a depth range,
a stride for its first block and a set of block choices; every block choice lists the values each
parameter may take. Blocks inside a slot choose their parameters independently, so a slot holds
e.g. MobileNetV3's stage with widths 80 and 112, or MicroNet's with 64, 96 and 576.

Entry points: `contains(spec)` (is a named config a point of this space?), `sample(trial)` (Optuna
define-by-run) and `spec_from_params(params)`, the network a trial's parameters name. Decoding repairs blocks
whose channels do not fit (for example group counts that do not divide the width) by moving one or two
parameters to the nearest allowed value that fits; the repair depends on the parameters alone, so the sampler's
own parameters always name the trained network. Under a budget, sampling can also shrink widths and depths step
by step until the network fits (off by default: shrinking lands every network on the budget edge); a shrunk
sample's `params` name the network as built, which the search trains as a trial of its own.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .blocks import BLOCKS
from .blocks.registry import REQUIRED
from .cost import Tally
from .errors import LwnasError, SpecError
from .spec import ArchSpec, BlockSpec, StageSpec, _coerce, parse_yaml

# parameters whose smaller choices give a cheaper block: the budget shrinker lowers them
SHRINKABLE = ("out", "expand", "hidden", "mlp_ratio")


@dataclass(frozen=True)
class BlockChoice:
    """One block type allowed in a slot, with the values each of its parameters may take."""

    type: str
    domains: tuple[tuple[str, tuple], ...]  # parameter -> allowed values, in the order given

    @property
    def free(self) -> list[tuple[str, tuple]]:
        return [(name, values) for name, values in self.domains if len(values) > 1]

    def allows(self, block: BlockSpec, stride: int | None) -> str | None:
        """None when `block` is one of this choice's points (with the slot's stride rule), else why not."""
        if block.type != self.type:
            return f"type {block.type} is not allowed (allowed here: {self.type})"
        domains = dict(self.domains)
        for name, value in block.args:
            if name == "stride" and stride is not None:
                if value != stride:
                    return f"stride {value} where the slot puts stride {stride}"
            elif value not in domains.get(name, (BLOCKS[self.type].params[name].default,)):
                allowed = domains.get(name, (BLOCKS[self.type].params[name].default,))
                return f"{self.type}.{name}={_show(value)} is not among {', '.join(map(_show, allowed))}"
        return None


@dataclass(frozen=True)
class Slot:
    name: str
    depths: tuple[int, ...]
    strides: tuple[int, ...]
    choices: tuple[BlockChoice, ...]


@dataclass
class Draft:
    """What Optuna chose for one trial: per slot a depth, a stride index and per block (choice, indices)."""

    slots: list[list]  # [depth, stride_index, [(choice, {param: index}), ...]]


@dataclass(frozen=True)
class Sample:
    spec: ArchSpec | None
    macs: int
    repaired: int  # blocks whose parameters were moved to fit their channels
    reason: str = ""  # why spec is None
    params: dict | None = None  # the canonical Optuna parameters of `spec` (repairs written in, after shrinking)
    drafted_macs: int = 0  # before shrinking
    shrunk: int = 0  # shrinking steps taken: the trial's own parameters no longer name `spec`


class SearchSpace:
    def __init__(self, name: str, resolution: int, in_channels: int, stem: tuple[Slot, ...],
                 stages: tuple[Slot, ...], head: tuple[BlockChoice, ...], description: str = "",
                 source: str = ""):
        self.name, self.resolution, self.in_channels = name, resolution, in_channels
        self.stem, self.stages, self.head = stem, stages, head
        self.description, self.source = description, source
        self.text = ""  # the YAML it was read from, when it was read from one

    # ---- membership ---------------------------------------------------------------------
    def contains(self, spec: ArchSpec) -> bool:
        return self.why_not(spec) is None

    def why_not(self, spec: ArchSpec) -> str | None:
        """None if `spec` is a point of this space, else the first reason it is not."""
        placed = self._place(spec)
        return placed if isinstance(placed, str) else None

    def positions(self, spec: ArchSpec) -> list[str]:
        """Where each block of `spec.blocks()` sits in the space: "slot.k" (the k-th block of a slot), "head"
        last. SpecError if the spec is not a point of the space."""
        placed = self._place(spec)
        if isinstance(placed, str):
            raise SpecError(spec.name, f"not a network of space {self.name}: {placed}")
        return placed

    def _place(self, spec: ArchSpec) -> list[str] | str:
        if spec.resolution != self.resolution:
            return f"resolution {spec.resolution}, the space's is {self.resolution}"
        if spec.in_channels != self.in_channels:
            return f"{spec.in_channels} input channels, the space's are {self.in_channels}"
        stem = _match_slots(self.stem, list(spec.stem), "stem")
        if isinstance(stem, str):
            return stem
        stages = _match_slots(self.stages, [b for s in spec.stages for b in s.blocks], "stages")
        if isinstance(stages, str):
            return stages
        reasons = [c.allows(spec.head, None) for c in self.head]
        return stem + stages + ["head"] if None in reasons else f"head: {'; '.join(reasons)}"

    # ---- sampling -----------------------------------------------------------------------
    def suggest(self, trial) -> Draft:
        """Ask an Optuna trial for every choice (define-by-run); numbers are asked as ordered indices."""
        return self._walk(_Ask(trial))

    def params_of(self, draft: Draft) -> dict:
        """The Optuna parameters that `suggest` would have recorded for `draft`: queued as a trial, they
        build exactly the network the draft describes."""
        replay = _Replay(draft)
        self._walk(replay)
        return replay.params

    def spec_from_params(self, params: dict, num_classes: int, name: str = "sampled") -> ArchSpec:
        """The network a trial's parameters describe, exactly. The decoding includes the channel repair: a block
        whose drafted groups or widths do not fit its input takes the nearest setting that does, decided by the
        parameters alone, so several parameter sets can name one network. SpecError for an unknown, missing or
        out-of-range parameter, or a network that cannot be built."""
        reader = _Read(params)
        sample = self.materialize(self._walk(reader), num_classes, name)
        extra = sorted(set(params) - reader.used)
        if extra:
            raise SpecError(extra[0], f"not a parameter of space {self.name} with these choices")
        if sample.spec is None:
            raise SpecError("params", sample.reason)
        return sample.spec

    def _walk(self, choose) -> Draft:
        """Every decision of a network in one fixed order; `choose` answers each (from a trial, a draft or a
        parameter dict), so the three always agree on parameter names and encodings."""
        slots = []
        for slot in list(self.stem) + list(self.stages):
            key = slot.name
            depth = choose.depth(f"{key}.depth", slot.depths)
            stride = choose.index(f"{key}.stride", slot.strides)
            blocks = []
            for k in range(depth):
                choice = choose.choice(f"{key}.{k}.type", slot.choices)
                blocks.append((choice, {name: choose.index(f"{key}.{k}.{choice.type}.{name}", values)
                                        for name, values in choice.domains}))
            slots.append([depth, stride, blocks])
        choice = choose.choice("head.type", self.head)
        head = (choice, {name: choose.index(f"head.{choice.type}.{name}", values) for name, values in choice.domains})
        slots.append([1, 0, [head]])
        return Draft(slots)

    def sample(self, trial, budget: int | None = None, shrink: bool = False, num_classes: int = 1000,
               name: str = "sampled") -> Sample:
        """The network of the trial's choices (`spec_from_params(trial.params)`); with a budget and `shrink`,
        shrunk until it fits, and then the result's `params` (not the trial's) encode it."""
        draft = self.suggest(trial)
        result = drafted = self.materialize(draft, num_classes, name)
        steps = 0
        while shrink and budget is not None and result.spec is not None and result.macs > budget:
            if not _shrink(draft, self):
                break
            steps += 1
            result = self.materialize(draft, num_classes, name)
        return dataclasses.replace(result, drafted_macs=drafted.macs, shrunk=steps)

    def random_sample(self, rng, num_classes: int = 1000, budget: int | None = None, attempts: int = 1000,
                      name: str = "random", shrink: bool = False) -> Sample:
        """A network drawn with the NumPy generator `rng`, every decision uniform (as Optuna's random sampler
        draws them), redrawn until it builds and fits `budget`; with `shrink`, an over-budget draw is first shrunk
        toward the budget as `sample` shrinks (tight budgets admit too few uniform draws: 0.04% of `micro` fits
        6M MAdds). LwnasError after `attempts` draws."""
        for _ in range(attempts):
            draft = self._walk(_Random(rng))
            sample = self.materialize(draft, num_classes, name)
            while shrink and budget is not None and sample.spec is not None and sample.macs > budget and \
                    _shrink(draft, self):
                sample = self.materialize(draft, num_classes, name)
            if sample.spec is not None and (budget is None or sample.macs <= budget):
                return sample
        raise LwnasError(f"no network of space {self.name} fits {budget} MAdds in {attempts} random draws")

    def materialize(self, draft: Draft, num_classes: int = 1000, name: str = "sampled") -> Sample:
        """Turn a draft into a spec, repairing blocks whose channels do not fit; counts MAdds on the way."""
        tally = Tally(self.in_channels, self.resolution, self.resolution)
        slots = list(self.stem) + list(self.stages)
        built: list[list[BlockSpec]] = []
        fitted = Draft([[depth, stride_index, []] for depth, stride_index, _ in draft.slots])
        repaired = 0
        for slot, (depth, stride_index, blocks), fitted_row in zip(slots + [None], draft.slots, fitted.slots):
            row = []
            for k, (choice, indices) in enumerate(blocks):
                is_head = slot is None
                stride = slot.strides[stride_index] if not is_head and k == 0 else 1
                block, moved, indices = _fit_block(choice, indices, stride, tally.c,
                                                   num_classes if is_head else None)
                if block is None:
                    where = "head" if is_head else f"{slot.name}[{k}]"
                    return Sample(None, 0, repaired, f"{where}: no allowed {choice.type} fits "
                                                        f"{tally.c} input channels")
                repaired += moved
                fitted_row[2].append((choice, indices))
                args = block.kwargs
                if is_head:
                    args["num_classes"] = num_classes
                BLOCKS[block.type].cost(tally, args)
                if tally.h < 1 or tally.w < 1:
                    return Sample(None, 0, repaired, f"feature map vanishes at {slot.name}")
                row.append(block)
            built.append(row)
        n_stem = len(self.stem)
        spec = ArchSpec(name=name, family=f"space:{self.name}", resolution=self.resolution,
                        num_classes=num_classes, in_channels=self.in_channels,
                        stem=tuple(b for row in built[:n_stem] for b in row),
                        stages=tuple(StageSpec(slot.name, tuple(row))
                                     for slot, row in zip(self.stages, built[n_stem:-1]) if row),
                        head=built[-1][0])
        return Sample(spec, tally.macs, repaired, params=self.params_of(fitted))

    def smallest(self, num_classes: int = 1000) -> Sample:
        """A cheap network of the space: least depths, first value of every list, and per slot the block
        type that costs least (one greedy pass). Budgets below it cannot be met by sampling."""
        return self._extreme(num_classes, largest=False)

    def largest(self, num_classes: int = 1000) -> Sample:
        """The costly end: greatest depths, last value of every list, per slot the block type that costs most
        (one greedy pass). The supernet's teacher and the widest path through its weights."""
        return self._extreme(num_classes, largest=True)

    def _extreme(self, num_classes: int, largest: bool) -> Sample:
        slots = list(self.stem) + list(self.stages) + [Slot("head", (1,), (1,), self.head)]
        picks = [0] * len(slots)
        name = "largest" if largest else "smallest"

        def build(picks):
            rows = []
            for slot, pick in zip(slots, picks):
                choice = slot.choices[pick]
                depth = max(slot.depths) if largest else min(slot.depths)
                indices = {n: len(values) - 1 if largest else 0 for n, values in choice.domains}
                rows.append([depth, 0, [(choice, dict(indices)) for _ in range(depth)]])
            return self.materialize(Draft(rows), num_classes, name)

        def better(trial, best):
            return best.spec is None or (trial.macs > best.macs if largest else trial.macs < best.macs)

        best = build(picks)
        for i, slot in enumerate(slots):
            for pick in range(1, len(slot.choices)):
                trial = build(picks[:i] + [pick] + picks[i + 1:])
                if trial.spec is not None and better(trial, best):
                    best, picks = trial, picks[:i] + [pick] + picks[i + 1:]
        if best.spec is None:
            raise LwnasError(f"{self.source or self.name}: the space holds no buildable network ({best.reason})")
        return best


# ---- helpers ------------------------------------------------------------------------------
def _show(value) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _is_range(values: tuple) -> bool:
    return all(isinstance(v, int) for v in values) and list(values) == list(range(values[0], values[-1] + 1))


def _by_value(values: tuple) -> bool:
    """Strings and booleans are categories (stored by value); numbers and tuples are ordered (stored by index,
    so TPE models their order)."""
    return all(isinstance(v, (str, bool)) for v in values)


class _Ask:
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


class _Random:
    """Decisions drawn uniformly from a NumPy generator."""

    def __init__(self, rng):
        self.rng = rng

    def depth(self, key: str, values: tuple) -> int:
        return values[int(self.rng.integers(len(values)))]

    def index(self, key: str, values: tuple) -> int:
        return int(self.rng.integers(len(values)))

    def choice(self, key: str, choices: tuple[BlockChoice, ...]) -> BlockChoice:
        return choices[int(self.rng.integers(len(choices)))]


class _Replay:
    """Decisions taken from a draft, in walk order, recording the parameters `_Ask` would have stored."""

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


class _Read:
    """Decisions read from a parameter dict, checked against the space."""

    def __init__(self, params: dict):
        self.params, self.used = params, set()

    def _get(self, key, allowed):
        if key not in self.params:
            raise SpecError(key, "missing")
        value = self.params[key]
        if value not in allowed or isinstance(value, bool) != any(isinstance(a, bool) for a in allowed):
            raise SpecError(key, f"{value!r} is not among {', '.join(map(_show, allowed))}")
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


def _fit_block(choice: BlockChoice, indices: dict[str, int], stride: int, c_in: int, num_classes: int | None):
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


def _shrink(draft: Draft, space: SearchSpace) -> bool:
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


def _match_slots(slots: tuple[Slot, ...], blocks: list[BlockSpec], part: str) -> list[str] | str:
    """Assign consecutive runs of `blocks` to `slots` in order: each block's position ("slot.k"), or the
    furthest failure as a message."""
    reachable: dict[int, list[str]] = {0: []}  # blocks placed so far -> their positions
    furthest = (-1, "")
    for slot in slots:
        nxt: dict[int, list[str]] = {}
        for start in sorted(reachable):
            for depth in slot.depths:
                end = start + depth
                if end > len(blocks) or end in nxt:
                    continue
                problem = _run_problem(slot, blocks[start:end])
                if problem is None:
                    nxt[end] = reachable[start] + [f"{slot.name}.{k}" for k in range(depth)]
                else:
                    at, why = problem
                    if start + at > furthest[0]:
                        furthest = (start + at, f"{part} block {start + at} ({blocks[start + at].type}) "
                                                f"in slot {slot.name}: {why}")
        reachable = nxt
        if not reachable:
            break
    if len(blocks) in reachable:
        return reachable[len(blocks)]
    if furthest[0] >= 0:
        return furthest[1]
    return f"{part}: {len(blocks)} blocks do not fit the slots' depths"


def _run_problem(slot: Slot, run: list[BlockSpec]) -> tuple[int, str] | None:
    for k, block in enumerate(run):
        stride = None
        if "stride" in BLOCKS[block.type].params:
            stride = dict(block.args)["stride"]
            allowed = slot.strides if k == 0 else (1,)
            if stride not in allowed:
                return k, f"stride {stride}, the slot allows {', '.join(map(str, allowed))} here"
        reasons = [c.allows(block, stride) for c in slot.choices]
        if None in reasons:
            continue
        return k, "; ".join(reasons)
    return None


# ---- loading ------------------------------------------------------------------------------
SPACE_KEYS = ("name", "description", "resolution", "in_channels", "stem", "stages", "head")
SLOT_KEYS = ("name", "depth", "stride", "blocks")


def spaces_dir() -> Path:
    """The search spaces' folder (see lwnas.shipped); LWNAS_SPACES overrides it."""
    from .shipped import shipped_dir

    return shipped_dir("search_spaces", "LWNAS_SPACES")


def space_names() -> list[str]:
    return sorted(p.stem for p in spaces_dir().glob("*.yaml"))


def get_space(name_or_path: str | Path) -> SearchSpace:
    """A space by name (`micro`) or by path to a YAML file."""
    path = space_path(name_or_path)
    return _load_space(str(path), path.stat().st_mtime)


def space_path(name_or_path: str | Path) -> Path:
    """The YAML file of a space given by name (`micro`) or path; a clear error if there is none."""
    path = Path(name_or_path)
    if not str(name_or_path).endswith((".yaml", ".yml")):
        path = spaces_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            import difflib

            close = difflib.get_close_matches(str(name_or_path), space_names(), n=3, cutoff=0.4)
            hint = f"did you mean {', '.join(close)}?" if close else f"known spaces: {', '.join(space_names())}"
            raise LwnasError(f"unknown search space {str(name_or_path)!r}; {hint}")
    if not path.is_file():
        raise LwnasError(f"search space file not found: {path}")
    return path


@lru_cache(maxsize=None)
def _load_space(path: str, mtime: float) -> SearchSpace:
    return space_from_text(Path(path).read_text(), path)


def space_from_text(text: str, source: str) -> SearchSpace:
    """A space from its YAML text (a file's, or the copy a supernet checkpoint keeps); `text` stays on it."""
    try:
        space = space_from_dict(parse_yaml(text, source), source)
    except SpecError as err:
        raise SpecError(f"{source}: {err.path}", str(err)[len(err.path) + 2:]) from None
    space.text = text
    return space


def space_from_dict(data: Any, source: str = "") -> SearchSpace:
    if not isinstance(data, dict):
        raise SpecError("", "a search space must be a mapping")
    for key in data:
        if key not in SPACE_KEYS:
            raise SpecError(str(key), f"unknown key; expected one of: {', '.join(SPACE_KEYS)}")
    for key in ("name", "resolution", "stages", "head"):
        if key not in data:
            raise SpecError(key, "missing")
    from .blocks.registry import Param

    name = _coerce(data["name"], Param(str), "name")
    resolution = _coerce(data["resolution"], Param(int, minimum=8), "resolution")
    in_channels = _coerce(data.get("in_channels", 3), Param(int, minimum=1), "in_channels")
    stem = tuple(_slot(s, f"stem[{i}]") for i, s in enumerate(_list(data.get("stem", []), "stem")))
    stages = tuple(_slot(s, f"stages[{i}]") for i, s in enumerate(_list(data["stages"], "stages")))
    names = [s.name for s in stem + stages]
    if len(set(names)) != len(names):
        raise SpecError("stages", f"slot names must be unique, got {names}")
    head = tuple(_choice(c, f"head[{i}]", head=True) for i, c in enumerate(_list(data["head"], "head")))
    return SearchSpace(name, resolution, in_channels, stem, stages, head, str(data.get("description", "")), source)


def _list(value, path):
    if not isinstance(value, list) or not value and path != "stem":
        raise SpecError(path, "must be a non-empty list")
    return value


def _slot(data: Any, path: str) -> Slot:
    if not isinstance(data, dict):
        raise SpecError(path, "a slot must be a mapping with name, depth, stride and blocks")
    for key in data:
        if key not in SLOT_KEYS:
            raise SpecError(f"{path}.{key}", f"unknown key; expected one of: {', '.join(SLOT_KEYS)}")
    if "name" not in data or "blocks" not in data:
        raise SpecError(path, "a slot needs a name and blocks")
    depth = data.get("depth", 1)
    if isinstance(depth, int) and not isinstance(depth, bool):
        depths = (depth,)
    elif isinstance(depth, list) and len(depth) == 2 and all(isinstance(d, int) for d in depth) \
            and 0 <= depth[0] <= depth[1]:
        depths = tuple(range(depth[0], depth[1] + 1))
    else:
        raise SpecError(f"{path}.depth", f"must be an integer or [min, max], got {depth!r}")
    if min(depths) < 0:
        raise SpecError(f"{path}.depth", "must not be negative")
    stride = data.get("stride", 1)
    strides = tuple(stride) if isinstance(stride, list) else (stride,)
    if not strides or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in strides):
        raise SpecError(f"{path}.stride", f"must be a positive integer or a list of them, got {stride!r}")
    choices = tuple(_choice(c, f"{path}.blocks[{i}]") for i, c in enumerate(_list(data["blocks"], f"{path}.blocks")))
    for i, choice in enumerate(choices):
        allowed = getattr(BLOCKS[choice.type].params.get("stride"), "choices", None)
        if allowed and set(strides) - set(allowed):
            raise SpecError(f"{path}.stride", f"{choice.type} takes stride {', '.join(map(str, allowed))}, "
                                              f"the slot asks for {', '.join(map(str, strides))}")
    return Slot(str(data["name"]), depths, strides, choices)


def _choice(data: Any, path: str, head: bool = False) -> BlockChoice:
    if not isinstance(data, dict) or "type" not in data:
        raise SpecError(path, "a block choice must be a mapping with a 'type'")
    data = dict(data)
    block_type = data.pop("type")
    if block_type not in BLOCKS:
        raise SpecError(f"{path}.type", f"unknown block type {block_type!r}; known: {', '.join(sorted(BLOCKS))}")
    if BLOCKS[block_type].head != head:
        raise SpecError(f"{path}.type", f"{block_type!r} {'is not' if head else 'is'} a head block")
    schema = BLOCKS[block_type].params
    domains = []
    for key, value in data.items():
        if key not in schema:
            raise SpecError(f"{path}.{key}", f"unknown parameter of {block_type}; expected one of: "
                                             f"{', '.join(sorted(schema))}")
        if key == "stride":
            raise SpecError(f"{path}.stride", "set the stride on the slot, not on its blocks")
        domains.append((key, _domain(value, schema[key], f"{path}.{key}")))
    for key, param in schema.items():
        if param.default is REQUIRED and key not in data and key != "stride":
            raise SpecError(f"{path}.{key}", f"{block_type} needs a value or a list of choices for {key}")
    return BlockChoice(block_type, tuple(domains))


def _domain(value: Any, param, path: str) -> tuple:
    """A list of choices, a {low, high, step} integer range, or one fixed value."""
    if isinstance(value, dict):
        if set(value) - {"low", "high", "step"} or not {"low", "high"} <= set(value):
            raise SpecError(path, "a range must be {low, high} or {low, high, step}")
        low, high, step = value["low"], value["high"], value.get("step", 1)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, step)) or step < 1 \
                or low > high:
            raise SpecError(path, f"a range needs integers low <= high and step >= 1, got {value!r}")
        values = list(range(low, high + 1, step))
    elif isinstance(value, list) and (not isinstance(param.kind, tuple) or value and isinstance(value[0], list)):
        values = value
    else:
        values = [value]
    if not values:
        raise SpecError(path, "needs at least one value")
    out = tuple(_coerce(v, param, f"{path}[{i}]") for i, v in enumerate(values))
    if len(set(out)) != len(out):
        raise SpecError(path, "lists a value twice")
    return out
