"""Does the supernet rank like stand-alone training? Trains a supernet of `micro` on Fashion-MNIST, scores the
reference architectures (benchmarks/results/rank_reference_fashion.json, built by rank_reference.py) with inherited
weights after batch-norm recalibration, and compares with their reference top-1: Kendall tau and Spearman rho
(scipy.stats), the supernet's cost in reference trainings and in search proxies, and subnet evaluations per minute.

Each variant and schedule length trains its own supernet (a cosine schedule over exactly that many epochs) in
runs/supernet_ranking/VARIANT-EPOCHSep (resumable: run the same command again); its scores are appended to
benchmarks/results/supernet_ranking_fashion.json under VARIANT@EPOCHS as they finish, so that tau against
epochs of supernet training is read across runs.

    python benchmarks/supernet_ranking.py [--variant sandwich|labels|uniform|separate-expand|fixed-widths]
        [--epochs 6] [--report]
    python benchmarks/supernet_ranking.py --probe [--variant sandwich] [--epochs 6]
    python benchmarks/supernet_ranking.py --variant sandwich --epochs 3 --few-shot 1

`--few-shot E` splits the trained VARIANT@EPOCHS supernet by the stem's group counts (one copy per value, each
trained E epochs more on its sub-space from the one-shot weights) and scores every reference architecture by the
split that holds it. `fixed-widths` is ranked against the reference of its own space (rank_reference.py --space).

`--probe` asks where sharing fails: it scores the largest and smallest subnets, every network one shared block
argument away from them (the next value of its domain), and random draws of the training distribution, each
with inherited weights on 1,000 test images, and prints the top-1 change per block type and argument.
"""
from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

warnings.filterwarnings("ignore")

from common import (FASHION as DATA, PROXY, REFERENCE_FILE as REFERENCE, RESULTS, RUNS as ALL_RUNS,  # noqa: E402
                    fidelity, locked, write)

from lwnas.model.spec import ArchSpec  # noqa: E402
from lwnas.search.space_files import get_space  # noqa: E402
from lwnas.supernet.extract import load_supernet, supernet_state  # noqa: E402
from lwnas.supernet.train import Sandwich, evaluate_subnet, train_supernet  # noqa: E402
from lwnas.train import checkpoint  # noqa: E402
from lwnas.train.loop import loaders  # noqa: E402
from lwnas.train.settings import TrainConfig
from lwnas.train.splits import load_data  # noqa: E402

RUNS = ALL_RUNS / "supernet_ranking"
OUTPUT = RESULTS / "supernet_ranking_fashion.json"
# the reference's data view (12,000 training images at 32 px, the official test split), fewer epochs
SUPERNET = TrainConfig(batch_size=64, lr=0.1, warmup_epochs=0.5, resolution=32, train_subset=12_000, seed=0,
                       bn_recalibration=16)
FIXED_WIDTHS = Path(__file__).with_name("supernet_fixed_widths_space.yaml")
# its own reference: `python benchmarks/rank_reference.py --space benchmarks/supernet_fixed_widths_space.yaml
# --count 6 --output benchmarks/results/rank_reference_fixed_widths_fashion.json`
FIXED_WIDTHS_REFERENCE = RESULTS / "rank_reference_fixed_widths_fashion.json"


@dataclass(frozen=True)
class Variant:
    sandwich: Sandwich
    separate: tuple[str, ...] = ()  # shared parameters given banks per value (SPOS's separate weights)
    space: str = "micro"
    reference: Path = REFERENCE  # architectures of the space trained alone (rank_reference.py)


SANDWICH = Sandwich(random_subnets=2, distill=True)  # largest + smallest + 2 random, distilled
FEW_SHOT_LR = 0.05  # each split continues from the one-shot supernet's weights
VARIANTS = {"sandwich": Variant(SANDWICH),
            "labels": Variant(Sandwich(random_subnets=2, distill=False)),  # the same four subnets, on the labels
            "uniform": Variant(Sandwich(random_subnets=2, distill=False, sandwich=False)),  # SPOS: 2 random
            # point 4 of the issue: the probe's worst shared choices kept apart (expansions, stem groups) ...
            "separate-expand": Variant(SANDWICH, ("micro_block.expand", "micro_stem.groups")),
            # ... or widths and group counts fixed per stage (ranked against references of that space)
            "fixed-widths": Variant(SANDWICH, space=str(FIXED_WIDTHS), reference=FIXED_WIDTHS_REFERENCE)}


