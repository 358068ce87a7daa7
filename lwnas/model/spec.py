"""The architecture spec: one frozen, hashable, YAML-serializable description of a network.

A network is a stem (blocks), an ordered list of stages (each a list of blocks) and a head block.
Every block is a registered type plus its parameters, with defaults filled in so that two specs
describing the same network compare (and hash) equal.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import SpecError
from .blocks import BLOCKS
from .blocks.registry import REQUIRED, Param

TOP_LEVEL_KEYS = ("name", "family", "resolution", "num_classes", "in_channels", "stem", "stages", "head")


@dataclass(frozen=True)
class BlockSpec:
    type: str
    args: tuple[tuple[str, Any], ...]

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.args)

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "BlockSpec":
        if not isinstance(data, dict):
            raise SpecError(path, f"a block must be a mapping with a 'type', got {type(data).__name__}")
        data = dict(data)
        block_type = data.pop("type", None)
        if block_type is None:
            raise SpecError(f"{path}.type", "missing block type")
        if block_type not in BLOCKS:
            known = ", ".join(sorted(BLOCKS))
            raise SpecError(f"{path}.type", f"unknown block type {block_type!r}; known types: {known}")
        schema = BLOCKS[block_type].params
        for key in data:
            if key not in schema:
                raise SpecError(f"{path}.{key}", f"unknown parameter for {block_type}; "
                                                  f"expected one of: {', '.join(sorted(schema))}")
        args = []
        for key, param in sorted(schema.items()):
            if key in data:
                value = _coerce(data[key], param, f"{path}.{key}")
            elif param.default is REQUIRED:
                raise SpecError(f"{path}.{key}", f"missing required parameter of {block_type}")
            else:
                value = param.default
            args.append((key, value))
        return cls(block_type, tuple(args))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key, value in self.args:
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class StageSpec:
    name: str
    blocks: tuple[BlockSpec, ...]


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str
    resolution: int
    num_classes: int
    in_channels: int
    stem: tuple[BlockSpec, ...]
    stages: tuple[StageSpec, ...]
    head: BlockSpec

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> "ArchSpec":
        prefix = f"{source}: " if source else ""
        try:
            spec = cls._from_dict(data)
            from .cost import trace  # channel flow is checked by walking the network once

            trace(spec)
        except SpecError as err:
            raise SpecError(f"{prefix}{err.path}", str(err)[len(err.path) + 2:] if err.path else str(err))
        return spec

    @classmethod
    def _from_dict(cls, data: Any) -> "ArchSpec":
        if not isinstance(data, dict):
            raise SpecError("", f"a spec must be a mapping, got {type(data).__name__}")
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise SpecError(str(key), f"unknown key; expected one of: {', '.join(TOP_LEVEL_KEYS)}")
        for key in ("name", "resolution", "stem", "stages", "head"):
            if key not in data:
                raise SpecError(key, "missing")
        name = _coerce(data["name"], Param(str), "name")
        family = _coerce(data.get("family", "custom"), Param(str), "family")
        resolution = _coerce(data["resolution"], Param(int, minimum=8), "resolution")
        num_classes = _coerce(data.get("num_classes", 1000), Param(int, minimum=1), "num_classes")
        in_channels = _coerce(data.get("in_channels", 3), Param(int, minimum=1), "in_channels")
        stem = tuple(BlockSpec.from_dict(b, f"stem[{i}]") for i, b in enumerate(_as_list(data["stem"], "stem")))
        stages = []
        for i, stage in enumerate(_as_list(data["stages"], "stages")):
            path = f"stages[{i}]"
            if not isinstance(stage, dict) or set(stage) - {"name", "blocks"} or "blocks" not in stage:
                raise SpecError(path, "a stage must be a mapping with 'blocks' (and optionally 'name')")
            blocks = tuple(BlockSpec.from_dict(b, f"{path}.blocks[{j}]")
                           for j, b in enumerate(_as_list(stage["blocks"], f"{path}.blocks")))
            if not blocks:
                raise SpecError(f"{path}.blocks", "a stage needs at least one block")
            stages.append(StageSpec(_coerce(stage.get("name", f"stage{i + 1}"), Param(str), f"{path}.name"), blocks))
        head = BlockSpec.from_dict(data["head"], "head")
        if not BLOCKS[head.type].head:
            heads = ", ".join(sorted(n for n, b in BLOCKS.items() if b.head))
            raise SpecError("head.type", f"{head.type!r} is not a head; expected one of: {heads}")
        for path, block in _body_blocks(stem, stages):
            if BLOCKS[block.type].head:
                raise SpecError(f"{path}.type", f"head block {block.type!r} can only be used as 'head'")
        return cls(name, family, resolution, num_classes, in_channels, stem, tuple(stages), head)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "stem": [b.to_dict() for b in self.stem],
            "stages": [{"name": s.name, "blocks": [b.to_dict() for b in s.blocks]} for s in self.stages],
            "head": self.head.to_dict(),
        }

    # ---- identity -----------------------------------------------------------------------
    @property
    def arch_hash(self) -> str:
        """Stable short id of the network's structure; the name and family do not enter it."""
        body = self.to_dict()
        del body["name"], body["family"]
        for stage in body["stages"]:
            del stage["name"]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def replace(self, **changes) -> "ArchSpec":
        data = self.to_dict()
        data.update(changes)
        return ArchSpec.from_dict(data)

    def blocks(self) -> Iterator[tuple[str, BlockSpec]]:
        """(field path, block) for every block in order, head last."""
        yield from _body_blocks(self.stem, self.stages)
        yield "head", self.head

    # ---- YAML ---------------------------------------------------------------------------
    def to_yaml(self) -> str:
        data = self.to_dict()
        data["stem"] = [_Flow(b) for b in data["stem"]]
        for stage in data["stages"]:
            stage["blocks"] = [_Flow(b) for b in stage["blocks"]]
        data["head"] = _Flow(data["head"])
        return yaml.dump(data, Dumper=_SpecDumper, sort_keys=False, width=200)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> "ArchSpec":
        return cls.from_dict(parse_yaml(text, source), source)


