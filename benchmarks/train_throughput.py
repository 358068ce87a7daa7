"""Training images/s (SGD steps on one batch, one CPU thread) of every named config and a few random networks per
space, with lwnas' fast paths for small maps (depthwise convolutions unfolded, grouped 1x1 convolutions as a batched
matmul; the default) and with every convolution through Paddle's conv op (before), measured alternately in one
process; MicroNet-M2 without Dynamic Shift-Max (every `dy` zero: ReLU6 where the paper has Shift-Max) as the
same-MAdds network the issue compares with; and, given a checkout of the authors' code and PyTorch, their MicroNet
M0-M3 on the same CPU, batch and resolution.

    python benchmarks/train_throughput.py [--micronet-checkout /path/to/micronet] [--resolution 32]
        [--batch-size 64] [--steps 3] [--output benchmarks/results/train_throughput.json]

Each row keeps the machine's 1-minute load average when it was measured (other processes slow both modes
alike, not always equally). Results are written after each network; a run started again skips what its output
file holds. `--networks NAME ...` measures those again (e.g. on a quiet machine: micronet_m2
micronet_m2_no_shift_max micro_random_08 and the official MicroNets' names).
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from common import EVAL_SETTINGS, REFERENCE_FILE, RESULTS, official_model, official_modules, write  # noqa: E402

import lwnas  # noqa: E402
from lwnas.model.blocks import common as blocks_common  # noqa: E402
from lwnas.model.configs import config_names  # noqa: E402
from lwnas.model.spec import ArchSpec  # noqa: E402
from lwnas.search.space_files import get_space  # noqa: E402

RANDOM_PER_SPACE = 3
UNFOLD, BATCHED = blocks_common.UNFOLD_DEPTHWISE_WORK, blocks_common.GROUPED_POINTWISE_PIXELS
LARGE_MADDS = 20e6  # at the training resolution: networks above it train at batch 16 (FasterNet-L: 2 images/s)


def paddle_rates(spec, resolution: int, batch: int, steps: int, rounds: int = 3) -> tuple[float, float]:
    """Training images/s of `spec` (forward, cross-entropy, backward, a momentum step) through Paddle's conv op
    (before) and with the fast paths for small maps (after): rounds of `steps` steps alternate between the
    two on the same network, and each keeps its fastest round, so that load from other processes on the machine
    falls on both alike."""
    paddle.seed(0)
    model = lwnas.build(spec)
    optimizer = paddle.optimizer.Momentum(0.01, parameters=model.parameters())
    x = paddle.randn([batch, spec.in_channels, resolution, resolution])
    y = paddle.randint(0, spec.num_classes, [batch])

    def step():
        paddle.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.clear_grad()

    best = {False: 0.0, True: 0.0}
    for _ in range(rounds):
        for unfold in (False, True):
            # 0: every conv through the conv op
            blocks_common.UNFOLD_DEPTHWISE_WORK = UNFOLD if unfold else 0
            blocks_common.GROUPED_POINTWISE_PIXELS = BATCHED if unfold else 0
            best[unfold] = max(best[unfold], _rate(step, batch, steps))
    blocks_common.UNFOLD_DEPTHWISE_WORK, blocks_common.GROUPED_POINTWISE_PIXELS = UNFOLD, BATCHED
    return best[False], best[True]


def versus_official(name: str, modules, resolution: int, batch: int, steps: int, rounds: int = 3):
    """(ours, official) training images/s of MicroNet `name`: lwnas' network in Paddle and the authors' in PyTorch,
    rounds alternating between the two, each keeping its fastest."""
    import torch

    torch.manual_seed(0)
    official = official_model(modules, EVAL_SETTINGS[name]).train()
    torch_optimizer = torch.optim.SGD(official.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.randn(batch, 3, resolution, resolution), torch.randint(0, 1000, (batch,))

    def torch_step():
        torch.nn.functional.cross_entropy(official(tx), ty).backward()
        torch_optimizer.step()
        torch_optimizer.zero_grad()

    paddle.seed(0)
    ours = lwnas.build(lwnas.get_config(name).replace(resolution=resolution))
    optimizer = paddle.optimizer.Momentum(0.01, parameters=ours.parameters())
    x, y = paddle.randn([batch, 3, resolution, resolution]), paddle.randint(0, 1000, [batch])

    def paddle_step():
        paddle.nn.functional.cross_entropy(ours(x), y).backward()
        optimizer.step()
        optimizer.clear_grad()

    best = [0.0, 0.0]
    for _ in range(rounds):
        best = [max(best[0], _rate(paddle_step, batch, steps)), max(best[1], _rate(torch_step, batch, steps))]
    return best


def _rate(step, batch: int, steps: int) -> float:
    step()  # warm-up: allocations, kernel choices
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def without_shift_max(spec):
    """The same network with every Dynamic Shift-Max replaced by ReLU6 (or nothing, where the paper's last
    activation is Shift-Max): the same convolutions, the same MAdds less Shift-Max's."""
    data = spec.to_dict()
    for stage in data["stages"]:
        for block in stage["blocks"]:
            if block["type"] == "micro_block":
                block["dy"] = [0, 0, 0]
    return spec.from_dict({**data, "name": f"{spec.name}_no_shift_max"})


