"""Does the search learn? TPE against random search, and the two-objective samplers against random, on real
images (Fashion-MNIST) at 12M MAdds in `micro`, each over several seeds with the same number of trained trials.

Every (objective, sampler, seed) is one study in its own SQLite file under runs/search_quality/; when a study
reaches its trials, its trained trials (in the order they were trained) are appended to the results file. A
stopped run resumes: finished studies are skipped and an unfinished one continues where it stopped.

    python benchmarks/search_quality.py [--shard K/N] [--seeds 3] [--trials 20]   # run (two shards: two cores)
    python benchmarks/search_quality.py --remeasure    # once all ran, on an idle machine: latencies timed again
    python benchmarks/search_quality.py --report                                  # the README table

Reported: mean +- sd over seeds of the best proxy top-1 after 5, 10 and 20 trained trials (one objective) or
the hypervolume of (top-1, latency) after them (two objectives), the MicroNet-M2 baseline under the same proxy,
MAdds/budget of the trained and the best networks, trials stored per trained one, and the wall time.
"""
from __future__ import annotations

import argparse
import contextlib
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from common import FASHION as DATA, PROXY, RESULTS, RUNS as ALL_RUNS, locked, write  # noqa: E402

import lwnas  # noqa: E402
from lwnas.search.settings import ENCODING, SearchSettings  # noqa: E402
from lwnas.search.storage import trained_trials  # noqa: E402
from lwnas.search.study import Search  # noqa: E402
from lwnas.train.devices import seed_everything
from lwnas.train.loop import train  # noqa: E402
from lwnas.train.splits import load_data  # noqa: E402

OUTPUT = RESULTS / "search_quality_fashion.json"
RUNS = ALL_RUNS / "search_quality"
BUDGET = 12_000_000
SAMPLERS = {"accuracy": ("tpe", "random", "tpe+prescreen8"), "accuracy-latency": ("tpe", "nsga2", "random")}
# Random search draws the same networks whatever the objective (same seed, same proxy): its two-objective rows
# are the one-objective random studies' networks, with their latency re-measured (--remeasure) like the others'.
NOT_RUN = {("accuracy-latency", "random")}
PRESCREEN = "+prescreen"  # tpe+prescreen8: TPE training the best of every 8 candidates by parameter count
CHECKPOINTS = (5, 10, 20)


def jobs(seeds: int) -> list[tuple[str, str, int]]:
    """Ordered so that a partial file already compares samplers: seed by seed, every sampler of both
    objectives; the prescreening runs (added later) last."""
    every = [(objective, sampler, seed) for seed in range(seeds) for objective in SAMPLERS
             for sampler in SAMPLERS[objective] if (objective, sampler) not in NOT_RUN]
    return [job for job in every if PRESCREEN not in job[1]] + [job for job in every if PRESCREEN in job[1]]


def study_name(objective: str, sampler: str, seed: int) -> str:
    """The study's name and file stem ('+' is not allowed in study names)."""
    return f"{objective}-{sampler.replace('+', '_')}-{seed}"


def run_study(objective: str, name: str, seed: int, trials: int, data: str) -> dict:
    sampler, _, prescreen = name.partition(PRESCREEN)
    stem = study_name(objective, name, seed)
    settings = SearchSettings(space="micro", budget=BUDGET, trials=trials, until_total=trials, data=data,
                              objective=objective, sampler=sampler, seed=seed, runs_dir=str(RUNS),
                              prescreen=int(prescreen or 1), study=stem, storage=f"sqlite:///{RUNS}/{stem}.db",
                              latency_runs=10, latency_engine="eager", proxy=PROXY)
    search = Search(settings)
    start = time.perf_counter()
    study = search.run()
    return {"objective": objective, "sampler": name, "seed": seed,
            "wall_seconds": round(time.perf_counter() - start),
            "trials_stored": len(study.get_trials(deepcopy=False)), "rows_stored": rows_stored(objective, name, seed),
            "trained": trained_rows(study)}


def trained_rows(study) -> list[dict]:
    """A study's trained networks in the order they were trained: what the results file keeps of it."""
    return [{k: t.user_attrs[k] for k in ("arch_hash", "top1", "latency_ms", "madds", "train_seconds")}
            for t in sorted(trained_trials(study), key=lambda t: t.number)]


def rows_stored(objective: str, name: str, seed: int) -> int | None:
    """Rows in every table of a study's SQLite file (each study has its own): what the study costs in storage."""
    import sqlite3

    path = RUNS / f"{study_name(objective, name, seed)}.db"
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sum(db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables)


