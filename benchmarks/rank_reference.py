"""The reference ranking that proxies are scored against: architectures of `micro` and `mobile` trained with a
long schedule on real images (Fashion-MNIST), one at a time, appended to a JSON file as each finishes.

A run stopped at any point resumes: architectures already in the file are skipped, one stopped mid-training
continues from its last epoch's checkpoint (runs/rank_reference/HASH/), and the file's settings must equal
this run's. The architecture list is fixed by the seed and the file (MicroNet M0-M3 and random
points of `micro`, one per MAdds bin over 2-24M; named configs and random points of `mobile`): a bin keeps the
point the file holds for it, so every session adds to the same list even after the sampler changes.

    python benchmarks/rank_reference.py [--data ../shared/data/fashion_mnist/fashion-mnist-python.tar.gz]
        [--output benchmarks/results/rank_reference_fashion.json] [--limit N] [--repeat-seed 1]
    python benchmarks/rank_reference.py --space FILE.yaml --count 6 --output OTHER.json

With --space, the list is COUNT random points of that space instead, one per log-spaced MAdds bin between its
smallest and largest network (a reference for a supernet of another space: supernet_ranking.py).

Paddle trains these small networks on one core: start the command once per core. Each process claims the next
architecture that is neither in the file nor being trained by another live process, and appends to the same
file under a lock. With --repeat-seed S it trains REPEATED (MicroNet M0-M2 and the seven cheapest random `micro`
points) again with training seed S, on the same images, into the file's `repeats` list: the seed-to-seed spread
and the noise ceiling of any proxy (rank_fidelity.py).
"""
from __future__ import annotations

import argparse
import shutil
import time
import warnings
from dataclasses import replace
from pathlib import Path

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from common import FASHION as DATA, REFERENCE, REFERENCE_FILE, RUNS as ALL_RUNS, append, claim, locked  # noqa: E402

import lwnas  # noqa: E402
from lwnas.model.spec import ArchSpec  # noqa: E402
from lwnas.search.space_files import get_space  # noqa: E402
from lwnas.train import checkpoint, data  # noqa: E402
from lwnas.train.devices import seed_everything
from lwnas.train.loop import train  # noqa: E402

OUTPUT = REFERENCE_FILE
RUNS = ALL_RUNS / "rank_reference"
MICRO_NAMED = ("micronet_m0", "micronet_m1", "micronet_m2", "micronet_m3")
MOBILE_NAMED = ("mobilenetv3_small_x1_0", "shufflenet_v2_x1_0", "asymmnet_small_x1_0", "mobileone_s0")
REPEATED = MICRO_NAMED[:3] + tuple(f"micro_random_{i:02d}" for i in range(7))  # trained with a second seed too
BIN_DRAWS = 5000


def spread(space_name: str, low: float, high: float, n: int, classes: int, seed: int, exclude: set,
           trained: dict) -> list:
    """n random points of a space, one per log-spaced MAdds bin between low and high. A bin whose point is already
    in the results file (`trained`: name -> spec) keeps it; any other bin draws with its own generator (seed, bin),
    uniformly under the bin's upper edge until a network lands in the bin, so no bin's point depends on another's
    or on how earlier versions of the sampler drew."""
    space = get_space(space_name)
    edges = [low * (high / low) ** (i / n) for i in range(n + 1)]
    chosen = []
    for i in range(n):
        name = f"{space.name}_random_{i:02d}"
        if name in trained:
            chosen.append(trained[name])
            continue
        rng = np.random.default_rng((seed, i))
        for _ in range(BIN_DRAWS):
            sample = space.random_sample(rng, classes, int(edges[i + 1]))
            if sample.macs >= edges[i] and sample.spec.arch_hash not in exclude:
                chosen.append(sample.spec.replace(name=name))
                break
        else:
            raise SystemExit(f"{space_name}: no network in {edges[i] / 1e6:.2f}-{edges[i + 1] / 1e6:.2f}M MAdds "
                             f"in {BIN_DRAWS} draws")
    return chosen


def architectures(classes: int, seed: int, trained: dict) -> list:
    """The fixed list, interleaved so that a partial file already mixes both spaces and the MAdds range."""
    micro = [lwnas.get_config(n).replace(num_classes=classes) for n in MICRO_NAMED]
    mobile = [lwnas.get_config(n).replace(num_classes=classes) for n in MOBILE_NAMED]
    seen = {s.arch_hash for s in micro + mobile}
    micro += spread("micro", 2e6, 24e6, 12, classes, seed, seen, trained)
    mobile += spread("mobile", 40e6, 600e6, 4, classes, seed + 1, seen, trained)
    order = micro[:4] + [s for pair in zip(micro[4:], mobile + [None] * len(micro)) for s in pair if s]
    return order + [s for s in mobile if s not in order]


def claim_spec(path: Path, listed: list, done: set[str], tag: str = ""):
    """The first of `listed` whose hash (+ tag) is neither `done` nor claimed by another live process, now
    claimed by this one; None when nothing is left."""
    job = claim(path, [s.arch_hash + tag for s in listed], done)
    return next((s for s in listed if s.arch_hash + tag == job), None)