def networks(seed: int = 0):
    """(name, spec): the issue's comparison first (M2, M2 without Shift-Max, micro_random_08), then the other named
    configs and RANDOM_PER_SPACE random points of each space."""
    m2 = lwnas.get_config("micronet_m2")
    out = [("micronet_m2", m2), ("micronet_m2_no_shift_max", without_shift_max(m2))]
    reference = json.loads(REFERENCE_FILE.read_text())["architectures"]
    out += [(a["name"], ArchSpec.from_yaml(a["spec"]).replace(num_classes=1000)) for a in reference
            if a["name"] == "micro_random_08"]  # 12.3M MAdds of `micro`: the comparison
    out += [(name, lwnas.get_config(name)) for name in config_names() if name != "micronet_m2"]
    for space_name in ("micro", "mobile", "shuffle", "fast", "mobileone"):
        rng = np.random.default_rng((seed, len(space_name)))
        space = get_space(space_name)
        for i in range(RANDOM_PER_SPACE):
            out.append((f"{space_name}_random_{i}", space.random_sample(rng, 1000).spec))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micronet-checkout", help="a checkout of github.com/liyunsheng13/micronet (needs torch)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round (3 rounds per mode)")
    parser.add_argument("--output", default=str(RESULTS / "train_throughput.json"))
    parser.add_argument("--networks", nargs="+", metavar="NAME",
                        help="measure only these networks (and the official MicroNets of that name), again")
    parser.add_argument("--report", action="store_true", help="print the tables of the output file and exit")
    args = parser.parse_args()
    output = Path(args.output)
    if args.report:
        report(json.loads(output.read_text()))
        return
    paddle.set_device("cpu")
    settings = {"resolution": args.resolution, "batch_size": args.batch_size, "steps": args.steps, "threads": 1,
                "paddle": paddle.__version__}
    results = json.loads(output.read_text()) if output.exists() else {}
    if results.get("settings") != settings:  # other settings: measure everything again
        results = {"settings": settings, "networks": [], "versus_official": {}}
    if args.networks:  # measured again: their old rows go
        results["networks"] = [row for row in results["networks"] if row["network"] not in args.networks]
        results["versus_official"] = {name: row for name, row in results["versus_official"].items()
                                      if name not in args.networks}
    done = {row["network"] for row in results["networks"]}
    wanted = set(args.networks) if args.networks else None
    if args.micronet_checkout:
        import torch

        torch.set_num_threads(1)
        modules = official_modules(args.micronet_checkout)
        for name in EVAL_SETTINGS:
            if name in results["versus_official"] or (wanted and name not in wanted):
                continue
            ours, theirs = versus_official(name, modules, args.resolution, args.batch_size, args.steps)
            results["versus_official"][name] = {"lwnas": round(ours, 1), "official_pytorch": round(theirs, 1),
                                                "load_average": round(os.getloadavg()[0], 1)}
            write(output, results)
            print(f"{name:28s} lwnas {ours:7.1f}  official PyTorch {theirs:7.1f} img/s  x{ours / theirs:.2f}",
                  flush=True)
    for name, spec in networks():
        if name in done or (wanted and name not in wanted):
            continue
        spec = spec.replace(resolution=args.resolution)
        madds = lwnas.count(spec).macs
        batch = args.batch_size if madds <= LARGE_MADDS else 16
        before, after = paddle_rates(spec, args.resolution, batch, args.steps)
        results["networks"].append({"network": name, "madds": madds, "batch": batch, "before": round(before, 1),
                                    "after": round(after, 1), "load_average": round(os.getloadavg()[0], 1)})
        write(output, results)
        print(f"{name:28s} {madds / 1e6:8.2f}M MAdds  before {before:7.1f}  after {after:7.1f} img/s  "
              f"x{after / before:.2f}", flush=True)
    if all(name in {row["network"] for row in results["networks"]} for name in SUMMARY_NETWORKS):
        results["summary"] = summary(results)
    write(output, results)
    print(json.dumps(results.get("summary"), indent=1))


SUMMARY_NETWORKS = ("micronet_m2", "micronet_m2_no_shift_max", "micro_random_08")


def summary(results: dict) -> dict:
    """The issue's ratios: M2 against M2 without Shift-Max and against `micro_random_08` (same MAdds), before and
    after; the networks slower than before; M2 against the official PyTorch MicroNet."""
    by_name = {row["network"]: row for row in results["networks"]}
    m2, plain, same_madds = by_name["micronet_m2"], by_name["micronet_m2_no_shift_max"], by_name["micro_random_08"]
    out = {f"m2_vs_{other}_{when}": round(m2[when] / row[when], 3)
           for other, row in (("no_shift_max", plain), ("micro_random_08", same_madds)) for when in ("before", "after")}
    out["slower_than_before"] = [r["network"] for r in results["networks"] if r["after"] < 0.95 * r["before"]]
    official = results["versus_official"].get("micronet_m2")
    if official:
        out["m2_vs_official"] = round(official["lwnas"] / official["official_pytorch"], 3)
    return out



def report(results: dict):
    """The docs' tables: lwnas against the official MicroNets, then every network before and after."""
    print("| network | lwnas img/s | official PyTorch img/s | ratio | load |\n|---|---|---|---|---|")
    for name, row in results["versus_official"].items():
        print(f"| {name} | {row['lwnas']} | {row['official_pytorch']} | {row['lwnas'] / row['official_pytorch']:.2f} | "
              f"{row.get('load_average', '')} |")
    print("\n| network | MAdds at 32 px | batch | before img/s | after img/s | after / before | load |\n"
          "|---|---|---|---|---|---|---|")
    for row in results["networks"]:
        print(f"| {row['network']} | {row['madds'] / 1e6:.2f}M | {row['batch']} | {row['before']} | {row['after']} | "
              f"{row['after'] / row['before']:.2f} | {row.get('load_average', '')} |")
    print(json.dumps(results.get("summary"), indent=1))


if __name__ == "__main__":
    main()
