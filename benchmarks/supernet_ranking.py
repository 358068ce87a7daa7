"""Does the supernet rank like stand-alone training? Trains a supernet of `micro` on Fashion-MNIST, scores the
reference architectures (benchmarks/results/rank_reference_fashion.json, built by rank_reference.py) with inherited
weights after batch-norm recalibration, and compares with their reference top-1: Kendall tau and Spearman rho
(scipy.stats), the supernet's cost in reference trainings and in search proxies, and subnet evaluations per minute.

Each variant's supernet trains in runs/supernet_ranking/VARIANT (resumable: run the same command again) and its
scores are appended to benchmarks/results/supernet_ranking_fashion.json as they finish.

    python benchmarks/supernet_ranking.py [--variant sandwich|labels|uniform] [--epochs 6] [--report]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rank_fidelity import fidelity  # noqa: E402
from rank_reference import DATA, OUTPUT as REFERENCE, locked, write  # noqa: E402
from search_quality import PROXY  # noqa: E402

from lwnas import checkpoint  # noqa: E402
from lwnas.space import get_space  # noqa: E402
from lwnas.spec import ArchSpec  # noqa: E402
from lwnas.supernet.extract import load_supernet  # noqa: E402
from lwnas.supernet.train import Sandwich, evaluate_subnet, train_supernet  # noqa: E402
from lwnas.train import TrainConfig, load_data, loaders  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "supernet_ranking"
OUTPUT = ROOT / "benchmarks" / "results" / "supernet_ranking_fashion.json"
# the reference's data view (12,000 training images at 32 px, the official test split), fewer epochs
SUPERNET = TrainConfig(batch_size=64, lr=0.1, warmup_epochs=0.5, resolution=32, train_subset=12_000, seed=0,
                       bn_recalibration=16)
VARIANTS = {"sandwich": Sandwich(random_subnets=2, distill=True),  # largest + smallest + 2 random, distilled
            "labels": Sandwich(random_subnets=2, distill=False),  # the same four subnets, each on the labels
            "uniform": Sandwich(random_subnets=2, distill=False, sandwich=False)}  # SPOS: 2 random on the labels


def run_variant(name: str, epochs: int, data: str):
    space = get_space("micro")
    config = TrainConfig.from_dict({**SUPERNET.to_dict(), "epochs": epochs})
    folder = RUNS / name
    state = checkpoint.load_latest(folder) if folder.exists() else None
    if state is None or state["epoch"] < epochs:
        start = time.perf_counter()
        train_supernet(space, data, folder, config, VARIANTS[name], resume=state is not None,
                       epochs=epochs if state is not None else None)
        print(f"{name}: trained in {time.perf_counter() - start:.0f} s this run", flush=True)
    supernet, state = load_supernet(folder)
    seconds = sum(h["seconds"] for h in state["history"])
    reference = [a for a in _reference()["architectures"] if a["space"] == "micro"]
    train_set, val_set = load_data(data, config)
    _, _, train_loader, val_loader = loaders(train_set, val_set, config)
    with locked(OUTPUT) as document:
        document = document or {"settings": {"supernet": config.to_dict(), "reference": str(REFERENCE.name)},
                                "variants": {}}
        done = document["variants"].setdefault(name, {"scores": {}})["scores"]
    for arch in reference:
        if arch["arch_hash"] in done:
            continue
        spec = ArchSpec.from_yaml(arch["spec"]).replace(num_classes=len(train_set.classes))
        start = time.perf_counter()
        _, top1, _ = evaluate_subnet(supernet, spec, train_loader, val_loader, config.bn_recalibration)
        done[arch["arch_hash"]] = {"name": arch["name"], "top1": top1, "seconds": time.perf_counter() - start}
        print(f"{name}: {arch['name']} inherited top-1 {top1:.2f}% (reference {arch['top1']:.2f}%)", flush=True)
        with locked(OUTPUT) as latest:
            latest = latest or document
            latest["variants"].setdefault(name, {"scores": {}})
            latest["variants"][name].update(epochs=state["epoch"], train_seconds=round(seconds),
                                            sandwich=str(VARIANTS[name]))
            latest["variants"][name]["scores"][arch["arch_hash"]] = done[arch["arch_hash"]]
            write(OUTPUT, latest)


def _reference() -> dict:
    import json

    return json.loads(REFERENCE.read_text())


def report():
    import json

    import numpy as np

    document = json.loads(OUTPUT.read_text())
    archs = {a["arch_hash"]: a for a in _reference()["architectures"] if a["space"] == "micro"}
    reference_seconds = np.mean([a["wall_seconds"] for a in archs.values()])
    trained = _reference()["settings"]["train"]  # a proxy costs the reference's time per image seen
    proxy_seconds = reference_seconds * PROXY.epochs * PROXY.train_subset / (trained["epochs"] * trained["train_subset"])
    print("| supernet training | epochs | archs | Kendall tau | Spearman rho | top-3 overlap | cost (reference "
          "trainings) | cost (search proxies) | evaluations per minute |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, v in document["variants"].items():
        hashes = [h for h in v["scores"] if h in archs]
        if len(hashes) < 4:
            continue
        f = fidelity([v["scores"][h]["top1"] for h in hashes], [archs[h]["top1"] for h in hashes], 3)
        per_eval = np.mean([v["scores"][h]["seconds"] for h in hashes])
        print(f"| {name} | {v['epochs']} | {len(hashes)} | {f['kendall_tau']:.3f} | "
              f"{f['spearman_rho']:.3f} | {f['top3_overlap']:.2f} | {v['train_seconds'] / reference_seconds:.1f} | "
              f"{v['train_seconds'] / proxy_seconds:.0f} | {60 / per_eval:.1f} |")
    print(f"(a reference training: {reference_seconds:.0f} s mean over the {len(archs)} micro architectures; "
          f"a search proxy, scaled by images seen: {proxy_seconds:.0f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="sandwich")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--report", action="store_true", help="print the README table and stop")
    args = parser.parse_args()
    if args.report:
        report()
        return
    run_variant(args.variant, args.epochs, args.data)
    report()


if __name__ == "__main__":
    main()
