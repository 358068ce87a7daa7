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
    python benchmarks/latency_predictor.py --compare   # against scikit-learn's forests (needs scikit-learn)
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
STATISTICS = ("median", "fast")  # the table models `fast` (lwnas.deploy.predictor); the median is kept to compare


def fastest(ms: dict) -> float:
    return min(ms.values())


def fitted_table(engine: str, rows: list[dict], statistic: str) -> LatencyTable:
    table = LatencyTable(engine, 1, 1, "cpu")
    table.networks = [{"name": r["arch_hash"], "features": network_features(ArchSpec.from_dict(r["spec"])),
                       "ms": r[statistic]} for r in rows if r["role"] == "fit"]
    table.fit()
    return table


def errors(table: LatencyTable, rows: list[dict], statistic: str) -> np.ndarray:
    return np.array([abs(table.predict(ArchSpec.from_dict(r["spec"])) / fastest(r[statistic]) - 1) for r in rows])


def report(document: dict):
    print("| space | engine | statistic | fitted on | held-out networks | within +-10% | MAPE | on its own networks | "
          "noise ceiling: two timings within +-10% |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, rows in sorted(document.get("networks", {}).items()):
        space, engine = key.split("/")
        fit = [r for r in rows if r["role"] == "fit"]
        held_out = [r for r in rows if r["role"] == "held_out"]
        for statistic in STATISTICS:
            table = fitted_table(engine, rows, statistic)
            new, own = errors(table, held_out, statistic), errors(table, fit, statistic)
            repeated = np.array([abs(fastest(r["repeat"][statistic]) / fastest(r[statistic]) - 1)
                                 for r in held_out if "repeat" in r])
            ceiling = f"{100 * np.mean(repeated <= TOLERANCE):.0f}% of {len(repeated)}" if len(repeated) else "-"
            print(f"| {space} | {engine} | {statistic} | {len(fit)} | {len(held_out)} | "
                  f"{100 * np.mean(new <= TOLERANCE):.0f}% | {100 * new.mean():.1f}% | "
                  f"{100 * np.mean(own <= TOLERANCE):.0f}% within, MAPE {100 * own.mean():.1f}% | {ceiling} |")


def compare_forests(document: dict, folds: int = 5):
    """Our fit against scikit-learn's random forest and gradient boosting (nn-Meter fits one random forest per
    kernel type), each on per-type and pooled features, by cross-validation on the fitting networks only."""
    try:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
        from sklearn.model_selection import KFold
    except ImportError:
        raise SystemExit("--compare needs scikit-learn (pip install scikit-learn); lwnas itself does not") from None
    models = {"random forest": lambda: RandomForestRegressor(300, min_samples_leaf=2, random_state=0),
              "gradient boosting": lambda: GradientBoostingRegressor(random_state=0)}
    print(f"| space | model | {folds}-fold CV on the fitting networks: within +-10% | MAPE |")
    print("|---|---|---|---|")
    for key, rows in sorted(document.get("networks", {}).items()):
        fit = [r for r in rows if r["role"] == "fit"]
        measured = np.array([fastest(r["fast"]) for r in fit])
        splits = list(KFold(folds).split(fit))
        ours = np.zeros(len(fit))
        for train, test in splits:
            table = fitted_table(key.split("/")[1], [fit[i] for i in train], "fast")
            ours[test] = [table.predict(ArchSpec.from_dict(fit[i]["spec"])) for i in test]
        results = {"ours (ridge, layout by leave-one-out)": ours}
        table = LatencyTable(key.split("/")[1], 1, 1, "cpu", networks=[
            {"features": network_features(ArchSpec.from_dict(r["spec"]))} for r in fit])
        for layout in ("per type", "pooled"):
            x = np.array([table.design_row(network["features"], layout)[1:] for network in table.networks])
            for name, make in models.items():
                predicted = np.full(len(fit), np.inf)
                for backend in fit[0]["fast"]:
                    y = np.log([r["fast"][backend] for r in fit])
                    for train, test in splits:
                        predicted[test] = np.minimum(predicted[test], np.exp(make().fit(x[train], y[train]).predict(
                            x[test])))
                results[f"{name}, {layout}"] = predicted
        for name, predicted in results.items():
            error = np.abs(predicted / measured - 1)
            print(f"| {key} | {name} | {100 * np.mean(error <= TOLERANCE):.0f}% | {100 * error.mean():.1f}% |")


def timings(spec, args) -> dict:
    """Per statistic (the median of all timed runs, and the lowest 10th percentile of a round), backend ->
    milliseconds."""
    backends = time_network(spec, args.engine, 1, 1, args.runs)
    return {statistic: {backend: getattr(latency, f"{statistic}_ms") for backend, latency in backends.items()}
            for statistic in STATISTICS}


def shown(timed: dict) -> str:
    return "; ".join(f"{statistic} " + ", ".join(f"{backend} {ms:.2f} ms" for backend, ms in values.items())
                     for statistic, values in timed.items())


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
    parser.add_argument("--runs", type=int, default=20, help="timed runs per round, network and backend")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--compare", action="store_true", help="our fit against scikit-learn's forests, and stop")
    args = parser.parse_args()
    if args.report or args.compare:
        with locked(OUTPUT) as document:
            (compare_forests if args.compare else report)(document or {})
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
                timed = timings(spec, args)
                record(key, spec.arch_hash, {"role": role, "arch_hash": spec.arch_hash, "spec": spec.to_dict(),
                                             **timed})
                print(f"{key} {role} {spec.arch_hash}: {shown(timed)}", flush=True)
        for spec in held_out:  # the second timing, long after the first: the noise ceiling
            if "repeat" in done.get(spec.arch_hash, {}):
                continue
            timed = timings(spec, args)
            record(key, spec.arch_hash, {"repeat": timed})
            print(f"{key} repeat {spec.arch_hash}: {shown(timed)}", flush=True)


if __name__ == "__main__":
    main()
