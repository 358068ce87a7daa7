"""The reference ranking that proxies are scored against: architectures of `micro` and `mobile` trained with a
long schedule on real images (Fashion-MNIST), one at a time, appended to a JSON file as each finishes.

A run stopped at any point resumes: architectures already in the file are skipped, and the file's settings
must equal this run's. The architecture list is fixed by the seed (MicroNet M0-M3 and random points of
`micro` spread over 2-24M MAdds; named configs and random points of `mobile`), so every session adds to the
same list.

    python benchmarks/rank_reference.py [--data ../shared/data/fashion_mnist/fashion-mnist-python.tar.gz]
        [--output benchmarks/results/rank_reference_fashion.json] [--limit N] [--shard K/N]

Paddle trains these small networks on one core: `--shard 0/2` and `--shard 1/2` run side by side on two cores,
each taking every second architecture, and append to the same file under a lock.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import optuna  # noqa: E402

import lwnas  # noqa: E402
from lwnas.space import get_space  # noqa: E402
from lwnas.train import TrainConfig, load_data, seed_everything, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "fashion_mnist" / "fashion-mnist-python.tar.gz"
OUTPUT = ROOT / "benchmarks" / "results" / "rank_reference_fashion.json"
# 15 epochs on 12,000 training images (a fifth of the official 60,000, class-balanced by the seeded subset),
# evaluated on the official 10,000 test images: 5x the proxy's epochs on 10x the built-in set's images.
REFERENCE = TrainConfig(epochs=15, batch_size=64, lr=0.1, warmup_epochs=0.5, resolution=32, train_subset=12_000,
                        seed=0, bn_recalibration=16)
MICRO_NAMED = ("micronet_m0", "micronet_m1", "micronet_m2", "micronet_m3")
MOBILE_NAMED = ("mobilenetv3_small_x1_0", "shufflenet_v2_x1_0", "asymmnet_small_x1_0", "mobileone_s0")


def spread(space_name: str, low: float, high: float, n: int, classes: int, seed: int, exclude: set) -> list:
    """n random points of a space, one per log-spaced MAdds bin between low and high. Each bin is sampled with
    its upper edge as the budget: over-budget samples shrink toward it, so every bin fills quickly."""
    space = get_space(space_name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    edges = [low * (high / low) ** (i / n) for i in range(n + 1)]
    chosen = []
    for i in range(n):
        for _ in range(400):
            sample = space.sample(study.ask(), int(edges[i + 1]), num_classes=classes)
            if sample.spec is not None and edges[i] <= sample.macs <= edges[i + 1] \
                    and sample.spec.arch_hash not in exclude:
                chosen.append(sample.spec.replace(name=f"{space_name}_random_{i:02d}"))
                break
    return chosen


def architectures(classes: int, seed: int) -> list:
    """The fixed list, interleaved so that a partial file already mixes both spaces and the MAdds range."""
    micro = [lwnas.get_config(n).replace(num_classes=classes) for n in MICRO_NAMED]
    mobile = [lwnas.get_config(n).replace(num_classes=classes) for n in MOBILE_NAMED]
    seen = {s.arch_hash for s in micro + mobile}
    micro += spread("micro", 2e6, 24e6, 12, classes, seed, seen)
    mobile += spread("mobile", 40e6, 600e6, 4, classes, seed + 1, seen)
    order = micro[:4] + [s for pair in zip(micro[4:], mobile + [None] * len(micro)) for s in pair if s]
    return order + [s for s in mobile if s not in order]


@contextlib.contextmanager
def locked(path: Path):
    """The results file's current content, for this process alone until the block ends (other shards wait)."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield json.loads(path.read_text()) if path.exists() else None


def append(path: Path, key: str, entry: dict, fresh: dict) -> dict:
    """Append `entry` to the file's list `key` under the lock (re-read first: another shard may have appended
    meanwhile); `fresh` is the document to start from when there is no file yet. Returns the new document."""
    with locked(path) as document:
        document = document or fresh
        document.setdefault(key, []).append(entry)
        write(path, document)
    return document


def write(path: Path, document: dict):
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=1))
    os.replace(temporary, path)  # a kill never leaves a half-written file


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--output", default=str(OUTPUT))
    parser.add_argument("--limit", type=int, help="train at most this many new architectures, then stop")
    parser.add_argument("--seed", type=int, default=0, help="picks the random architectures")
    parser.add_argument("--shard", default="0/1", help="K/N: train only the architectures i with i %% N == K")
    args = parser.parse_args()
    shard, shards = map(int, args.shard.split("/"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    output = Path(args.output)
    settings = {"data": Path(args.data).name, "train": REFERENCE.to_dict(), "val": "official test split (all)",
                "architecture_seed": args.seed, "madds_at": "each space's resolution (224 px)"}
    with locked(output) as document:
        if document is not None and document["settings"] != settings:
            raise SystemExit(f"{output} was made with other settings; use another --output")
        done = {a["arch_hash"] for a in document["architectures"]} if document else set()
    train_set, val_set = load_data(args.data, REFERENCE)
    listed = architectures(len(train_set.classes), args.seed)
    todo = [s for i, s in enumerate(listed) if i % shards == shard and s.arch_hash not in done]
    print(f"{len(done)} of {len(listed)} architectures in {output}; shard {shard}/{shards} trains {len(todo)} on "
          f"{len(train_set)} / {len(val_set)} images, {REFERENCE.epochs} epochs each", flush=True)
    for spec in todo[:args.limit]:
        seed_everything(REFERENCE.seed)
        model = lwnas.build(spec)
        cost = lwnas.count(spec)
        start = time.perf_counter()
        history = train(model, train_set, val_set, REFERENCE,
                        on_epoch=lambda r: print(f"  {spec.name} epoch {r.epoch}: loss {r.loss:.3f} top-1 "
                                                 f"{r.top1:.2f}%", flush=True))
        entry = {
            "name": spec.name, "space": "micro" if spec.name.startswith(("micro", "micronet")) else "mobile",
            "arch_hash": spec.arch_hash, "madds": cost.macs, "params": cost.params, "spec": spec.to_yaml(),
            "top1": history[-1].top1, "best_top1": max(h.top1 for h in history),
            "wall_seconds": round(time.perf_counter() - start, 1), "history": [h.__dict__ for h in history]}
        document = append(output, "architectures", entry, {"settings": settings})
        print(f"{spec.name} {spec.arch_hash} {cost.macs / 1e6:.2f}M: top-1 {history[-1].top1:.2f}% "
              f"({time.perf_counter() - start:.0f} s); {len(document['architectures'])} in the file", flush=True)


if __name__ == "__main__":
    main()
