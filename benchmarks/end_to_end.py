"""The search's answer against MicroNet-M2, end to end, on images it never selected on (Fashion-MNIST, `micro`,
12M MAdds).

Final schedule: 15 epochs at 32 px (the reference ranking's), on 10,000 training images; 2,000 validation images
held out of the other training images select everything; the official 10,000 test images are read once per
finished network, for the report. Every method gets the same compute budget, BUDGET_EPOCHS training epochs: about
three final-schedule trainings of MicroNet-M2 in time (M2, Dynamic Shift-Max in every block, trains an epoch in
about twice the time of the networks a search draws under 12M; the report compares the seconds used with three
M2 trainings), and runs with three seeds:
- tpe-sha: TPE + successive halving on the final schedule (the candidate default); its pick is a finished trial.
- random-sha: random search with the same pruner and budget.
- proxy3-median: the former default, a 3-epoch proxy with the median pruner; its best trial is then trained on the
  final schedule, which the budget includes (its search gets BUDGET_EPOCHS - 15).
- micronet_m2: MicroNet-M2 trained on the final schedule, per seed.
- random-sha-rf2, random-sha-min1: the default with another reduction factor (2) or minimum resource (1 epoch),
  seed 0 only.
The default method was chosen on the validation top-1 of seeds 0-2 (random-sha led tpe-sha on every seed); fresh
seeds (CONFIRMATION_SEEDS) of the default and M2 then report its test top-1 on runs that chose nothing.
Per pick: MAdds, validation and test top-1, eager and Paddle Inference latency (224 px, batch 1, one thread),
and the wall seconds of its search and training.

    python benchmarks/end_to_end.py [--job JOB] [--report]

Start it once per core: each process claims the next job (m2:SEED, METHOD:SEED) that is neither in the results
file nor running elsewhere. Everything resumes: searches from their SQLite studies (a trial cut short from its
last epoch), trainings from their checkpoints.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path

warnings.filterwarnings("ignore")

from common import FASHION, RESULTS, RUNS, claim, locked, write  # noqa: E402

import lwnas  # noqa: E402
from lwnas.search.pruning import epochs_spent  # noqa: E402
from lwnas.search.settings import SearchSettings  # noqa: E402
from lwnas.search.study import Search  # noqa: E402
from lwnas.train import checkpoint  # noqa: E402
from lwnas.train.devices import seed_everything  # noqa: E402
from lwnas.train.loop import evaluate, loaders, train
from lwnas.train.settings import TrainConfig
from lwnas.train.splits import load_data, test_set  # noqa: E402

OUTPUT = RESULTS / "end_to_end_fashion.json"
FOLDER = RUNS / "end_to_end"
BUDGET = 12_000_000
FINAL = TrainConfig(epochs=15, batch_size=64, lr=0.1, warmup_epochs=0.5, resolution=32, train_subset=10_000,
                    val_subset=2_000, bn_recalibration=16)
BUDGET_EPOCHS = 6 * FINAL.epochs
METHODS = {
    "tpe-sha": {"sampler": "tpe", "pruner": "sha", "proxy_epochs": FINAL.epochs},
    "random-sha": {"sampler": "random", "pruner": "sha", "proxy_epochs": FINAL.epochs},
    "proxy3-median": {"sampler": "tpe", "pruner": "median", "proxy_epochs": 3},
    # the default's pruner varied (rungs at epochs 2 and 6 of 15 by default): keep the best half at epochs 2, 4, 8
    # (reduction factor 2), or the best third at epochs 1, 3, 9 (minimum resource 1)
    "random-sha-rf2": {"sampler": "random", "pruner": "sha", "proxy_epochs": FINAL.epochs, "reduction_factor": 2},
    "random-sha-min1": {"sampler": "random", "pruner": "sha", "proxy_epochs": FINAL.epochs, "min_epochs": 1},
}
PRUNER_VARIANTS = ("random-sha-rf2", "random-sha-min1")  # one seed each, after the confirmation seeds
DEFAULT = "random-sha"
SEEDS = (0, 1, 2)
CONFIRMATION_SEEDS = (3, 4)  # the default and M2 only, after the default was chosen on seeds 0-2's validation
LATENCY_RESOLUTION = 224  # the space's, at which MAdds are counted


def jobs() -> list[str]:
    """Every seed's M2 and final-schedule searches first, then the confirmation seeds; the 3-epoch proxy's
    ablation after them all."""
    final = [m for m, method in METHODS.items() if method["proxy_epochs"] == FINAL.epochs and m not in PRUNER_VARIANTS]
    ablations = [m for m, method in METHODS.items() if method["proxy_epochs"] != FINAL.epochs]
    return [job for seed in SEEDS for job in (f"m2:{seed}", *(f"{m}:{seed}" for m in final))] + \
        [job for seed in CONFIRMATION_SEEDS for job in (f"m2:{seed}", f"{DEFAULT}:{seed}")] + \
        [f"{m}:0" for m in PRUNER_VARIANTS] + [f"{m}:{seed}" for m in ablations for seed in SEEDS]


def settings() -> dict:
    """What every recorded result shares; methods may be added later (a method's options never change)."""
    return {"data": FASHION.name, "budget": BUDGET, "space": "micro", "final": FINAL.to_dict(),
            "test": "official test split (10,000), reported only"}


def train_final(spec, name: str, seed: int, data) -> tuple:
    """`spec` trained on the final schedule with `seed` (resuming from runs/end_to_end/NAME), then scored: (last
    epoch's validation top-1, test top-1, wall seconds, folder)."""
    config = replace(FINAL, seed=seed)
    folder = FOLDER / name
    state = checkpoint.load_latest(folder) if folder.exists() else None
    earlier = state["wall_seconds"] if state else 0.0
    start = time.perf_counter()
    seed_everything(seed)
    model = lwnas.build(spec)

    def keep(epoch_state, best):
        checkpoint.save(folder, {**epoch_state, "spec": spec.to_yaml(), "arch_hash": spec.arch_hash,
                                 "classes": data[0].classes, "config": config.to_dict(),
                                 "wall_seconds": earlier + time.perf_counter() - start}, best)

    history = state["history"] if state and state["epoch"] == config.epochs else None
    if history is None:
        history = [h.__dict__ for h in train(
            model, *data, config, resume=state, save=keep,
            on_epoch=lambda r: print(f"  {name} epoch {r.epoch}: top-1 {r.top1:.2f}%", flush=True))]
    wall = earlier + time.perf_counter() - start
    return history[-1]["top1"], test_top1(folder), round(wall, 1), folder


def test_top1(folder: Path) -> float:
    """Top-1 on the official test split of the network in folder/last.pdckpt (the last epoch: no selection)."""
    from lwnas.train.checkpoint import load_trained

    model, state, _ = load_trained(folder / checkpoint.LAST)
    images = test_set(str(FASHION), FINAL, classes=state["classes"])
    return round(evaluate(model, loaders(images, images, FINAL)[3])[1], 2)


def latencies(folder: Path) -> dict:
    from lwnas.deploy.export import deployable
    from lwnas.deploy.latency import measure
    from lwnas.train.checkpoint import load_trained

    model, _, _ = load_trained(folder / checkpoint.LAST)
    return {f"{engine}_ms": round(measure(deployable(model), LATENCY_RESOLUTION, 1, runs=30, engine=engine,
                                          threads=1).median_ms, 3) for engine in ("eager", "inference")}


def run_m2(seed: int, data) -> dict:
    spec = lwnas.get_config("micronet_m2").replace(num_classes=len(data[0].classes))
    val, test, wall, folder = train_final(spec, f"m2-s{seed}", seed, data)
    return {"seed": seed, "arch_hash": spec.arch_hash, "madds": lwnas.count(spec).macs, "val_top1": val,
            "test_top1": test, "compute_seconds": wall, **latencies(folder)}


def run_search(method: str, seed: int, data) -> dict:
    import optuna

    from lwnas.model.spec import ArchSpec

    options = METHODS[method]
    retrain = options["proxy_epochs"] != FINAL.epochs
    proxy = replace(FINAL, epochs=options["proxy_epochs"], seed=seed)
    name = f"{method}-s{seed}"
    search = Search(SearchSettings(
        space="micro", budget=BUDGET, trials=None, data=str(FASHION), sampler=options["sampler"], seed=seed,
        study=name, storage=f"sqlite:///{FOLDER}/{name}.db", runs_dir=str(FOLDER), pruner=options["pruner"],
        **{key: options[key] for key in ("min_epochs", "reduction_factor") if key in options},
        max_epochs=BUDGET_EPOCHS - (FINAL.epochs if retrain else 0), latency_runs=10, latency_engine="eager",
        proxy=proxy))  # the picks are timed with both engines afterwards (`latency`)
    search.train_set, search.val_set = data  # the same images as every other job (load_data is deterministic)
    study = search.run()
    trials = study.get_trials(deepcopy=False)
    trained = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and "top1" in t.user_attrs]
    spent = [t for t in trials if "history" in t.user_attrs and t.datetime_complete and t.datetime_start]
    search_seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in spent)
    best = max(trained, key=lambda t: t.user_attrs["top1"])
    spec = ArchSpec.from_yaml(best.user_attrs["spec"])
    entry = {"seed": seed, "budget_epochs": BUDGET_EPOCHS, "arch_hash": spec.arch_hash,
             "madds": best.user_attrs["madds"], "trial": best.number,
             "search_val_top1": best.user_attrs["top1"], "trials_trained": len(spent), "finished": len(trained),
             "epochs": epochs_spent(study)}
    if retrain:
        val, test, wall, folder = train_final(spec, f"{name}-final", seed, data)
        entry.update(val_top1=val, test_top1=test, compute_seconds=round(search_seconds + wall, 1))
    else:
        folder = Path(best.user_attrs["checkpoint"])
        entry.update(val_top1=best.user_attrs["top1"], test_top1=test_top1(folder),
                     compute_seconds=round(search_seconds, 1))
    return {**entry, **latencies(folder)}