def run_folder(name: str, epochs: int):
    return RUNS / f"{name}-{epochs}ep"


def stem_splits(space):
    """Few-shot NAS's split of `space` (Zhao et al. 2021): one sub-space per value of the stem's group counts, the
    one choice every network of `micro` passes that the probe found interfering (-43 points a step)."""
    import yaml

    from lwnas.search.space_files import space_from_text

    document = yaml.safe_load(space.text)
    stem = document["stem"][0]["blocks"][0]
    for groups in stem["groups"]:
        split = {**document, "name": f"{space.name}_stem_{groups[0]}x{groups[1]}",
                 "stem": [{**document["stem"][0], "blocks": [{**stem, "groups": [groups]}]}]}
        yield tuple(groups), space_from_text(yaml.safe_dump(split, sort_keys=False), f"split {groups}")


def run_few_shot(base: str, base_epochs: int, epochs: int, data: str):
    """Each split of the one-shot supernet `base` trained `epochs` more on its sub-space, from base's weights
    (the sandwich rule, lr FEW_SHOT_LR, no warm-up); every reference architecture scored by its own split."""
    space = get_space("micro")
    start_from = run_folder(base, base_epochs)
    if not (start_from / checkpoint.LAST).exists():
        raise SystemExit(f"train the one-shot supernet first: --variant {base} --epochs {base_epochs}")
    config = TrainConfig.from_dict({**SUPERNET.to_dict(), "epochs": epochs, "lr": FEW_SHOT_LR, "warmup_epochs": 0})
    key, splits = f"few-shot@{base_epochs}+{epochs}", {}
    for groups, sub in stem_splits(space):
        folder = RUNS / f"few-shot-{base}-{base_epochs}+{epochs}ep" / f"stem_{groups[0]}x{groups[1]}"
        state = checkpoint.load_latest(folder) if folder.exists() else None
        if state is None or state["epoch"] < epochs:
            train_supernet(space, data, folder, config, SANDWICH, resume=state is not None, within=sub,
                           init=start_from)
        splits[groups] = folder
    seconds = sum(h["seconds"] for folder in [start_from, *splits.values()]
                  for h in supernet_state(folder)["history"])
    train_set, val_set = load_data(data, config)
    _, _, train_loader, val_loader = loaders(train_set, val_set, config)
    scores, loaded = {}, {}  # loaded: the split in memory (one at a time: 79M weights each)
    specs = [(arch, ArchSpec.from_yaml(arch["spec"]).replace(num_classes=len(train_set.classes)))
             for arch in _reference()["architectures"] if arch["space"] == "micro"]
    for arch, spec in sorted(specs, key=lambda item: item[1].stem[0].kwargs["groups"]):
        groups = tuple(spec.stem[0].kwargs["groups"])
        if groups not in loaded:
            loaded = {groups: load_supernet(splits[groups])[0]}
        supernet = loaded[groups]
        begin = time.perf_counter()
        _, top1, _ = evaluate_subnet(supernet, spec, train_loader, val_loader, config.bn_recalibration)
        scores[arch["arch_hash"]] = {"name": arch["name"], "top1": top1, "seconds": time.perf_counter() - begin,
                                     "split": f"stem {groups[0]}x{groups[1]}"}
        print(f"{key}: {arch['name']} (stem {groups}) inherited top-1 {top1:.2f}% (reference {arch['top1']:.2f}%)",
              flush=True)
    with locked(OUTPUT) as document:
        document["variants"][key] = {"epochs": base_epochs + epochs, "train_seconds": round(seconds),
                                     "sandwich": str(SANDWICH), "split": "stem groups", "base": base,
                                     "split_lr": FEW_SHOT_LR, "scores": scores}
        write(OUTPUT, document)


