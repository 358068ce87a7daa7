"""Microseconds per spec of the analytic counter (the search calls it for every sampled candidate).

Run: .venv/bin/python benchmarks/count_speed.py
"""
import time

import lwnas


def main(repeats: int = 200):
    print(f"{'config':26s} {'blocks':>6s} {'us/count':>9s}")
    total, n = 0.0, 0
    for name in lwnas.config_names():
        spec = lwnas.get_config(name)
        lwnas.count(spec)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            lwnas.count(spec)
        per_call = (time.perf_counter() - start) / repeats * 1e6
        total, n = total + per_call, n + 1
        print(f"{name:26s} {len(list(spec.blocks())):6d} {per_call:9.1f}")
    print(f"mean over {n} configs: {total / n:.1f} us per spec")


if __name__ == "__main__":
    main()
