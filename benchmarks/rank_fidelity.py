"""Does the proxy schedule rank architectures like a 4x longer one? Trains N architectures of a space with
the proxy schedule and with 4x the epochs on the same data, prints both top-1s, Kendall's tau between the two
rankings and what each schedule cost.

    python benchmarks/rank_fidelity.py [--data PATH|synthetic] [--space micro] [--budget 24M] [--archs 8]
"""
import argparse
import time
import warnings

warnings.filterwarnings("ignore")

import optuna  # noqa: E402

import lwnas  # noqa: E402
from lwnas.budget import parse_count  # noqa: E402
from lwnas.space import get_space  # noqa: E402
from lwnas.train import TrainConfig, load_data, seed_everything, train  # noqa: E402


def kendall_tau(a, b):
    """Tau-b without ties correction beyond skipping tied pairs."""
    concordant = discordant = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            s = (a[i] - a[j]) * (b[i] - b[j])
            concordant += s > 0
            discordant += s < 0
    pairs = concordant + discordant
    return (concordant - discordant) / pairs if pairs else 0.0


def diverse_specs(space, budget, n, seed):
    """n distinct architectures, spread over MAdds: sample many, keep every k-th by cost."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found = {}
    for _ in range(40 * n):
        sample = space.sample(study.ask(), budget)
        if sample.spec is not None and sample.macs <= budget:
            found.setdefault(sample.spec.arch_hash, (sample.macs, sample.spec))
    ranked = sorted(found.values(), key=lambda x: x[0])
    step = max(1, len(ranked) // n)
    return [spec for _, spec in ranked[::step][:n]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--space", default="micro")
    parser.add_argument("--budget", default="24M")
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="proxy epochs; the long schedule is 4x")
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    proxy = TrainConfig(epochs=args.epochs, train_subset=args.train_subset, seed=args.seed)
    train_set, val_set = load_data(args.data, proxy)
    specs = diverse_specs(get_space(args.space), parse_count(args.budget), args.archs, args.seed)
    print(f"{len(specs)} architectures of '{args.space}' under {args.budget}; data {args.data} "
          f"({len(train_set)} train / {len(val_set)} val); proxy {args.epochs} epochs vs {4 * args.epochs}")
    results = []
    for spec in specs:
        row = [spec.arch_hash, lwnas.count(spec).macs]
        for epochs in (args.epochs, 4 * args.epochs):
            seed_everything(args.seed)
            model = lwnas.build(spec, len(train_set.classes))
            start = time.perf_counter()
            history = train(model, train_set, val_set, TrainConfig(**{**proxy.to_dict(), "epochs": epochs}))
            row += [history[-1].top1, time.perf_counter() - start]
        results.append(row)
        print(f"{row[0]}  {row[1] / 1e6:6.2f}M  proxy {row[2]:5.1f}% ({row[3]:5.1f}s)  long {row[4]:5.1f}% "
              f"({row[5]:6.1f}s)", flush=True)
    tau = kendall_tau([r[2] for r in results], [r[4] for r in results])
    proxy_cost, long_cost = sum(r[3] for r in results), sum(r[5] for r in results)
    print(f"Kendall tau (proxy vs 4x schedule): {tau:.3f}; proxy cost {proxy_cost:.0f}s, long {long_cost:.0f}s "
          f"({proxy_cost / len(results):.1f}s per architecture)")


if __name__ == "__main__":
    main()