def run_variant(name: str, epochs: int, data: str):
    variant = VARIANTS[name]
    space = get_space(variant.space)
    config = TrainConfig.from_dict({**SUPERNET.to_dict(), "epochs": epochs})
    folder, key = run_folder(name, epochs), f"{name}@{epochs}"
    state = checkpoint.load_latest(folder) if folder.exists() else None
    if state is None or state["epoch"] < epochs:
        start = time.perf_counter()
        train_supernet(space, data, folder, config, variant.sandwich, resume=state is not None,
                       epochs=epochs if state is not None else None, separate=variant.separate)
        print(f"{name}: trained in {time.perf_counter() - start:.0f} s this run", flush=True)
    supernet, state = load_supernet(folder)
    seconds = sum(h["seconds"] for h in state["history"])
    reference = [a for a in _reference(variant.reference)["architectures"]
                 if supernet.space.contains(ArchSpec.from_yaml(a["spec"]))]
    train_set, val_set = load_data(data, config)
    _, _, train_loader, val_loader = loaders(train_set, val_set, config)
    with locked(OUTPUT) as document:
        document = document or {"settings": {"supernet": config.to_dict(), "reference": str(REFERENCE.name)},
                                "variants": {}}
        entry = document["variants"].setdefault(key, {"scores": {}})
        entry.update(epochs=state["epoch"], train_seconds=round(seconds), sandwich=str(variant.sandwich),
                     **({"separate": list(variant.separate)} if variant.separate else {}),
                     **({"space": space.name} if variant.space != "micro" else {}))
        write(OUTPUT, document)
        done = entry["scores"]
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
            latest["variants"][key]["scores"][arch["arch_hash"]] = done[arch["arch_hash"]]
            write(OUTPUT, latest)


def probe(name: str, epochs: int, data: str, draws: int = 8):
    """Inherited top-1 of the extremes, of their one-argument neighbours and of random draws (see the docstring)."""
    import numpy as np

    from lwnas.errors import LwnasError
    from lwnas.supernet.sharing import rule

    supernet, state = load_supernet(run_folder(name, epochs))
    config = TrainConfig.from_dict({**SUPERNET.to_dict(), "val_subset": 1000})
    train_set, val_set = load_data(data, config)
    _, _, train_loader, val_loader = loaders(train_set, val_set, config)

    def top1(spec):
        return evaluate_subnet(supernet, spec, train_loader, val_loader, config.bn_recalibration)[1]

    domains = {}  # block type -> argument -> every value the space allows it
    for slot in list(supernet.space.stem) + list(supernet.space.stages) + [None]:
        for choice in (slot.choices if slot else supernet.space.head):
            for arg, values in choice.domains:
                domains.setdefault(choice.type, {}).setdefault(arg, set()).update(values)
    rows = []
    for base_name, base in (("largest", supernet.largest), ("smallest", supernet.smallest)):
        base_top1 = top1(base)
        print(f"{base_name}: {base_top1:.1f}%", flush=True)
        for index, (path, block) in enumerate(base.blocks()):
            for arg, value in block.args:
                shared = rule(block.type, arg, supernet.separate) in ("max", "min")
                if not shared or arg not in domains.get(block.type, {}):
                    continue
                values = sorted(domains[block.type][arg])
                step = values.index(value) + (-1 if base_name == "largest" else 1)
                if not 0 <= step < len(values):
                    continue
                try:
                    spec = _with_arg(base, index, arg, values[step])
                    if not supernet.space.contains(spec):
                        continue
                    changed = top1(spec)
                except LwnasError:
                    continue  # the new value does not fit the block's channels
                rows.append({"base": base_name, "path": path, "type": block.type, "arg": arg, "from": str(value),
                             "to": str(values[step]), "top1": changed, "change": changed - base_top1})
                print(f"  {path} {block.type}.{arg} {value} -> {values[step]}: {changed:.1f}% "
                      f"({changed - base_top1:+.1f})", flush=True)
    rng = np.random.default_rng(0)
    random_top1 = [top1(supernet.space.random_sample(rng, supernet.num_classes).spec) for _ in range(draws)]
    print(f"random draws: {', '.join(f'{t:.1f}' for t in random_top1)}%")
    by_kind = {}
    for row in rows:
        by_kind.setdefault((row["type"], row["arg"]), []).append(row["change"])
    for (kind, arg), changes in sorted(by_kind.items(), key=lambda item: np.mean(item[1])):
        print(f"{kind}.{arg}: mean change {np.mean(changes):+.1f} points over {len(changes)}")
    with locked(OUTPUT) as document:
        document["variants"][f"{name}@{epochs}"]["probe"] = {"epochs": state["epoch"], "neighbours": rows,
                                              "random_draws": random_top1}
        write(OUTPUT, document)


def _with_arg(spec: ArchSpec, index: int, arg: str, value) -> ArchSpec:
    """`spec` with one argument of its `index`-th block (in ArchSpec.blocks() order) changed."""
    data = spec.to_dict()
    blocks = data["stem"] + [block for stage in data["stages"] for block in stage["blocks"]] + [data["head"]]
    blocks[index][arg] = list(value) if isinstance(value, tuple) else value
    return ArchSpec.from_dict(data)


