"""Commands about networks and spaces: configs, spaces, count, show, score."""
from __future__ import annotations

import json

from ..budget import human
from ..table import print_table
from .options import positive_int


def cmd_configs(args):
    from .. import config_names, count, get_config
    from ..model.published import PUBLISHED

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
    print_table([{**r, "madds": human(r["madds"]), "params": human(r["params"]),
                   "published_top1": r["published_top1"] if r["published_top1"] is not None else "-"} for r in rows],
                 ["name", "family", "resolution", "madds", "params", "published_top1"])


def cmd_spaces(args):
    from ..search.space_files import get_space, space_names

    rows = []
    for name in space_names():
        space = get_space(name)
        rows.append({"name": name, "resolution": space.resolution, "smallest_madds": space.smallest().macs,
                     "largest_madds": space.largest().macs, "description": space.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print_table([{**r, "smallest_madds": human(r["smallest_madds"]), "largest_madds": human(r["largest_madds"])}
                 for r in rows], ["name", "resolution", "smallest_madds", "largest_madds", "description"])
    print("MAdds at each space's resolution with 1000 classes; search one with `lwnas search --space NAME`")


def cmd_count(args):
    from .. import count
    from ..model.configs import resolve

    spec = resolve(args.arch)
    cost = count(spec, args.resolution)
    result = {"name": spec.name, "resolution": args.resolution or spec.resolution, "madds": cost.macs,
              "params": cost.params, "train_params": cost.train_params, "arch_hash": spec.arch_hash}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        extra = f" ({human(cost.train_params)} before re-parameterization)" if cost.train_params != cost.params else ""
        print(f"{spec.name} @ {result['resolution']}: {human(cost.macs)} MAdds, {human(cost.params)} params{extra}")


def cmd_show(args):
    from ..model.configs import resolve
    from ..model.cost import trace

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
    print_table([{"layer": r.path, "type": r.type, "in": "x".join(map(str, r.in_shape)),
                   "out": "x".join(map(str, r.out_shape)), "madds": human(r.macs), "params": human(r.params)}
                  for r in rows], ["layer", "type", "in", "out", "madds", "params"])
    print(f"total: {human(sum(r.macs for r in rows))} MAdds, {human(sum(r.params for r in rows))} params")


def cmd_score(args):
    import numpy as np

    from ..model.configs import resolve
    from ..train import data
    from ..zero_cost import scores

    images = data.load(args.data, "train", args.resolution, seed=args.seed).subset(args.batch_size, args.seed)
    spec = resolve(args.arch).replace(num_classes=len(images.classes))
    view = data.Augmented(images, args.resolution, train=False)
    batch = np.stack([view[i][0] for i in range(len(view))])
    seconds = {}
    result = scores(spec, batch, images.labels, seed=args.seed, seconds=seconds)
    if args.json:
        print(json.dumps({"name": spec.name, "arch_hash": spec.arch_hash, "images": len(batch),
                          "resolution": args.resolution, "scores": result,
                          "seconds": {k: round(v, 3) for k, v in seconds.items()}}, indent=2))
        return
    print(f"{spec.name} ({spec.arch_hash}) on {len(batch)} images of {args.data} at {args.resolution}px:")
    print_table([{"score": name, "value": f"{value:.6g}",
                  "seconds": f"{seconds[name]:.2f}" if name in seconds else "-"} for name, value in result.items()],
                ["score", "value", "seconds"])


def add_commands(sub):
    """Add configs, spaces, count, show and score."""
    p = sub.add_parser("configs", help="list the named paper configs with their computed cost")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_configs)

    p = sub.add_parser("spaces", help="list the search spaces, with the MAdds range of their networks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_spaces)

    for name, func, text in (("count", cmd_count, "multiply-adds and parameters of a config or spec file"),
                             ("show", cmd_show, "the spec and a per-layer cost breakdown")):
        p = sub.add_parser(name, help=text)
        p.add_argument("arch", help="config name (see `lwnas configs`) or path to a spec YAML")
        p.add_argument("--resolution", type=positive_int, help="input resolution (default: the spec's)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)

    p = sub.add_parser("score", help="zero-cost scores of a freshly initialized network on one batch")
    p.add_argument("arch", help="config name or path to a spec YAML")
    p.add_argument("--data", default="synthetic", help="data set the batch comes from (see `lwnas search --help`)")
    p.add_argument("--resolution", type=positive_int, default=32, help="input resolution (default 32, the proxy's)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images in the batch (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_score)
