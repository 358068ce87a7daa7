"""TinyNAS's space check (Lin et al. 2020, MCUNet) for `micro` under a MAdds budget, without training: for each
variant of the space, the MAdds of uniformly drawn networks that fit the budget. TinyNAS keeps the variant whose
feasible networks use the most of the budget (higher MAdds under the same constraint went with higher accuracy
in their spaces); the share of draws that fit says how hard the budget is to sample.

Variants: the space as shipped; its later stages (s2-s4) with MicroNet blocks only; with the other families only
(inverted residual, AsymmNet, ShuffleNet v2); and the shipped space with one block more allowed in every stage.

    python benchmarks/space_check.py [--budget 12M] [--draws 20000]
"""
from __future__ import annotations

import argparse
import copy

import numpy as np
import yaml
from common import RESULTS, write

from lwnas.budget import parse_count
from lwnas.search.space_files import space_from_text, space_path

LATER = ("s2", "s3", "s4")


def variants() -> dict[str, dict]:
    shipped = yaml.safe_load(space_path("micro").read_text())

    def edit(name, change):
        data = copy.deepcopy(shipped)
        data["name"] = f"micro-{name}"
        for stage in data["stages"]:
            change(stage)
        return data

    def only(keep):
        def change(stage):
            if stage["name"] in LATER:
                stage["blocks"] = [b for b in stage["blocks"] if keep(b["type"])]
        return change

    def deeper(stage):
        depth = stage["depth"]
        if isinstance(depth, list):
            stage["depth"] = [depth[0], depth[1] + 1]

    return {"shipped": shipped, "micronet-blocks-only": edit("micronet", only(lambda t: t == "micro_block")),
            "other-families-only": edit("others", only(lambda t: t != "micro_block")),
            "one-block-deeper": edit("deeper", deeper)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="12M")
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    budget = parse_count(args.budget, "--budget")
    rows = {}
    for name, data in variants().items():
        space = space_from_text(yaml.safe_dump(data, sort_keys=False), name)
        rng = np.random.default_rng(0)
        fitting = []
        for _ in range(args.draws):
            sample = space.random_sample(rng, args.classes, attempts=1)
            if sample.spec is not None and sample.macs <= budget:
                fitting.append(sample.macs)
        share = len(fitting) / args.draws
        q = np.percentile(fitting, [25, 50, 75]) / budget if fitting else [0, 0, 0]
        rows[name] = {"share_fitting": round(share, 4), "fitting": len(fitting),
                      "mean_madds_over_budget": round(float(np.mean(fitting)) / budget, 3) if fitting else 0,
                      "quartiles_over_budget": [round(float(v), 3) for v in q]}
        print(f"{name:22s} {100 * share:5.2f}% of draws fit; MAdds/budget of those: mean "
              f"{rows[name]['mean_madds_over_budget']:.3f}, quartiles {rows[name]['quartiles_over_budget']}",
              flush=True)
    write(RESULTS / f"space_check_micro_{args.budget}.json",
          {"budget": budget, "draws": args.draws, "classes": args.classes, "variants": rows})


if __name__ == "__main__":
    main()
