"""The `lwnas` command line. User errors print one line and exit with code 2."""
from __future__ import annotations

import argparse
import json
import sys
from .errors import LwnasError


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def _print_table(rows: list[dict], columns: list[str]):
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns))


def cmd_configs(args):
    from . import count, get_config, config_names
    from .published import PUBLISHED

    rows = []
    for name in config_names():
        spec = get_config(name)
        cost = count(spec)
        pub = PUBLISHED.get(name)
        rows.append({"name": name, "family": spec.family, "resolution": spec.resolution, "madds": cost.macs,
                     "params": cost.params, "train_params": cost.train_params,
                     "published_madds": pub.madds if pub else None, "published_params": pub.params if pub else None,
                     "published_top1": pub.top1 if pub else None, "arch_hash": spec.arch_hash})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    _print_table([{**r, "madds": _human(r["madds"]), "params": _human(r["params"]),
                   "published_top1": r["published_top1"] if r["published_top1"] is not None else "-"} for r in rows],
                 ["name", "family", "resolution", "madds", "params", "published_top1"])


def cmd_count(args):
    from . import count
    from .configs import resolve

    spec = resolve(args.arch)
    cost = count(spec, args.resolution)
    result = {"name": spec.name, "resolution": args.resolution or spec.resolution, "madds": cost.macs,
              "params": cost.params, "train_params": cost.train_params, "arch_hash": spec.arch_hash}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        extra = f" ({_human(cost.train_params)} before re-parameterization)" if cost.train_params != cost.params else ""
        print(f"{spec.name} @ {result['resolution']}: {_human(cost.macs)} MAdds, {_human(cost.params)} params{extra}")


def cmd_show(args):
    from .configs import resolve
    from .cost import trace

    spec = resolve(args.arch)
    rows = trace(spec, args.resolution)
    if args.json:
        print(json.dumps({"spec": spec.to_dict(), "arch_hash": spec.arch_hash,
                          "layers": [{"path": r.path, "type": r.type, "in": r.in_shape, "out": r.out_shape,
                                      "madds": r.macs, "params": r.params, "train_params": r.train_params}
                                     for r in rows]}, indent=2))
        return
    print(spec.to_yaml())
    print(f"# arch hash {spec.arch_hash}")
    _print_table([{"layer": r.path, "type": r.type, "in": "x".join(map(str, r.in_shape)),
                   "out": "x".join(map(str, r.out_shape)), "madds": _human(r.macs), "params": _human(r.params)}
                  for r in rows], ["layer", "type", "in", "out", "madds", "params"])
    print(f"total: {_human(sum(r.macs for r in rows))} MAdds, {_human(sum(r.params for r in rows))} params")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwnas", description="Hardware-aware NAS for lightweight classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("configs", help="list the named paper configs with their computed cost")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_configs)

    for name, func, text in (("count", cmd_count, "multiply-adds and parameters of a config or spec file"),
                             ("show", cmd_show, "the spec and a per-layer cost breakdown")):
        p = sub.add_parser(name, help=text)
        p.add_argument("arch", help="config name (see `lwnas configs`) or path to a spec YAML")
        p.add_argument("--resolution", type=_positive_int, help="input resolution (default: the spec's)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        args.func(args)
    except LwnasError as err:
        print(f"lwnas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lwnas: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
