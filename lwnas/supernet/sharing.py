"""Which block parameters share weights in the supernet (which entries of a bank a block reads: `routing`).

Every position of a space ("s3.2": the third block of slot s3) holds one weight bank per block type and per
value of that type's *separate* parameters. A parameter is one of:

- **shared**: its values share one bank. Widths, expansions, kernels (the centre of a larger kernel, as Once-for-All
  does without its kernel-transform matrices), hidden sizes, MobileOne's branch counts and the squeeze-excite switch
  (its weights exist in the bank and are unused when off) grow what a block reads; group counts (MicroNet's
  `pw1_groups`/`pw2_groups`, the stem's, ShuffleNet v1's), FasterNet's `n_div` and the squeeze `reduction` thin
  it. A grouped convolution reads a dense bank (every filter against every input channel), so convolutions with
  different group counts share exactly the filter/input pairs both have. A zero where a shared value is a count (no
  hidden layer, MicroNet's depthwise-first and single-conv layouts, a Dynamic Shift-Max switched off) changes the
  block's layout, not its size: each zero pattern has its own bank;
- **free**: no weight depends on it (activations, Dynamic Shift-Max's initial coefficients; dropout and drop-path
  too, though a zero one removes its layer, which renames the weights after it: zero has its own bank);
- **separate** (everything else): each value has its own bank: the stride, AsymmNet's `asymmrate`, MobileOne's
  depthwise switch, whether a convolution has batch norm.

Sharing across values keeps the supernet of `micro` at 11 banks per MicroNet position instead of 48-72, each
trained often enough to rank (the alternative was measured: 205M shared weights, most of them rarely updated).

A bank is as large as the largest entries any allowed (block, input width) reads: the element-wise maximum over
the valid configurations that no other valid configuration exceeds in every shared parameter, which the space
lists exhaustively.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from ..errors import LwnasError
from ..model.blocks import BLOCKS
from ..model.spec import BlockSpec

# per block type: parameter -> "max" (shared; larger values read more), "min" (shared; smaller values read more),
# "free", or "switch" (free, but zero removes a layer). Parameters not listed are separate.
SHARING: dict[str, dict[str, str]] = {
    "conv_bn_act": {"out": "max", "kernel": "max", "act": "free"},
    "maxpool": {"kernel": "free"},
    "classifier": {"hidden": "max", "hidden_bias": "max", "bias": "max", "act": "free", "dropout": "switch"},
    "micro_stem": {"groups": "max", "kernel": "max"},
    "micro_block": {"out": "max", "kernel": "max", "expand": "max", "pw1_groups": "min", "pw2_groups": "min",
                    "dy": "max", "reduction": "min", "init_a": "free", "init_b": "free", "act_max": "free"},
    "micronet_head": {"hidden": "max", "dropout": "switch"},
    "shufflenet_v1_unit": {"out": "max", "kernel": "max", "groups": "min"},
    "shufflenet_v2_unit": {"out": "max", "kernel": "max"},
    "fasternet_block": {"n_div": "min", "mlp_ratio": "max", "act": "free", "drop_path": "switch"},
    "inverted_residual": {"out": "max", "kernel": "max", "expand": "max", "se": "max", "act": "free"},
    "asymm_bottleneck": {"out": "max", "kernel": "max", "expand": "max", "se": "max", "act": "free"},
    "mobileone_conv": {"out": "max", "kernel": "max", "branches": "max", "se": "max"},
    "mobileone_block": {"out": "max", "branches": "max", "se": "max"},
}


def rule(block_type: str, param: str, separate: frozenset[str] = frozenset()) -> str:
    """How `param` of `block_type` shares weights; `separate` ("micro_block.expand", ...) overrides shared ones."""
    if f"{block_type}.{param}" in separate:
        return "separate"
    return SHARING.get(block_type, {}).get(param, "separate")


def check_separate(names) -> frozenset[str]:
    """`names` ("block_type.param") as a set, each checked to be a parameter that shares weights by default."""
    for name in names:
        block_type = name.partition(".")[0]
        shared = [f"{block_type}.{p}" for p, how in SHARING.get(block_type, {}).items() if how in ("max", "min")]
        if name not in shared:
            known = f"{block_type}'s are {', '.join(shared)}" if shared else \
                f"block types are {', '.join(sorted(SHARING))}"
            raise LwnasError(f"cannot keep {name!r} separate: it is not a shared block parameter (TYPE.PARAM); "
                             f"{known}")
    return frozenset(names)


def bank_key(block: BlockSpec, separate: frozenset[str] = frozenset()) -> tuple:
    """What selects a block's bank at its position: its type, its separate parameters, and which of its other
    parameters are zero (a zero hidden size or dropout removes a layer, which renames the weights after it)."""
    key = [block.type]
    for name, value in block.args:
        how = rule(block.type, name, separate)
        if how == "separate":
            key.append((name, value))
        elif how != "free" and any(_zeros(value)):
            key.append((name, _zeros(value)))
    return tuple(key)


def _zeros(value) -> tuple[bool, ...]:
    """Which items of a parameter value are absent: 0, 0.0 or "none" (a bool is a switch, never absent)."""
    items = value if isinstance(value, tuple) else (value,)
    return tuple(type(v) is not bool and v in (0, "none") for v in items)


@dataclass(frozen=True)
class Candidate:
    """One valid configuration a bank must hold: its block and input width."""

    block: BlockSpec
    c_in: int


def maximal(candidates: list[Candidate], separate: frozenset[str] = frozenset()) -> list[Candidate]:
    """Per layout, the candidates no other candidate exceeds (or equals) in every shared parameter: only these can
    set a bank's shapes and weight names, since what a block reads grows with each shared parameter in its
    direction. The layout is the input width and which widths equal it: input widths are not ordered that way (a
    stride-2 ShuffleNet v2 unit's branch narrows as its input widens), and a width equal to the input adds or drops
    a layer (MobileOne's identity branch, MobileNetV3's expansion)."""

    def layout(c: Candidate) -> tuple:
        return (c.c_in,) + tuple(type(v) is int and v == c.c_in for _, v in c.block.args)

    def vector(c: Candidate) -> tuple:
        values = []
        for name, value in c.block.args:
            how = rule(c.block.type, name, separate)
            if how in ("max", "min"):
                sign = 1.0 if how == "max" else -1.0
                values.extend(sign * float(v) for v in (value if isinstance(value, tuple) else (value,)))
        return tuple(values)

    kept: dict[tuple, list[tuple[tuple, Candidate]]] = {}
    for v, c in sorted(((vector(c), c) for c in candidates), key=lambda item: item[0], reverse=True):
        rows = kept.setdefault(layout(c), [])
        if not any(all(a >= b for a, b in zip(k, v)) for k, _ in rows):
            rows.append((v, c))
    return [c for rows in kept.values() for _, c in rows]


@functools.lru_cache(maxsize=None)
def candidates(choice, stride: int, widths: frozenset[int], num_classes: int | None,
               separate: frozenset[str] = frozenset()) -> dict[tuple, list[Candidate]]:
    """Every valid (block, input width) of a space's block choice at one position, grouped by bank key (cached:
    the positions after a slot's first share them; treat the result as read-only)."""
    check = BLOCKS[choice.type].check
    names = [name for name, _ in choice.domains]
    groups: dict[tuple, list[Candidate]] = {}
    defaults = {n: p.default for n, p in BLOCKS[choice.type].params.items()}
    for values in itertools.product(*(v for _, v in choice.domains)):
        args = {**defaults, **dict(zip(names, values))}
        if "stride" in args:
            args["stride"] = stride
        if any(rule(choice.type, n) in ("free", "switch") and _first_alike(choice.type, n, v, dict(choice.domains)[n])
               != v for n, v in zip(names, values)):
            continue  # free parameters do not change the weights: one value (per zero pattern) stands for all
        block = BlockSpec(choice.type, tuple(sorted(args.items())))
        checked = dict(args, num_classes=num_classes) if num_classes is not None else args
        for c_in in sorted(widths):
            if check is None or check(c_in, checked) is None:
                groups.setdefault(bank_key(block, separate), []).append(Candidate(block, c_in))
    return groups


def _first_alike(block_type: str, name: str, value, domain):
    if rule(block_type, name) == "free":
        return domain[0]
    return next(v for v in domain if _zeros(v) == _zeros(value))
