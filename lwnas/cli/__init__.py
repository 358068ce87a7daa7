"""The `lwnas` command line: argument parsing and dispatch, one module per command group. User errors print one
line and exit with code 2."""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import LwnasError
from . import latency, models, search, train
from .options import Parser


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lwnas", description="Hardware-aware NAS for lightweight classifiers.")
    parser.add_argument("--version", action="version", version=f"lwnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    models.add_commands(sub)
    search.add_commands(sub)
    latency.add_commands(sub)
    actions = train.add_commands(sub)
    for command in [*sub.choices.values(), *actions.choices.values()]:
        command.add_argument("--verbose", action="store_true",
                             help="also show third-party output (paddle2onnx, Polygraphy, Optuna); Paddle's C++ "
                                  "log needs GLOG_minloglevel=0")
    return parser


def _resume_hint(command: str, argv: list[str]) -> str:
    """How to go on after Ctrl-C: a search resumes with the same command, a training run with --resume."""
    import os
    import shlex

    where = f"cd {shlex.quote(os.getcwd())} && "  # the command's relative paths are relative to here
    if command == "search":
        return f"; the study keeps every finished trial, and this resumes it: {where}lwnas {shlex.join(argv)}"
    if command == "train":
        again = argv if "--resume" in argv else [*argv, "--resume"]
        return f"; the last finished epoch is kept, and this resumes it: {where}lwnas {shlex.join(again)}"
    return ""


def _command_parser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The innermost subcommand's parser of parsed `args` (`lwnas supernet train` -> its parser)."""
    while True:
        commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, commands[0].dest, None) if commands else None
        if chosen not in (commands[0].choices if commands else {}):
            return parser
        parser = commands[0].choices[chosen]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = make_parser()
    Parser.argv = argv
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the (sub)command that was given, which knows the options a typo was meant for
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    from ..quiet import configure

    configure(args.verbose)
    args.argv = argv  # --workers hands its own command line to the workers
    if getattr(args, "action", None) == "show" and not args.study:
        print("lwnas: error: runs show needs a study name (see `lwnas runs`)", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except LwnasError as err:
        print(f"lwnas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lwnas: interrupted{_resume_hint(args.command, argv)}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left early (`lwnas runs --json | head`): stop quietly, as `cat` would
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's final flush cannot fail
        return 141  # 128 + SIGPIPE, the shell's code for a writer whose pipe closed
    return 0


if __name__ == "__main__":
    sys.exit(main())