def parse_yaml(text: str, source: str) -> Any:
    """yaml.safe_load (no tags that build Python objects); a syntax error names `source`, line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(source, f"malformed YAML{where}: {problem}") from None


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise SpecError(str(path), f"cannot read {what}: {err.strerror}") from None


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file that must hold a mapping; errors name the file and line."""
    path = Path(path)
    data = parse_yaml(_read_text(path, "file"), str(path))
    if not isinstance(data, dict):
        raise SpecError(str(path), "expected a YAML mapping")
    return data


def load_spec(path: str | Path) -> ArchSpec:
    path = Path(path)
    return ArchSpec.from_yaml(_read_text(path, "spec file"), str(path))


def _body_blocks(stem, stages) -> Iterator[tuple[str, BlockSpec]]:
    for i, block in enumerate(stem):
        yield f"stem[{i}]", block
    for i, stage in enumerate(stages):
        for j, block in enumerate(stage.blocks):
            yield f"stages[{i}].blocks[{j}]", block


def _as_list(value: Any, path: str) -> list:
    if not isinstance(value, list):
        raise SpecError(path, f"must be a list, got {type(value).__name__}")
    return value


def _coerce(value: Any, param: Param, path: str) -> Any:
    kind = param.kind
    if isinstance(kind, tuple):
        item_kind = kind[0]
        if not isinstance(value, (list, tuple)):
            raise SpecError(path, f"must be a list of {item_kind.__name__}, got {value!r}")
        if param.length is not None and len(value) != param.length:
            raise SpecError(path, f"must have {param.length} items, got {len(value)}")
        item = Param(item_kind, minimum=param.minimum)
        return tuple(_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if kind is bool:
        if not isinstance(value, bool):
            raise SpecError(path, f"must be true or false, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(path, f"must be an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(path, f"must be a number, got {value!r}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise SpecError(path, f"must be a string, got {value!r}")
    if param.choices is not None and value not in param.choices:
        raise SpecError(path, f"must be one of {', '.join(map(str, param.choices))}, got {value!r}")
    if kind in (int, float) and param.minimum is not None and value < param.minimum:
        raise SpecError(path, f"must be >= {param.minimum}, got {value!r}")
    return value


class _Flow(dict):
    """A mapping written on one line in YAML (blocks read best as table rows)."""


class _SpecDumper(yaml.SafeDumper):
    pass


_SpecDumper.add_representer(
    _Flow, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True))
