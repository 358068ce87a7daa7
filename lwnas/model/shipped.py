"""Where the data lwnas ships lives: the named configs and the search spaces (YAML files)."""
from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def shipped_dir(name: str, variable: str) -> Path:
    """The folder `name` (configs or search_spaces): $`variable` if set; else the copy inside the installed package
    (a wheel maps the repository's top-level folder into lwnas/_data/); else the top-level folder beside the
    package (a checkout or an editable install)."""
    if os.environ.get(variable):
        return Path(os.environ[variable])
    packaged = Path(str(files("lwnas"))) / "_data" / name
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / name
