"""Parse human-written counts such as `12M`, `12e6`, `0.3G` or `300M` (multiply-adds, parameters) and durations
such as `90m`, `2h` or `1h30m`."""
from __future__ import annotations

import math
import re

from .errors import LwnasError

_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}
# No space between number and suffix: '12 M' is refused rather than guessed.
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)([kKmMgG]?)\s*$")


def parse_count(text: str, what: str = "budget") -> int:
    """`12M` -> 12_000_000. Suffixes K, M, G (case-insensitive) or scientific notation; must be positive."""
    match = _PATTERN.match(str(text))
    if not match:
        raise LwnasError(f"invalid {what} {text!r}: expected a positive number with an optional K/M/G suffix "
                         f"and no space between them, e.g. 12M, 12e6, 0.3G")
    value = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    if not math.isfinite(value) or value < 1:
        raise LwnasError(f"invalid {what} {text!r}: must be at least 1 multiply-add, e.g. 12M")
    return int(round(value))


def human(n: float) -> str:
    """12_740_000 -> '12.74M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration(text: str, what: str = "--time-limit") -> float:
    """`90m` -> 5400.0 seconds; hours (h), minutes (m) and seconds (s, or a bare number) may be combined: 1h30m."""
    match = _DURATION.match(str(text))
    if not match or not any(match.groups()):
        raise LwnasError(f"invalid {what} {text!r}: expected a duration such as 45m, 2h, 1h30m or 600 (seconds)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise LwnasError(f"invalid {what} {text!r}: must be longer than zero, e.g. 2h")
    return total
