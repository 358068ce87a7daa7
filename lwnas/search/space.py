"""Search spaces: which networks a search may build (read from `search_spaces/*.yaml` by space_files).

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
from dataclasses import dataclass

from ..errors import LwnasError, SpecError
from ..model.blocks import BLOCKS
from ..model.cost import Tally
from ..model.spec import ArchSpec, BlockSpec, StageSpec
from .drafts import AskTrial, Draft, RandomChoices, ReadParams, ReplayDraft, fit_block, show_value, shrink_draft


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
                return f"{self.type}.{name}={show_value(value)} is not among {', '.join(map(show_value, allowed))}"
        return None


@dataclass(frozen=True)
class Slot:
    name: str
    depths: tuple[int, ...]
    strides: tuple[int, ...]
    choices: tuple[BlockChoice, ...]


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
        return self._walk(AskTrial(trial))

    def params_of(self, draft: Draft) -> dict:
        """The Optuna parameters that `suggest` would have recorded for `draft`: queued as a trial, they
        build exactly the network the draft describes."""
        replay = ReplayDraft(draft)
        self._walk(replay)
        return replay.params

    def spec_from_params(self, params: dict, num_classes: int, name: str = "sampled") -> ArchSpec:
        """The network a trial's parameters describe, exactly. The decoding includes the channel repair: a block
        whose drafted groups or widths do not fit its input takes the nearest setting that does, decided by the
        parameters alone, so several parameter sets can name one network. SpecError for an unknown, missing or
        out-of-range parameter, or a network that cannot be built."""
        reader = ReadParams(params)
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
            if not shrink_draft(draft, self):
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
            draft = self._walk(RandomChoices(rng))
            sample = self.materialize(draft, num_classes, name)
            while shrink and budget is not None and sample.spec is not None and sample.macs > budget and \
                    shrink_draft(draft, self):
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
                block, moved, indices = fit_block(choice, indices, stride, tally.c,
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
