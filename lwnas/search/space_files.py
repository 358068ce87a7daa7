"""Reading search spaces: the YAML files of `search_spaces/` (shipped inside the package), or any file given by
path, checked field by field into a SearchSpace."""
from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import LwnasError, SpecError
from ..model.blocks import BLOCKS
from ..model.blocks.registry import REQUIRED
from ..model.shipped import shipped_dir
from ..model.spec import _coerce, parse_yaml
from .space import BlockChoice, SearchSpace, Slot

SPACE_KEYS = ("name", "description", "resolution", "in_channels", "stem", "stages", "head")
SLOT_KEYS = ("name", "depth", "stride", "blocks")


def spaces_dir() -> Path:
    """The search spaces' folder (see lwnas.model.shipped); LWNAS_SPACES overrides it."""
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
    from ..model.blocks.registry import Param

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
