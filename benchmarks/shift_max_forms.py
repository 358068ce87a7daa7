"""Is there a faster way to write Dynamic Shift-Max's fusion, max_j(a_j * x + b_j * shift(x))? Times forward and
backward of four exact forms on MicroNet-M2's shapes at 32 px (batch 64, J = 2), one CPU thread, fastest of three
rounds, outputs checked equal first:

- `broadcast` (lwnas' form): four multiplies by [b, c, 1] coefficients, two adds, one maximum;
- `expanded`: the coefficients expanded to the map's shape first (the reduction moves to expand's gradient);
- `stacked`: x and shift(x) stacked, one multiply, a sum over the pair and a max over the branches;
- `matmul`: per pixel, [x, shift(x)] times a 2 x J coefficient matrix, then a max.

    python benchmarks/shift_max_forms.py
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import paddle  # noqa: E402

SHAPES = ([64, 24, 256], [64, 48, 64], [64, 192, 16], [64, 384, 4], [64, 768, 1])  # [batch, channels, pixels]


def broadcast(x, s, coeff):  # coeff: [b, 2J, c, 1], ordered a1, b1, a2, b2
    a1, b1, a2, b2 = (t.squeeze(1) for t in paddle.split(coeff, 4, axis=1))
    return paddle.maximum(x * a1 + s * b1, x * a2 + s * b2)


def expanded(x, s, coeff):
    b, c, hw = x.shape
    return broadcast(x, s, coeff.expand([b, 4, c, hw]))


def stacked(x, s, coeff):
    b, c, _ = x.shape
    pair = paddle.stack([x, s], axis=1).unsqueeze(1)  # [b, 1, 2, c, hw]
    return (pair * coeff.reshape([b, 2, 2, c, 1])).sum(2).max(1)


def matmul(x, s, coeff):
    b, c, _ = x.shape
    pair = paddle.stack([x, s], axis=-1)  # [b, c, hw, 2]
    return paddle.matmul(pair, coeff.reshape([b, 2, 2, c]).transpose([0, 3, 2, 1])).max(-1)


FORMS = (broadcast, expanded, stacked, matmul)


def seconds(form, shape, steps=20) -> float:
    b, c, _ = shape
    x, s, coeff = paddle.randn(shape), paddle.randn(shape), paddle.randn([b, 4, c, 1])
    for t in (x, s, coeff):
        t.stop_gradient = False
    grad = paddle.randn(shape)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            (form(x, s, coeff) * grad).sum().backward()
            for t in (x, s, coeff):
                t.clear_grad()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main():
    print("| shape [batch, channels, pixels] | " + " | ".join(f"{f.__name__} ms" for f in FORMS) + " |")
    print("|---" * (len(FORMS) + 1) + "|")
    for shape in SHAPES:
        inputs = (paddle.randn(shape), paddle.randn(shape), paddle.randn([shape[0], 4, shape[1], 1]))
        outputs = [f(*inputs).numpy() for f in FORMS]
        assert all(np.allclose(outputs[0], o, atol=1e-5) for o in outputs[1:]), "the forms disagree"
        print(f"| {shape} | " + " | ".join(f"{seconds(f, shape) * 1000:.2f}" for f in FORMS) + " |", flush=True)


if __name__ == "__main__":
    main()
