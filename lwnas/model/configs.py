"""Named paper configs: one YAML spec per published network, from the repository's configs/ folder (shipped
inside the package by a wheel)."""
from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

from ..errors import LwnasError
from .cost import Cost, count
from .shipped import shipped_dir
from .spec import ArchSpec, load_spec


def configs_dir() -> Path:
    """The named configs' folder (see lwnas.model.shipped); LWNAS_CONFIGS overrides it."""
    return shipped_dir("configs", "LWNAS_CONFIGS")


def config_names() -> list[str]:
    folder = configs_dir()
    if not folder.is_dir():
        raise LwnasError(f"configs folder not found at {folder}; set LWNAS_CONFIGS to a folder of config YAMLs")
    return sorted(p.stem for p in folder.glob("*.yaml"))


@lru_cache(maxsize=None)
def _load(path: str, mtime: float) -> ArchSpec:
    return load_spec(path)


def get_config(name: str) -> ArchSpec:
    """The named config's spec; an unknown name fails with the closest names suggested."""
    path = configs_dir() / f"{name}.yaml"
    if not path.is_file():
        names = config_names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else "run `lwnas configs` to list them"
        raise LwnasError(f"unknown config {name!r}; {hint}")
    return _load(str(path), path.stat().st_mtime)


def count_config(spec_or_name, resolution: int | None = None) -> Cost:
    """Multiply-adds and parameters of a spec or named config at its resolution or the one given (`lwnas.count`)."""
    return count(resolve(spec_or_name), resolution)


def resolve(spec_or_name) -> ArchSpec:
    """An ArchSpec as is, a path to a YAML spec, or the name of a config."""
    if isinstance(spec_or_name, ArchSpec):
        return spec_or_name
    if isinstance(spec_or_name, Path) or str(spec_or_name).endswith((".yaml", ".yml")):
        return load_spec(spec_or_name)
    if isinstance(spec_or_name, str):
        return get_config(spec_or_name)
    raise TypeError(f"expected an ArchSpec, a YAML path or a config name, got {type(spec_or_name).__name__}")
