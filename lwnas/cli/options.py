"""What several commands share: the parser class, argument types and common option groups."""
from __future__ import annotations

import argparse
import re


class Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit code 2, like every other input error, with the nearest option named for
    a mistyped one. No abbreviated options: a prefix such as --work would otherwise reach --workers (and the
    workers, which would start workers). A value such as -5M is a value (a budget to refuse with its own
    message), not an unknown option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})
        self._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?([eE][+-]?\d+)?[kKmMgG]?$")

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}{self._suggestion(message)} (see {self.prog} --help)\n")

    argv: list[str] = []  # the command line being parsed (set by `main`)

    def _suggestion(self, message: str) -> str:
        """'; did you mean --trials?' for an unrecognized option close to one of this command's (a required
        option reported missing may be one the user mistyped)."""
        import difflib

        known = [option for action in self._actions for option in action.option_strings if option.startswith("--")]
        typed = [token.split("=")[0] for token in self.argv if token.startswith("--")]
        for option in typed:
            close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
            if option not in known and close:
                lead = "" if message.startswith("unrecognized") else f"; {option} is not an option"
                return f"{lead}; did you mean {close[0]}?"
        return ""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def latency_engine(text: str) -> str:
    from pathlib import Path

    if text in ("auto", "eager", "inference", "onnxruntime") or (text.startswith("predict:")
                                                                 and Path(text[8:]).is_file()):
        return text
    if text.startswith("predict:"):
        raise argparse.ArgumentTypeError(f"no latency table at {text[8:]!r} (build one with `lwnas latency table`)")
    raise argparse.ArgumentTypeError(f"expected auto, eager, inference, onnxruntime or predict:TABLE, got {text!r}")


def add_amp_options(p):
    from ..train.settings import AMP_DTYPES

    p.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="automatic mixed precision (default: on with --device gpu, off on cpu)")
    p.add_argument("--amp-dtype", choices=AMP_DTYPES, help="half-precision type under --amp (default float16)")


def add_training_options(p, epochs: int):
    p.add_argument("--config", help="YAML file with a 'train:' section of training settings")
    p.add_argument("--epochs", type=positive_int, help=f"default {epochs}")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--resolution", type=positive_int,
                   help="training resolution (default 32 for synthetic/CIFAR, else the spec's)")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=("sgd", "adamw"))
    p.add_argument("--loader-workers", type=int, help="DataLoader worker processes (default 0)")
    add_amp_options(p)
    p.add_argument("--seed", type=int)
    p.add_argument("--train-subset", type=positive_int)
    p.add_argument("--val-subset", type=positive_int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--skip-bad-images", action="store_true")
    p.add_argument("--from-disk", action=argparse.BooleanOptionalAction, default=None,
                   help="read and decode folder/list images per batch in the loader workers instead of decoding the "
                        "set into memory first (default: only above 2 GiB of decoded pixels)")


def with_amp_default(settings: dict, device: str) -> dict:
    """AMP on by default on GPUs (float16), off on CPU; a flag or the settings file decides otherwise."""
    return {"amp": device.startswith("gpu"), **settings}
