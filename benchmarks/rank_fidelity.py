"""How well do cheap proxies rank architectures like real training? Scores each proxy against the reference
ranking in benchmarks/results/rank_reference_fashion.json (built by rank_reference.py) without retraining it:
Kendall tau and Spearman rho (scipy.stats), top-k overlap and seconds per architecture.

Proxies scored: every zero-cost score of lwnas.zero_cost (on one batch of the same data at 32 px), the
published vote of three of them, parameter count and MAdds (the baselines), the reference run itself read after
its first epochs (what stopping the same training early would rank; its cost is that fraction of the reference's
time), and the training proxies of proxy_variants.py.

    pip install scipy
    python benchmarks/rank_fidelity.py [--reference FILE] [--data PATH] [--space micro|mobile|all] [--json OUT]

With the reference's `repeats` (rank_reference.py --repeat-seed 1), it also prints the noise ceiling: how well
the reference ranks its own architectures when trained with another seed.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from common import FASHION as DATA, REFERENCE_FILE as REFERENCE, RESULTS, fidelity  # noqa: E402
from scipy import stats  # noqa: E402

from lwnas.model.spec import ArchSpec  # noqa: E402
from lwnas.train import data  # noqa: E402
from lwnas.zero_cost import scores  # noqa: E402

VARIANTS = RESULTS / "proxy_variants_fashion.json"
EARLY_EPOCHS = (1, 2, 3, 5)
# The published vote (Abdelfattah et al., "Zero-cost proxies for lightweight NAS"): the three scores' ranks
# averaged, fixed before looking at our reference so that it is not fitted to it.
VOTE = ("synflow", "jacob_cov", "snip")


def extrapolated(history: list[dict], epoch: int) -> float:
    """top-1 at `epoch` from the first epochs' curve, fitted as a + b / e (least squares): the usual shape of
    an early learning curve, with no more parameters than three points support."""
    epochs = np.array([h["epoch"] for h in history], dtype=float)
    a, b = np.linalg.lstsq(np.stack([np.ones_like(epochs), 1 / epochs], 1), [h["top1"] for h in history],
                           rcond=None)[0]
    return float(a + b / epoch)


def variant_rows(path: Path, archs: list[dict], top: int) -> list[dict]:
    """One row per training proxy of proxy_variants.py (over the architectures it has trained so far), plus
    learning-curve extrapolation of `today` to the reference's epoch count."""
    if not path.exists():
        return []
    results = json.loads(path.read_text())["results"]
    truth = {a["arch_hash"]: a["top1"] for a in archs}
    reference_seconds = {a["arch_hash"]: sum(h["seconds"] for h in a["history"]) for a in archs}
    epochs = len(archs[0]["history"])
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in results):
        mine = [r for r in results if r["variant"] == variant and r["arch_hash"] in truth]
        proxies = {variant: [r["top1"] for r in mine]}
        if variant == "today":
            proxies["today, extrapolated"] = [extrapolated(r["history"], epochs) for r in mine]
        if len(mine) < 4:
            continue
        for name, proxy in proxies.items():
            rows.append({"proxy": f"train: {name}", "architectures": len(mine),
                         **fidelity(proxy, [truth[r["arch_hash"]] for r in mine], min(top, len(mine) // 2)),
                         "seconds_per_arch": float(np.mean([r["wall_seconds"] for r in mine])),
                         "reference_seconds_per_arch": float(np.mean([reference_seconds[r["arch_hash"]]
                                                                      for r in mine]))})
    return rows


def noise_ceiling(reference: dict, archs: list[dict]) -> dict | None:
    """The reference trained again with another seed (rank_reference.py --repeat-seed): Kendall tau between the two
    seeds' rankings of the repeated architectures (no proxy can be expected to rank better) and each network's
    seed-to-seed difference in top-1 (what a win must exceed)."""
    repeated = {r["arch_hash"]: r for r in reference.get("repeats", [])}
    pairs = [(a, repeated[a["arch_hash"]]) for a in archs if a["arch_hash"] in repeated]
    if len(pairs) < 4:
        return None
    first, second = [a["top1"] for a, _ in pairs], [r["top1"] for _, r in pairs]
    differences = [abs(x - y) for x, y in zip(first, second)]
    return {"architectures": len(pairs), "seed": pairs[0][1]["seed"],
            "kendall_tau": float(stats.kendalltau(first, second).statistic),
            "spearman_rho": float(stats.spearmanr(first, second).statistic),
            "mean_abs_difference": float(np.mean(differences)), "max_abs_difference": float(np.max(differences)),
            "per_network": {a["name"]: [a["top1"], r["top1"]] for a, r in pairs}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--reference", default=str(REFERENCE))
    parser.add_argument("--data", default=str(DATA), help="the batch the zero-cost scores see")
    parser.add_argument("--space", choices=("micro", "mobile", "all"), default="all")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--top", type=int, default=5, help="k of the top-k overlap")
    parser.add_argument("--json", help="also write the table here")
    parser.add_argument("--variants", default=str(VARIANTS), help="training proxies from proxy_variants.py")
    args = parser.parse_args()
    reference = json.loads(Path(args.reference).read_text())
    archs = [a for a in reference["architectures"] if args.space in ("all", a["space"])]
    if len(archs) < 4:
        raise SystemExit(f"{args.reference} holds {len(archs)} architectures of {args.space}; need at least 4")
    truth = [a["top1"] for a in archs]
    resolution = reference["settings"]["train"]["resolution"]
    images = data.load(args.data, "train", resolution).subset(args.batch_size, 0)
    view = data.Augmented(images, resolution, train=False)
    batch = np.stack([view[i][0] for i in range(len(view))])

    values: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for arch in archs:
        spec = ArchSpec.from_yaml(arch["spec"], arch["name"])
        timing = {}
        for name, value in scores(spec, batch, images.labels, seconds=timing).items():
            values.setdefault(name, []).append(value)
            seconds.setdefault(name, []).append(timing.get(name, 0.0))
        for epoch in EARLY_EPOCHS:
            name = f"reference after epoch {epoch}"
            values.setdefault(name, []).append(arch["history"][epoch - 1]["top1"])
            seconds.setdefault(name, []).append(sum(h["seconds"] for h in arch["history"][:epoch]))
    name = f"vote: {', '.join(VOTE)}"
    values[name] = list(np.mean([stats.rankdata(values[score]) for score in VOTE], axis=0))
    seconds[name] = list(np.sum([seconds[score] for score in VOTE], axis=0))
    full = float(np.mean([sum(h["seconds"] for h in a["history"]) for a in archs]))
    rows = []
    for name, proxy in values.items():
        rows.append({"proxy": name, "architectures": len(archs),
                     **fidelity(proxy, truth, min(args.top, len(archs) // 2)),
                     "seconds_per_arch": float(np.mean(seconds[name])), "reference_seconds_per_arch": full})
    rows += variant_rows(Path(args.variants), archs, args.top)
    rows.sort(key=lambda r: -r["kendall_tau"])
    print(f"{len(archs)} architectures ({args.space}) of {args.reference}: reference top-1 "
          f"{min(truth):.2f}-{max(truth):.2f}%, {full:.0f} s of training each")
    print(f"{'proxy':32s} {'archs':>5s} {'tau':>6s} {'rho':>6s} {'top-k':>6s} {'s/arch':>8s} {'of ref':>7s}")
    for r in rows:
        top = next(v for k, v in r.items() if k.startswith("top"))
        print(f"{r['proxy']:32s} {r['architectures']:5d} {r['kendall_tau']:6.3f} {r['spearman_rho']:6.3f} "
              f"{top:6.2f} {r['seconds_per_arch']:8.2f} {r['seconds_per_arch'] / r['reference_seconds_per_arch']:7.4f}")
    ceiling = noise_ceiling(reference, archs)
    if ceiling:
        print(f"noise ceiling: the reference's ranking of its {ceiling['architectures']} repeated architectures "
              f"against the same training with seed {ceiling['seed']}: tau {ceiling['kendall_tau']:.3f}, rho "
              f"{ceiling['spearman_rho']:.3f}; top-1 differs by {ceiling['mean_abs_difference']:.2f} points on "
              f"average, {ceiling['max_abs_difference']:.2f} at most")
        for name, (first, second) in ceiling["per_network"].items():
            print(f"  {name:20s} {first:6.2f} {second:6.2f}  {second - first:+.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"architectures": len(archs), "space": args.space, "rows": rows,
                                               "noise_ceiling": ceiling}, indent=1))


if __name__ == "__main__":
    main()