def pick_folder(key: str, entry: dict) -> Path:
    """Where the checkpoint of a recorded pick is: M2's and the retrained proxy picks' run folders, a search's
    finished trial."""
    if key == "micronet_m2":
        return FOLDER / f"m2-s{entry['seed']}"
    if METHODS[key]["proxy_epochs"] != FINAL.epochs:
        return FOLDER / f"{key}-s{entry['seed']}-final"
    return FOLDER / f"{key}-s{entry['seed']}" / f"arch_{entry['arch_hash']}"


def remeasure_latencies():
    """Latencies of every recorded pick measured again, alone on the machine (searches time them while other jobs
    run, which inflates them unevenly)."""
    with locked(OUTPUT) as document:
        keys = [k for k in document if isinstance(document[k], dict) and "seeds" in document[k]]
    measured = {(k, e["seed"]): latencies(pick_folder(k, e)) for k in keys for e in document[k]["seeds"]}
    with locked(OUTPUT) as document:
        for key in keys:
            for entry in document[key]["seeds"]:
                entry.update(measured.get((key, entry["seed"]), {}))
        write(OUTPUT, document)
    for (key, seed), values in sorted(measured.items()):
        print(f"{key} seed {seed}: {values}")


def record(job: str, entry: dict):
    key = "micronet_m2" if job.startswith("m2:") else job.split(":")[0]
    with locked(OUTPUT) as document:
        document = document or {"settings": {**settings(), "methods": {}}, "default": DEFAULT}
        stored = dict(document["settings"])
        methods = stored.pop("methods", {})
        if stored != settings() or any(methods.get(m, METHODS[m]) != METHODS[m] for m in METHODS):
            raise SystemExit(f"{OUTPUT} was made with other settings; move it away to start again")
        document["settings"]["methods"] = {**methods, **METHODS}
        document.setdefault(key, {"seeds": []})["seeds"].append(entry)
        write(OUTPUT, document)


