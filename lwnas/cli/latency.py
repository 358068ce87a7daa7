"""Commands of latency: measure a network, build a latency table."""
from __future__ import annotations

import json

from ..errors import LwnasError
from .options import positive_int


def cmd_latency(args):
    from ..deploy.export import deployable
    from ..deploy.latency import measure
    from ..model.build import build
    from ..model.configs import resolve
    from ..train.devices import set_device

    set_device(args.device)
    if args.arch == "table":
        return latency_table(args)
    spec = resolve(args.arch)
    model = deployable(build(spec))
    res = args.resolution or spec.resolution
    runs = [measure(model, res, args.batch_size, args.warmup, args.runs or 50, spec.in_channels, args.engine,
                    args.threads)
            for _ in range(args.repeat)]
    if args.json:
        print(json.dumps({"name": spec.name, "arch_hash": spec.arch_hash, "measurements": [r.to_dict() for r in runs]},
                         indent=2))
        return
    for i, r in enumerate(runs, 1):
        print(f"{spec.name} @ {res}px batch {r.batch_size} on {r.device}, {r.threads} thread(s): "
              f"median {r.median_ms:.3f} ms, "
              f"IQR {r.iqr_ms:.3f} ms ({100 * r.spread:.1f}% of median), {r.runs} runs" +
              (f" [repeat {i}]" if args.repeat > 1 else ""))
    if len(runs) > 1:
        medians = [r.median_ms for r in runs]
        print(f"spread of medians across repeats: {100 * (max(medians) - min(medians)) / min(medians):.1f}%")
    if args.table:
        from ..deploy.predictor import LatencyTable

        table = LatencyTable.load(args.table)
        print(f"{args.table} predicts {table.predict(spec, res):.3f} ms ({table.engine}, {table.threads} thread(s), "
              f"fitted on {len(table.networks)} networks)")


def latency_table(args):
    """`lwnas latency table --space S`: time random networks of S on this machine and fit the table on them."""
    from ..deploy.predictor import build_table, sample_specs
    from ..search.space_files import get_space

    if not args.space:
        raise LwnasError("latency table needs --space (e.g. --space micro)")
    space = get_space(args.space)
    specs = sample_specs(space, args.samples, args.seed, args.classes)
    table = build_table(specs, args.engine, args.threads, args.batch_size, args.runs or 20, args.resolution)
    output = args.output or f"latency-{space.name}-{args.engine}.json"
    table.save(output)
    errors = [abs(table.predict(spec) / min(network["ms"].values()) - 1)
              for spec, network in zip(specs, table.networks)]
    print(f"wrote {output}: fitted on {len(specs)} networks, {len(table.types)} block types (on these networks: mean "
          f"error {100 * sum(errors) / len(errors):.1f}%; held-out accuracy: benchmarks/latency_predictor.py)")


def add_commands(sub):
    """Add latency (and latency table)."""
    p = sub.add_parser("latency", help="measure inference latency (median and IQR), or build a latency table")
    p.add_argument("arch", help="config name or path to a spec YAML; `table` builds a latency table of --space")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--resolution", type=positive_int)
    p.add_argument("--warmup", type=positive_int, default=10)
    p.add_argument("--runs", type=positive_int,
                   help="timed runs (default 50); for a table, per round of 6 (default 20)")
    p.add_argument("--repeat", type=positive_int, default=1, help="repeat the measurement to see its spread")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU math threads (default 1)")
    p.add_argument("--engine", choices=("eager", "inference", "onnxruntime"), default="eager",
                   help="time the dynamic-graph model, an exported model in a Paddle Inference predictor, or an "
                        "ONNX export in ONNX Runtime (the onnx extra)")
    p.add_argument("--table", help="also print the latency this table (from `lwnas latency table`) predicts")
    p.add_argument("--space", help="latency table: the search space whose blocks it times")
    p.add_argument("--samples", type=positive_int, default=60,
                   help="latency table: random networks of the space timed to fit it (default 60)")
    p.add_argument("--classes", type=positive_int, default=1000, help="latency table: classes of the head")
    p.add_argument("--seed", type=int, default=0, help="latency table: picks the random networks")
    p.add_argument("--output", help="latency table: where to write it (default latency-SPACE-ENGINE.json)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_latency)
