"""How well a latency table predicts networks it was not fitted on: per space and engine, a table fitted on random
networks (seed 0) predicts held-out random networks (seed 1) that are timed for real. Prints the share predicted
within +-10% and the mean absolute percentage error (anchors: nn-Meter 99% within +-10% on a phone CPU;
PaddleSlim's table predictor under 10% on its 20 models). Every held-out network is timed a second time after all
the others; the share whose two timings agree within +-10% is the noise ceiling: no predictor can do better
against timings this machine repeats that badly.

Timings (every backend of the engine) are appended to the results file one network at a time, so a stopped run
resumes, and the tables are fitted from them when reporting: a change of the model needs no new timing. Run it on
an idle core (`taskset -c 1`); the timings are the data.

    python benchmarks/latency_predictor.py [--engine inference] [--fit 60] [--held-out 40]
    python benchmarks/latency_predictor.py --report
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from common import RESULTS, locked, write  # noqa: E402

from lwnas.deploy.predictor import LatencyTable, network_features, sample_specs, time_network  # noqa: E402
from lwnas.model.spec import ArchSpec  # noqa: E402
from lwnas.search.space_files import get_space  # noqa: E402

OUTPUT = RESULTS / "latency_predictor.json"
SPACES = ("micro", "mobile")
ROLES = (("fit", 0), ("held_out", 1))  # role, sampling seed
TOLERANCE = 0.10


def fastest(ms: dict) -> float:
    return min(ms.values())


def fitted_table(engine: str, rows: list[dict]) -> LatencyTable:
    table = LatencyTable(engine, 1, 1, "cpu")
    table.networks = [{"name": r["arch_hash"], "features": network_features(ArchSpec.from_dict(r["spec"])),
                       "ms": r["ms"]} for r in rows if r["role"] == "fit"]
    table.fit()
    return table


def report(document: dict):
    print("| space | engine | fitted on | held-out networks | within +-10% | MAPE | on its own networks | "
          "noise ceiling (two timings within +-10%) |")
    print("|---|---|---|---|---|---|---|---|")
    for key, rows in sorted(document.get("networks", {}).items()):
        space, engine = key.split("/")
        table = fitted_table(engine, rows)
        held_out = [r for r in rows if r["role"] == "held_out"]
        errors = np.array([abs(table.predict(ArchSpec.from_dict(r["spec"])) / fastest(r["ms"]) - 1)
                           for r in held_out])
        own = np.array([abs(table.predict(ArchSpec.from_dict(r["spec"])) / fastest(r["ms"]) - 1)
                        for r in rows if r["role"] == "fit"])
        repeated = [abs(fastest(r["repeat_ms"]) / fastest(r["ms"]) - 1) for r in held_out if "repeat_ms" in r]
        ceiling = f"{100 * np.mean(np.array(repeated) <= TOLERANCE):.0f}% of {len(repeated)}" if repeated else "-"
        print(f"| {space} | {engine} | {len(own)} | {len(held_out)} | {100 * np.mean(errors <= TOLERANCE):.0f}% | "
              f"{100 * errors.mean():.1f}% | {100 * np.mean(own <= TOLERANCE):.0f}% within, MAPE "
              f"{100 * own.mean():.1f}% | {ceiling} |")


def record(key: str, arch_hash: str, update: dict):
    with locked(OUTPUT) as document:
        document = document or {}
        rows = document.setdefault("networks", {}).setdefault(key, [])
        row = next((r for r in rows if r["arch_hash"] == arch_hash), None)
        if row is None:
            rows.append(update)
        else:
            row.update(update)
        write(OUTPUT, document)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--engine", default="inference", choices=("eager", "inference"))
    parser.add_argument("--fit", type=int, default=60, help="random networks the table is fitted on, per space")
    parser.add_argument("--held-out", type=int, default=40, help="random networks predicted, per space")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per network and backend")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.report:
        with locked(OUTPUT) as document:
            report(document or {})
        return
    counts = {"fit": args.fit, "held_out": args.held_out}
    for name in SPACES:
        key = f"{name}/{args.engine}"
        with locked(OUTPUT) as document:
            done = {r["arch_hash"]: r for r in (document or {}).get("networks", {}).get(key, [])}
        held_out = []
        for role, seed in ROLES:
            for spec in sample_specs(get_space(name), counts[role], seed):
                if role == "held_out":
                    held_out.append(spec)
                if spec.arch_hash in done:
                    continue
                ms = time_network(spec, args.engine, 1, 1, args.runs)
                record(key, spec.arch_hash, {"role": role, "arch_hash": spec.arch_hash, "spec": spec.to_dict(),
                                             "ms": ms})
                print(f"{key} {role} {spec.arch_hash}: " + ", ".join(f"{b} {v:.2f} ms" for b, v in ms.items()),
                      flush=True)
        for spec in held_out:  # the second timing, long after the first: the noise ceiling
            if "repeat_ms" in done.get(spec.arch_hash, {}):
                continue
            ms = time_network(spec, args.engine, 1, 1, args.runs)
            record(key, spec.arch_hash, {"repeat_ms": ms})
            print(f"{key} repeat {spec.arch_hash}: " + ", ".join(f"{b} {v:.2f} ms" for b, v in ms.items()), flush=True)


if __name__ == "__main__":
    main()