def same_settings(stored: dict, settings: dict) -> bool:
    """Equal, counting a training setting added to lwnas since the file was written as its default (it did not
    exist then, so it could not differ)."""
    return {**stored, "train": {**settings["train"], **stored["train"]}} == settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--output", default=str(OUTPUT))
    parser.add_argument("--limit", type=int, help="train at most this many new architectures, then stop")
    parser.add_argument("--seed", type=int, default=0, help="picks the random architectures")
    parser.add_argument("--repeat-seed", type=int, help="train the REPEATED architectures again with this seed")
    parser.add_argument("--space", help="a space file: train --count random points of it instead of the fixed list")
    parser.add_argument("--count", type=int, default=6, help="with --space: how many (default 6)")
    args = parser.parse_args()
    if args.space and (args.repeat_seed is not None or args.output == str(OUTPUT)):
        parser.error("--space needs its own --output and takes no --repeat-seed")
    output = Path(args.output)
    settings = {"data": Path(args.data).name, "train": REFERENCE.to_dict(), "val": "official test split (all)",
                "architecture_seed": args.seed, "madds_at": "each space's resolution (224 px)",
                **({"space": Path(args.space).name, "count": args.count} if args.space else {})}
    with locked(output) as document:
        if document is not None and not same_settings(document["settings"], settings):
            raise SystemExit(f"{output} was made with other settings; use another --output")
        entries = document["architectures"] if document else []
        repeats = document.get("repeats", []) if document else []
    trained = {a["name"]: ArchSpec.from_yaml(a["spec"]) for a in entries}
    # the reference's images: 12,000 of the official training images drawn by seed 0, scored on the test split
    train_set = data.load(args.data, "train", REFERENCE.resolution).subset(REFERENCE.train_subset, 0)
    val_set = data.load(args.data, "test", REFERENCE.resolution)
    classes = len(train_set.classes)
    if args.space:
        space = get_space(args.space)
        low, high = (lwnas.count(s(classes).spec).macs for s in (space.smallest, space.largest))
        listed = spread(args.space, low, high + 1, args.count, classes, args.seed, set(), trained)
    else:
        listed = architectures(classes, args.seed, trained)
    seed, key, tag = REFERENCE.seed, "architectures", ""
    done = {a["arch_hash"] for a in entries}
    if args.repeat_seed is not None:
        seed, key, tag = args.repeat_seed, "repeats", f":seed{args.repeat_seed}"
        listed = [s for s in listed if s.name in REPEATED]
        done = {a["arch_hash"] + tag for a in repeats if a["seed"] == seed}
    config = replace(REFERENCE, seed=seed)
    print(f"{len(done)} of {len(listed)} {key} with seed {seed} in {output}; training the rest on {len(train_set)} / "
          f"{len(val_set)} images, {REFERENCE.epochs} epochs each", flush=True)
    trained_here = 0
    while args.limit is None or trained_here < args.limit:
        spec = claim_spec(output, listed, done, tag)
        if spec is None:
            break
        trained_here += 1
        seed_everything(seed)
        model = lwnas.build(spec)
        cost = lwnas.count(spec)
        folder = RUNS / (spec.arch_hash + tag.replace(":", "_"))  # a checkpoint per epoch: a stopped training
        # continues where it was
        state = checkpoint.load_latest(folder)
        earlier = state["wall_seconds"] if state else 0.0
        start = time.perf_counter()
        if state:
            print(f"  {spec.name}: continuing after epoch {state['epoch']}", flush=True)

        def keep(epoch_state: dict, best: bool):
            checkpoint.save(folder, {**epoch_state, "spec": spec.to_yaml(),
                                     "wall_seconds": earlier + time.perf_counter() - start})

        history = train(model, train_set, val_set, config, resume=state, save=keep,
                        on_epoch=lambda r: print(f"  {spec.name} epoch {r.epoch}: loss {r.loss:.3f} top-1 "
                                                 f"{r.top1:.2f}%", flush=True))
        wall = earlier + time.perf_counter() - start
        entry = {
            "name": spec.name, "space": space.name if args.space else
            "micro" if spec.name.startswith(("micro", "micronet")) else "mobile",
            "arch_hash": spec.arch_hash, "madds": cost.macs, "params": cost.params, "spec": spec.to_yaml(),
            "top1": history[-1].top1, "best_top1": max(h.top1 for h in history),
            "wall_seconds": round(wall, 1), "history": [h.__dict__ for h in history]}
        if args.repeat_seed is not None:
            entry = {"seed": seed, **{k: v for k, v in entry.items() if k not in ("spec", "madds", "params")}}
        document = append(output, key, entry, {"settings": settings})
        # every process's finished ones: a claim is dropped once its job is done, so a stale set would claim again
        done = {a["arch_hash"] + tag for a in document[key] if args.repeat_seed is None or a["seed"] == seed}
        shutil.rmtree(folder)
        print(f"{spec.name} {spec.arch_hash} {cost.macs / 1e6:.2f}M: top-1 {history[-1].top1:.2f}% "
              f"({wall:.0f} s); {len(document[key])} {key} in the file", flush=True)


if __name__ == "__main__":
    main()
