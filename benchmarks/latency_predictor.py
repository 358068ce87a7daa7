"""How well a latency table predicts networks it has not seen: per space, a table built from random networks
(seed 0), then held-out random networks (another seed) predicted and timed for real. Prints the share predicted
within +-10% and the mean absolute percentage error (anchors: nn-Meter 99% within +-10% on a phone CPU;
PaddleSlim's table predictor under 10% on its 20 models).

Each space's table is kept under benchmarks/results/ and reused; held-out measurements are appended to the
results file one at a time, so a stopped run resumes. Run it on an idle machine: the timings are the data.

    python benchmarks/latency_predictor.py [--engine inference] [--train 40] [--held-out 30]
    python benchmarks/latency_predictor.py --report
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from common import locked, write  # noqa: E402

from lwnas.deploy.export import deployable
from lwnas.deploy.latency import measure  # noqa: E402
from lwnas.deploy.predictor import LatencyTable, build_table, sample_specs  # noqa: E402
from lwnas.model.build import build  # noqa: E402
from lwnas.search.space_files import get_space  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SPACES = ("micro", "mobile")


def report(document: dict):
    print("| space | engine | held-out networks | within +-10% | MAPE | table: blocks / networks |")
    print("|---|---|---|---|---|---|")
    for key, rows in sorted(document.get("held_out", {}).items()):
        space, engine = key.split("/")
        errors = np.array([abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows])
        table = LatencyTable.load(RESULTS / f"latency_table_{space}_{engine}.json")
        print(f"| {space} | {engine} | {len(rows)} | {100 * np.mean(errors <= 0.10):.0f}% | "
              f"{100 * errors.mean():.1f}% | {len(table.blocks)} / {len(table.networks)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--engine", default="inference", choices=("eager", "inference"))
    parser.add_argument("--train", type=int, default=40, help="random networks whose blocks make the table")
    parser.add_argument("--held-out", type=int, default=30, help="random networks predicted, per space")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--output", default=str(RESULTS / "latency_predictor.json"))
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    output = Path(args.output)
    if args.report:
        with locked(output) as document:
            report(document or {})
        return
    for name in SPACES:
        space = get_space(name)
        path = RESULTS / f"latency_table_{name}_{args.engine}.json"
        if path.exists():
            table = LatencyTable.load(path)
        else:
            table = build_table(sample_specs(space, args.train, seed=0), args.engine, runs=args.runs)
            table.save(path)
        key = f"{name}/{args.engine}"
        with locked(output) as document:
            done = {r["arch_hash"] for r in (document or {}).get("held_out", {}).get(key, [])}
        for spec in sample_specs(space, args.held_out, seed=1):
            if spec.arch_hash in done:
                continue
            measured = measure(deployable(build(spec)), spec.resolution, 1, warmup=5, runs=args.runs,
                               engine=args.engine).median_ms
            row = {"arch_hash": spec.arch_hash, "predicted_ms": table.predict(spec), "measured_ms": measured,
                   "coverage": table.coverage(spec)}
            with locked(output) as document:
                document = document or {}
                document.setdefault("held_out", {}).setdefault(key, []).append(row)
                write(output, document)
            print(f"{key} {spec.arch_hash}: predicted {row['predicted_ms']:.2f} ms, measured {measured:.2f} ms",
                  flush=True)


if __name__ == "__main__":
    main()