def run_baseline(data: str) -> dict:
    """MicroNet-M2 (12.74M MAdds, the paper's 12M point) trained with the same proxy and data."""
    train_set, val_set = load_data(data, PROXY)
    spec = lwnas.get_config("micronet_m2").replace(num_classes=len(train_set.classes))
    seed_everything(PROXY.seed)
    history = train(lwnas.build(spec), train_set, val_set, PROXY)
    return {"name": "micronet_m2", "madds": lwnas.count(spec).macs, "top1": history[-1].top1}


def remeasure(output: Path):
    """Every trained network's eager latency measured again, one after another in this one process (run it
    on an idle machine): latencies timed during the studies vary with the load the other shard put on the CPU,
    and hypervolumes compared across samplers must share one measurement."""
    import optuna

    from lwnas.deploy.export import deployable
    from lwnas.deploy.latency import measure

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with locked(output) as document:
        studies, done = document["studies"], document.get("latency_remeasured", {})
    for s in studies:
        name = study_name(s["objective"], s["sampler"], s["seed"])
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{RUNS}/{name}.db")
        for trial in trained_trials(study):
            arch_hash = trial.user_attrs["arch_hash"]
            if arch_hash in done:
                continue
            spec = lwnas.ArchSpec.from_yaml(trial.user_attrs["spec"])
            model = deployable(lwnas.build(spec))
            done[arch_hash] = measure(model, spec.resolution, 1, runs=30).median_ms
            print(f"{arch_hash} {done[arch_hash]:.2f} ms", flush=True)
        with locked(output) as document:
            document.setdefault("latency_remeasured", {}).update(done)
            write(output, document)


def two_objective_studies(document: dict) -> list[dict]:
    """The two-objective studies, with random search's taken from the one-objective random studies (the same
    networks), and every latency replaced by its re-measurement where there is one."""
    again = document.get("latency_remeasured", {})
    studies = [s for s in document.get("studies", []) if s["objective"] == "accuracy-latency"]
    studies += [{**s, "objective": "accuracy-latency"} for s in document.get("studies", [])
                if s["objective"] == "accuracy" and s["sampler"] == "random"]
    return [{**s, "trained": [{**t, "latency_ms": again.get(t["arch_hash"], t["latency_ms"])} for t in s["trained"]]}
            for s in studies]


def hypervolume(points: list[tuple[float, float]], latency_ref: float) -> float:
    """Area dominated by (top-1 up, latency down) points, bounded by top-1 0 and latency `latency_ref`."""
    area, best_top1 = 0.0, 0.0
    for latency, top1 in sorted((lat, top) for top, lat in points if lat < latency_ref):
        if top1 > best_top1:
            area += (top1 - best_top1) * (latency_ref - latency)
            best_top1 = top1
    return area