def done_jobs() -> set[str]:
    with locked(OUTPUT) as document:
        document = document or {}
    return {f"{'m2' if key == 'micronet_m2' else key}:{s['seed']}" for key, value in document.items()
            if isinstance(value, dict) and "seeds" in value for s in value["seeds"]}


def report():
    with locked(OUTPUT) as document:
        pass
    if document is None:
        raise SystemExit(f"no results yet in {OUTPUT}")

    def mean_sd(values):
        return (f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else
                f"{values[0]:.2f}" if values else "-")

    def table(seeds, keys):
        m2 = [r["test_top1"] for r in document.get("micronet_m2", {}).get("seeds", []) if r["seed"] in seeds]
        print("| method | seeds | test top-1 | val top-1 | MAdds | inference ms | compute s | vs M2 (test) |")
        print("|---|---|---|---|---|---|---|---|")
        for key in keys:
            rows = [r for r in document.get(key, {}).get("seeds", []) if r["seed"] in seeds]
            if not rows:
                continue
            test = [r["test_top1"] for r in rows]
            gap = f"{statistics.mean(test) - statistics.mean(m2):+.2f}" if m2 and key != "micronet_m2" else ""
            print(f"| {key}{' (default)' if key == DEFAULT else ''} | {len(rows)} | {mean_sd(test)} | "
                  f"{mean_sd([r['val_top1'] for r in rows])} | "
                  f"{statistics.mean(r['madds'] for r in rows) / 1e6:.2f}M | "
                  f"{statistics.mean(r['inference_ms'] for r in rows):.2f} | "
                  f"{statistics.mean(r['compute_seconds'] for r in rows):.0f} | {gap} |")

    m2_rows = [r for r in document.get("micronet_m2", {}).get("seeds", []) if r["seed"] in SEEDS]
    print(f"Fashion-MNIST, micro, {BUDGET / 1e6:.0f}M MAdds; budget {BUDGET_EPOCHS} training epochs per method; "
          f"final schedule {FINAL.epochs} epochs on {FINAL.train_subset} images; mean ± sd over seeds")
    table(SEEDS, (*METHODS, "micronet_m2"))
    if m2_rows:
        three = 3 * statistics.mean(r["compute_seconds"] for r in m2_rows)
        print(f"three final-schedule trainings of M2 took {three:.0f} s (the compute a method is meant to get)")
    print(f"\nconfirmation seeds {', '.join(map(str, CONFIRMATION_SEEDS))} (the default was chosen on the "
          f"validation top-1 of seeds {', '.join(map(str, SEEDS))}; nothing was chosen on these):")
    table(CONFIRMATION_SEEDS, (DEFAULT, "micronet_m2"))
    print("\nper seed (test top-1, MAdds, epochs of training spent):")
    for key in (*METHODS, "micronet_m2"):
        rows = sorted(document.get(key, {}).get("seeds", []), key=lambda r: r["seed"])
        cells = [f"seed {r['seed']}: {r['test_top1']:.2f} ({r['madds'] / 1e6:.2f}M" +
                 (f", {r['epochs']} epochs)" if "epochs" in r else ")") for r in rows]
        print(f"  {key:14s} " + "; ".join(cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", help="run this job (m2:SEED or METHOD:SEED) instead of the next unclaimed one")
    parser.add_argument("--report", action="store_true", help="print the README table and stop")
    parser.add_argument("--latency", action="store_true", help="measure every recorded pick's latency again (run it "
                                                               "alone on the machine) and stop")
    args = parser.parse_args()
    if args.report:
        return report()
    if args.latency:
        return remeasure_latencies()
    FOLDER.mkdir(parents=True, exist_ok=True)
    data = load_data(str(FASHION), FINAL)
    print(f"{len(data[0])} training / {len(data[1])} validation images", flush=True)
    while True:
        job = args.job or claim(OUTPUT, jobs(), done_jobs())
        if job is None:
            break
        kind, seed = job.split(":")
        print(f"== {job}", flush=True)
        entry = run_m2(int(seed), data) if kind == "m2" else run_search(kind, int(seed), data)
        record(job, entry)
        print(f"== {job}: {entry}", flush=True)
        if args.job:
            break


if __name__ == "__main__":
    main()