def _reference(path: Path = REFERENCE) -> dict:
    import json

    return json.loads(path.read_text())


def report():
    import json

    import numpy as np

    document = json.loads(OUTPUT.read_text())
    reference = _reference()
    micro = {a["arch_hash"]: a for a in reference["architectures"] if a["space"] == "micro"}
    reference_seconds = np.mean([a["wall_seconds"] for a in micro.values()])
    trained = reference["settings"]["train"]  # a proxy costs the reference's time per image seen
    proxy_seconds = (reference_seconds * PROXY.epochs * PROXY.train_subset
                     / (trained["epochs"] * trained["train_subset"]))
    print("| supernet training | epochs | archs | Kendall tau | Spearman rho | top-3 overlap | cost (reference "
          "trainings) | cost (search proxies) | evaluations per minute |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, v in document["variants"].items():
        variant, archs = VARIANTS.get(name.partition("@")[0]), micro
        if variant is not None and variant.reference != REFERENCE:  # ranked against its own space's reference
            if not variant.reference.exists():
                continue
            archs = {a["arch_hash"]: a for a in _reference(variant.reference)["architectures"]}
        hashes = [h for h in v["scores"] if h in archs]
        if len(hashes) < 4:
            continue
        f = fidelity([v["scores"][h]["top1"] for h in hashes], [archs[h]["top1"] for h in hashes], 3)
        per_eval = np.mean([v["scores"][h]["seconds"] for h in hashes])
        print(f"| {name} | {v['epochs']} | {len(hashes)} | {f['kendall_tau']:.3f} | "
              f"{f['spearman_rho']:.3f} | {f['top3_overlap']:.2f} | {v['train_seconds'] / reference_seconds:.1f} | "
              f"{v['train_seconds'] / proxy_seconds:.0f} | {60 / per_eval:.1f} |")
    print(f"(a reference training: {reference_seconds:.0f} s mean over the {len(micro)} micro architectures; "
          f"a search proxy, scaled by images seen: {proxy_seconds:.0f} s)")
    _report_against_repeats(document, micro, reference.get("repeats", []))


def _report_against_repeats(document: dict, micro: dict, repeated: list):
    """Tau on the architectures the reference trained twice (rank_reference.py --repeat-seed), against each seed:
    how much of a row's tau the reference's own seed decides."""
    from scipy import stats

    repeats = {}
    for entry in repeated:
        repeats.setdefault(entry["seed"], {})[entry["arch_hash"]] = entry["top1"]
    if not repeats:
        return
    seeds = {0: {h: a["top1"] for h, a in micro.items()}, **repeats}
    both = sorted(set.intersection(*(set(s) for s in seeds.values())))
    print(f"\nOn the {len(both)} architectures trained with seeds {', '.join(map(str, seeds))} (seed against seed: "
          + ", ".join(f"{stats.kendalltau([seeds[0][h] for h in both], [s[h] for h in both]).statistic:.3f}"
                      for seed, s in seeds.items() if seed != 0) + "):")
    print("| supernet training | " + " | ".join(f"tau against seed {seed}" for seed in seeds) + " |")
    print("|---" * (len(seeds) + 1) + "|")
    for name, v in document["variants"].items():
        if "before" in name or not all(h in v["scores"] for h in both):
            continue
        scores = [v["scores"][h]["top1"] for h in both]
        print(f"| {name} | " + " | ".join(f"{stats.kendalltau(scores, [s[h] for h in both]).statistic:.3f}"
                                          for s in seeds.values()) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="sandwich")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--report", action="store_true", help="print the README table and stop")
    parser.add_argument("--probe", action="store_true", help="where sharing fails, on the trained variant")
    parser.add_argument("--few-shot", type=int, metavar="EPOCHS",
                        help="split the trained VARIANT@EPOCHS supernet by the stem's group counts and train each "
                             "split this many epochs more (few-shot NAS)")
    args = parser.parse_args()
    if args.report:
        report()
        return
    if args.probe:
        probe(args.variant, args.epochs, args.data)
        return
    if args.few_shot:
        run_few_shot(args.variant, args.epochs, args.few_shot, args.data)
        report()
        return
    run_variant(args.variant, args.epochs, args.data)
    report()


if __name__ == "__main__":
    main()