def in_progress(document: dict, seeds: int) -> list[dict]:
    """One-objective studies started but not yet in the results file, read from their SQLite files: what a
    study that runs for hours has trained so far."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    finished = {(s["objective"], s["sampler"], s["seed"]) for s in document.get("studies", [])}
    studies = []
    for objective, sampler, seed in jobs(seeds):
        name = study_name(objective, sampler, seed)
        if objective != "accuracy" or (objective, sampler, seed) in finished or not (RUNS / f"{name}.db").exists():
            continue
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{RUNS}/{name}.db")
        trained = trained_rows(study)
        if trained:
            studies.append({"objective": objective, "sampler": f"{sampler} (in progress)", "seed": seed,
                            "wall_seconds": None, "trials_stored": len(study.get_trials(deepcopy=False)),
                            "rows_stored": rows_stored(objective, sampler, seed), "trained": trained})
    return studies


def report(document: dict, running: list[dict]):
    import numpy as np

    studies = [s for s in document.get("studies", []) if s["objective"] == "accuracy"] + running + \
        two_objective_studies(document)
    if "latency_remeasured" not in document:
        print("(two-objective latencies as timed during the studies; run --remeasure on an idle machine)")
    for objective, samplers in SAMPLERS.items():
        done = [s for s in studies if s["objective"] == objective]
        if not done:
            continue
        latency_ref = 1.1 * max(t["latency_ms"] for s in done for t in s["trained"])
        measure = "best proxy top-1 (%)" if objective == "accuracy" else \
            f"hypervolume of (top-1 %, latency ms) against (0, {latency_ref:.1f} ms)"
        print(f"\n{objective}: {measure}, mean +- sd over seeds")
        print("| sampler | seeds | " + " | ".join(f"after {k}" for k in CHECKPOINTS) +
              " | MAdds/budget median: all / best 5 | trials (rows) stored per trained | wall time per study |")
        print("|---" * (5 + len(CHECKPOINTS)) + "|")
        for sampler in [name for sampler in samplers for name in (sampler, f"{sampler} (in progress)")]:
            runs = [s for s in done if s["sampler"] == sampler]
            if not runs:
                continue
            cells = []
            for k in CHECKPOINTS:
                if objective == "accuracy":
                    values = [max(t["top1"] for t in s["trained"][:k]) for s in runs if len(s["trained"]) >= k]
                else:
                    values = [hypervolume([(t["top1"], t["latency_ms"]) for t in s["trained"][:k]], latency_ref)
                              for s in runs if len(s["trained"]) >= k]
                short = f" ({len(values)} of them)" if 0 < len(values) < len(runs) else ""
                cells.append(f"{np.mean(values):.2f} +- {np.std(values):.2f}{short}" if values else "-")
            use_all = np.median([t["madds"] / BUDGET for s in runs for t in s["trained"]])
            use_best = np.median([t["madds"] / BUDGET for s in runs
                                  for t in sorted(s["trained"], key=lambda t: -t["top1"])[:5]])
            stored = np.mean([s["trials_stored"] / len(s["trained"]) for s in runs])
            rows = [r / len(s["trained"]) for s in runs for r in [s.get("rows_stored")] if r]
            rows = f"{np.mean(rows):.0f}" if rows else "-"
            walls = [s["wall_seconds"] for s in runs if s["wall_seconds"] is not None]
            wall = f"{np.mean(walls) / 60:.0f} min" if walls else "-"
            print(f"| {sampler} | {len(runs)} | " + " | ".join(cells) +
                  f" | {use_all:.2f} / {use_best:.2f} | {stored:.1f} ({rows}) | {wall} |")
    if "baseline" in document:
        b = document["baseline"]
        print(f"\nbaseline {b['name']} ({b['madds'] / 1e6:.2f}M MAdds), same proxy: top-1 {b['top1']:.2f}%")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--output", default=str(OUTPUT))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20, help="trained trials per study")
    parser.add_argument("--shard", default="0/1", help="K/N: run only the jobs i with i %% N == K")
    parser.add_argument("--job", help="OBJECTIVE:SAMPLER:SEED: run only this study (e.g. accuracy:random:2)")
    parser.add_argument("--report", action="store_true",
                        help="print the table from the results file (and the studies still running) and stop")
    parser.add_argument("--remeasure", action="store_true",
                        help="time every trained network's latency again in this process (idle machine), then stop")
    args = parser.parse_args()
    output = Path(args.output)
    if args.remeasure:
        remeasure(output)
        return
    if args.report:
        with locked(output) as document:
            document = document or {}
        report(document, in_progress(document, args.seeds))
        return
    shard, shards = map(int, args.shard.split("/"))
    settings = {"data": Path(args.data).name, "budget": BUDGET, "space": "micro", "proxy": PROXY.to_dict(),
                "trials": args.trials, "encoding": ENCODING, "shrink": SearchSettings().shrink}
    RUNS.mkdir(parents=True, exist_ok=True)
    todo = ["baseline"] + jobs(args.seeds)
    if args.job:
        objective, sampler, seed = args.job.split(":")
        todo, shard, shards = [(objective, sampler, int(seed))], 0, 1
    for i, job in enumerate(todo):
        if i % shards != shard:
            continue
        with locked(output) as document:
            if document is not None and document["settings"] != settings:
                raise SystemExit(f"{output} was made with other settings; use another --output")
            document = document or {"settings": settings, "studies": []}
            if job == "baseline" and "baseline" in document or job != "baseline" and any(
                    (s["objective"], s["sampler"], s["seed"]) == job for s in document["studies"]):
                continue
        print(f"job {i}: {job}", flush=True)
        result = run_baseline(args.data) if job == "baseline" else run_study(*job, args.trials, args.data)
        with locked(output) as document:  # re-read: another shard may have written meanwhile
            document = document or {"settings": settings, "studies": []}
            if job == "baseline":
                document["baseline"] = result
            else:
                document["studies"].append(result)
            write(output, document)


if __name__ == "__main__":
    main()
