"""A supernet search whose picks are fine-tuned on the final schedule, against MicroNet-M2, under the protocol of
end_to_end.py: what a user of `lwnas search --supernet` gets at 12M MAdds on Fashion-MNIST.

1. search `micro` at 12M with inherited weights from a supernet trained by supernet_ranking.py (`--supernet
   VARIANT-EPOCHSep`), each trial scored on end_to_end.py's 2,000 validation images after batch-norm
   recalibration (the validation images are held out of every training image, the supernet's included);
2. extract the TOP best trials by that score, each with its inherited weights (`lwnas supernet extract`);
3. fine-tune each from its inherited weights on end_to_end.py's final schedule (15 epochs on 10,000 images), as
   Once-for-All fine-tunes its picks, and choose among them by last-epoch validation top-1;
4. read the official test split once, for the chosen network, and set it beside end_to_end.py's MicroNet-M2
   trainings (same schedule, same images, seeds 0-2).
`--control` repeats 2-4 with trials drawn at random from the same search instead of its best: what the
supernet's ranking adds to fine-tuning and choosing on validation.

Compute: the supernet's training, the search and the fine-tunings together, in wall seconds. Each step is
skipped when its output exists (run the same command again after a stop). Results go to
benchmarks/results/supernet_end_to_end_fashion.json.

    python benchmarks/supernet_end_to_end.py [--supernet sandwich-3ep] [--trials 150] [--top 3] [--control]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from common import FASHION as DATA, RESULTS, ROOT, RUNS as ALL_RUNS  # noqa: E402
from end_to_end import FINAL, OUTPUT as END_TO_END, SEEDS, latencies, test_top1  # noqa: E402

RUNS = ALL_RUNS / "supernet_end_to_end"
OUTPUT = RESULTS / "supernet_end_to_end_fashion.json"


def lwnas(*args: str):
    print("$ lwnas " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "lwnas.cli", *args], check=True, cwd=ROOT)


def search(supernet, trials: int, study: str, storage: str) -> list:
    """The supernet search (resumed if stopped: `--trials` counts new trials, so only the missing ones), and its
    first `trials` scored trials."""
    import optuna

    def scored():
        try:
            done = optuna.load_study(study_name=study, storage=storage).get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        except KeyError:  # no study yet
            return []
        return sorted((t for t in done if "duplicate_of" not in t.user_attrs), key=lambda t: t.number)[:trials]

    done = scored()
    if len(done) >= trials:
        return done
    lwnas("search", "--space", "micro", "--flops-budget", "12M", "--supernet", str(supernet), "--data", str(DATA),
          "--trials", str(trials - len(done)), "--val-subset", str(FINAL.val_subset),
          "--baseline", "micronet_m2", "--seed", "0", "--study", study, "--storage", storage,
          "--runs-dir", str(RUNS))
    return scored()


def fine_tune(supernet, study: str, storage: str, trial) -> dict:
    """`trial`'s network extracted with its inherited weights and trained from them on the final schedule."""
    from lwnas.model.spec import ArchSpec
    from lwnas.train import checkpoint
    from lwnas.train.runs import train_run

    inherited, tuned = RUNS / f"trial_{trial.number}_inherited", RUNS / f"trial_{trial.number}_tuned"
    if not (inherited / "spec.yaml").exists():
        lwnas("supernet", "extract", str(supernet), "--arch", f"{study}:{trial.number}", "--storage", storage,
              "--data", str(DATA), "--output", str(inherited))
    spec = ArchSpec.from_yaml((inherited / "spec.yaml").read_text())
    last = tuned / checkpoint.LAST
    state = checkpoint.load(last) if last.exists() else None
    if state is None or state["epoch"] < FINAL.epochs:
        train_run(spec, str(DATA), tuned, FINAL, resume=state is not None, init=None if state else inherited)
    history = checkpoint.load(last)["history"]
    return {"trial": trial.number, "arch_hash": trial.user_attrs["arch_hash"], "madds": trial.user_attrs["madds"],
            "inherited_val_top1": trial.user_attrs["top1"], "val_top1": history[-1]["top1"],
            "tune_seconds": round(sum(h["seconds"] for h in history), 1), "folder": str(tuned)}


def main():
    import optuna

    from lwnas.supernet.extract import load_supernet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--supernet", default="sandwich-3ep", help="a run of supernet_ranking.py (VARIANT-EPOCHSep)")
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--top", type=int, default=3, help="picks fine-tuned on the final schedule")
    parser.add_argument("--control", action="store_true",
                        help="fine-tune TOP trials drawn at random from the search instead of its best, and add "
                             "them to the results as the control (does the supernet's ranking help?)")
    args = parser.parse_args()
    supernet = ALL_RUNS / "supernet_ranking" / args.supernet
    RUNS.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study_name, storage = f"supernet-{args.supernet}", f"sqlite:///{RUNS}/search.db"
    start = time.perf_counter()
    scored = search(supernet, args.trials, study_name, storage)
    search_seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in scored)
    study = optuna.load_study(study_name=study_name, storage=storage)
    if args.control:
        import numpy as np

        picks = [scored[i] for i in np.random.default_rng(0).choice(len(scored), args.top, replace=False)]
    else:
        picks = sorted(scored, key=lambda t: t.user_attrs["top1"], reverse=True)[:args.top]
    tuned = [fine_tune(supernet, study_name, storage, t) for t in picks]
    chosen = max(tuned, key=lambda p: p["val_top1"])  # on validation: the test split has chosen nothing
    folder = Path(chosen["folder"])
    chosen.update(test_top1=test_top1(folder), **latencies(folder))
    for pick in tuned:  # the run folders as the repository names them
        pick["folder"] = os.path.relpath(pick["folder"], ROOT)
    earlier = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {}
    if args.control:  # beside the search's own picks, which a later run without --control keeps in turn
        document = {**earlier, "control": {"picks": tuned, "chosen": chosen,
                                           "how": f"{args.top} trials drawn at random from the search (numpy seed 0)"}}
        OUTPUT.write_text(json.dumps(document, indent=1) + "\n")
        print(json.dumps(document["control"], indent=1))
        return
    supernet_seconds = sum(h["seconds"] for h in load_supernet(supernet)[1]["history"])
    m2 = json.loads(END_TO_END.read_text())["micronet_m2"]["seeds"]
    m2_test = [s["test_top1"] for s in m2 if s["seed"] in SEEDS]
    document = {
        **({"control": earlier["control"]} if "control" in earlier else {}),
        "settings": {"supernet": args.supernet, "trials": len(scored), "top": args.top, "final": FINAL.to_dict(),
                     "selection": "validation split (2,000 images held out of training); test split read once"},
        "compute_seconds": {"supernet": round(supernet_seconds), "search": round(search_seconds),
                            "fine_tuning": round(sum(p["tune_seconds"] for p in tuned)),
                            "this_run_wall": round(time.perf_counter() - start)},
        "picks": tuned, "chosen": chosen,
        "micronet_m2": {"test_top1": m2_test, "mean": round(statistics.mean(m2_test), 2),
                        "inherited_val_top1": study.user_attrs["baselines"]["micronet_m2"]["top1"]},
    }
    OUTPUT.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps({k: v for k, v in document.items() if k != "settings"}, indent=1))


if __name__ == "__main__":
    main()
