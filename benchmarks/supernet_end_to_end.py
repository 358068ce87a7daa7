"""A supernet search followed by retraining, against MicroNet-M2 under the same schedule: what a user of
`lwnas search --supernet` gets at 12M MAdds on Fashion-MNIST.

1. search `micro` at 12M with inherited weights from the supernet trained by supernet_ranking.py (its `sandwich`
   variant), scoring each trial on 2,000 test images after batch-norm recalibration, MicroNet-M2 as the baseline;
2. extract the best trial with its inherited weights (`lwnas supernet extract`);
3. retrain it from those weights with the reference schedule (rank_reference.py: 15 epochs on 12,000 images,
   evaluated on all 10,000 test images), the schedule MicroNet-M2's reference top-1 was trained with.

Each step is skipped when its output exists (run the same command again after a stop). Results, with the latency
the search measured for both networks, go to benchmarks/results/supernet_end_to_end_fashion.json.

    python benchmarks/supernet_end_to_end.py [--trials 150]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings

import yaml

warnings.filterwarnings("ignore")

from common import FASHION as DATA, REFERENCE, REFERENCE_FILE, RESULTS, ROOT, RUNS as ALL_RUNS  # noqa: E402

SUPERNET = ALL_RUNS / "supernet_ranking" / "sandwich-3ep"
RUNS = ALL_RUNS / "supernet_end_to_end"
OUTPUT = RESULTS / "supernet_end_to_end_fashion.json"
STUDY = "e2e-micro-12m"
VAL_SUBSET = 2000  # test images that score each trial


def lwnas(*args: str):
    print("$ lwnas " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "lwnas.cli", *args], check=True, cwd=ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--trials", type=int, default=150)
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{RUNS}/search.db"
    lwnas("search", "--space", "micro", "--flops-budget", "12M", "--supernet", str(SUPERNET), "--data", str(DATA),
          "--trials", str(args.trials), "--val-subset", str(VAL_SUBSET), "--baseline", "micronet_m2", "--seed", "0",
          "--study", STUDY, "--storage", storage, "--runs-dir", str(RUNS))

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    best = max((t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))),
               key=lambda t: t.user_attrs["top1"])
    inherited, retrained = RUNS / "best_inherited", RUNS / "best_retrained"
    if not (inherited / "spec.yaml").exists():
        lwnas("supernet", "extract", str(SUPERNET), "--arch", f"{STUDY}:{best.number}", "--storage", storage,
              "--data", str(DATA), "--output", str(inherited))
    schedule = RUNS / "reference_schedule.yaml"
    schedule.write_text(yaml.safe_dump({"train": REFERENCE.to_dict()}))
    from lwnas.train import checkpoint

    last = retrained / checkpoint.LAST
    if not last.exists() or checkpoint.load(last)["epoch"] < REFERENCE.epochs:
        lwnas("train", "--arch", str(inherited / "spec.yaml"), "--init", str(inherited), "--config", str(schedule),
              "--data", str(DATA), "--output", str(retrained), *(["--resume"] if last.exists() else []))

    reference = {a["name"]: a for a in json.loads(REFERENCE_FILE.read_text())["architectures"]}
    m2 = study.user_attrs["baselines"]["micronet_m2"]
    history = checkpoint.load(last)["history"]
    document = {
        "settings": {"supernet": str(SUPERNET.relative_to(ROOT)), "trials": len(study.trials), "val_subset": VAL_SUBSET,
                     "schedule": REFERENCE.to_dict()},
        "found": {"trial": best.number, "arch_hash": best.user_attrs["arch_hash"], "madds": best.user_attrs["madds"],
                  "inherited_top1": best.user_attrs["top1"], "latency_ms": best.user_attrs["latency_ms"],
                  "retrained_top1": history[-1]["top1"],
                  "retrain_seconds": round(sum(h["seconds"] for h in history)), "spec": best.user_attrs["spec"]},
        "micronet_m2": {"inherited_top1": m2["top1"], "latency_ms": m2["latency_ms"],
                        "reference_top1": reference["micronet_m2"]["top1"], "madds": reference["micronet_m2"]["madds"]},
    }
    OUTPUT.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps({k: v for k, v in document.items() if k != "settings"}, indent=1))


if __name__ == "__main__":
    main()
