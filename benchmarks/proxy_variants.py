"""Training proxies to score against the reference ranking: each variant trains every architecture of
benchmarks/results/rank_reference_fashion.json briefly, and `rank_fidelity.py` ranks the variants by Kendall tau.

Variants (all evaluated on the same 2,000 official test images; cost as a fraction of the reference's
15 epochs x 12,000 images at 32 px, before resolution and stride effects):
  today       32 px, 3 epochs, 4,000 images                 the search's default proxy shape (1/15)
  res48       48 px, 3 epochs, 2,000 images                 a higher proxy resolution (about 1/13)
  stem1       32 px, 3 epochs, 2,000 images, first stride 1 the CIFAR adaptation: the feature maps a 64 px input
                                                            would give, at 32 px (about 1/8 with the larger maps)
  long_small  32 px, 8 epochs, 1,500 images                 more epochs on fewer images (1/15)
A fifth proxy, learning-curve extrapolation from `today`'s three epochs, needs no training of its own.

Results are appended per (variant, architecture), cheapest architectures first, to
benchmarks/results/proxy_variants_fashion.json; a stopped run resumes. `--shard K/N` splits the work over
processes (Paddle trains these networks on one core).

    python benchmarks/proxy_variants.py [--shard 0/2] [--variants today,res48]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from common import FASHION as DATA, REFERENCE_FILE as REFERENCE, RESULTS, append, locked  # noqa: E402

import lwnas  # noqa: E402
from lwnas.model.spec import ArchSpec  # noqa: E402
from lwnas.train.devices import seed_everything
from lwnas.train.loop import train  # noqa: E402
from lwnas.train.settings import TrainConfig
from lwnas.train.splits import load_data  # noqa: E402

OUTPUT = RESULTS / "proxy_variants_fashion.json"
VAL_IMAGES = 2000
VARIANTS = {
    "today": (TrainConfig(epochs=3, train_subset=4000, val_subset=VAL_IMAGES), False),
    "res48": (TrainConfig(epochs=3, train_subset=2000, val_subset=VAL_IMAGES, resolution=48), False),
    "stem1": (TrainConfig(epochs=3, train_subset=2000, val_subset=VAL_IMAGES), True),
    "long_small": (TrainConfig(epochs=8, train_subset=1500, val_subset=VAL_IMAGES), False),
}


def first_stride_removed(spec: ArchSpec) -> ArchSpec:
    """The network with its first stride-2 block at stride 1: at a low proxy resolution, the later stages see
    feature maps twice as large per side, closer to what they see at the target resolution."""
    stem = spec.to_dict()["stem"]
    for block in stem:
        if block.get("stride") == 2:
            block["stride"] = 1
            return spec.replace(stem=stem)
    raise ValueError(f"{spec.name}: no stride-2 block in the stem")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--reference", default=str(REFERENCE))
    parser.add_argument("--output", default=str(OUTPUT))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--shard", default="0/1", help="K/N: run only the jobs i with i %% N == K")
    args = parser.parse_args()
    shard, shards = map(int, args.shard.split("/"))
    output = Path(args.output)
    reference = json.loads(Path(args.reference).read_text())["architectures"]
    names = args.variants.split(",")
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(VARIANTS)}")
    # Architecture-major, cheapest reference first: a partial file scores every variant on the same architectures,
    # and as many of them as the time spent allows.
    reference.sort(key=lambda arch: sum(h["seconds"] for h in arch["history"]))
    jobs = [(arch, name) for arch in reference for name in names]
    data_cache = {}
    for i, (arch, name) in enumerate(jobs):
        if i % shards != shard:
            continue
        with locked(output) as document:
            done = {(r["arch_hash"], r["variant"]) for r in (document or {}).get("results", [])}
        if (arch["arch_hash"], name) in done:
            continue
        config, no_stride = VARIANTS[name]
        key = (config.resolution, config.train_subset)
        if key not in data_cache:
            data_cache[key] = load_data(args.data, config)
        train_set, val_set = data_cache[key]
        spec = ArchSpec.from_yaml(arch["spec"], arch["name"])
        if no_stride:
            spec = first_stride_removed(spec)
        seed_everything(config.seed)
        start = time.perf_counter()
        history = train(lwnas.build(spec), train_set, val_set, config)
        entry = {"variant": name, "arch_hash": arch["arch_hash"], "name": arch["name"], "config": config.to_dict(),
                 "first_stride_removed": no_stride, "top1": history[-1].top1,
                 "history": [h.__dict__ for h in history], "wall_seconds": round(time.perf_counter() - start, 1)}
        document = append(output, "results", entry, {"reference": Path(args.reference).name})
        print(f"{name} {arch['name']}: top-1 {entry['top1']:.2f}% ({entry['wall_seconds']:.0f} s); "
              f"{len(document['results'])} in the file", flush=True)


if __name__ == "__main__":
    main()
