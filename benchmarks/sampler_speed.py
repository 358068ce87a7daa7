"""Samples per second of space sampling + analytic counting, and the fraction of samples still over
budget (rejected before any training), with and without shrinking, at several budgets.

    python benchmarks/sampler_speed.py [--space micro] [--samples 300] [--budgets 6M,12M,24M]
"""
import argparse
import time
import warnings

warnings.filterwarnings("ignore")

import optuna  # noqa: E402

from lwnas.budget import parse_count  # noqa: E402
from lwnas.search.space_files import get_space  # noqa: E402


def measure(space, budget, shrink, samples, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rejected = repaired = 0
    start = time.perf_counter()
    for _ in range(samples):
        result = space.sample(study.ask(), budget, shrink=shrink)
        rejected += result.spec is None or result.macs > budget
        repaired += result.repaired
    elapsed = time.perf_counter() - start
    return samples / elapsed, rejected / samples, repaired / samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="micro")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--budgets", default="6M,12M,24M")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space(args.space)
    print(f"space {space.name}: smallest network {space.smallest().macs / 1e6:.2f}M MAdds; "
          f"{args.samples} random samples per row")
    print(f"{'budget':>7}  {'strategy':>8}  {'samples/s':>9}  {'rejected':>8}  {'repaired blocks/sample':>22}")
    for text in args.budgets.split(","):
        budget = parse_count(text)
        for shrink in (False, True):
            rate, rejected, repaired = measure(space, budget, shrink, args.samples)
            print(f"{text:>7}  {'shrink' if shrink else 'reject':>8}  {rate:9.0f}  {100 * rejected:7.1f}%  "
                  f"{repaired:22.2f}")


if __name__ == "__main__":
    main()
