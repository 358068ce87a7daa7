"""Zero-cost scores: how promising a freshly initialized network looks, from one batch and no training.

synflow (Tanaka et al. 2020, as a NAS proxy by Abdelfattah et al. 2021), snip (Lee et al. 2019), grad_norm,
NASWOT (Mellor et al. 2021, the activation-pattern kernel's log-determinant), jacob_cov (Mellor et al.'s
first version) and Zen-score (Lin et al. 2021), with parameter count and MAdds as the baselines a proxy has
to beat. Higher is better for
every score. Each is computed on its own freshly built network (`build(spec)` after seeding), so scores never
see each other's changes to the weights and repeat exactly under a seed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SCORES: dict[str, Callable] = {}


def _score(name: str):
    def register(function):
        SCORES[name] = function
        return function
    return register


def _weights(model) -> list:
    """Convolution and fully-connected weights: the parameters the pruning-based scores sum over."""
    import paddle.nn as nn

    return [layer.weight for layer in model.sublayers(include_self=True)
            if isinstance(layer, (nn.Conv2D, nn.Linear)) and layer.weight is not None]


def _loss_gradients(model, images, labels):
    import paddle.nn.functional as F

    model.train()
    model.clear_gradients()
    F.cross_entropy(model(images), labels).backward()
    return [(w.numpy().astype(np.float64), w.grad.numpy().astype(np.float64)) for w in _weights(model)]


@_score("synflow")
def synflow(model, images, labels) -> float:
    """Sum of |w * dR/dw| with every weight and statistic made positive and R the sum of the outputs for an
    all-ones input: the 'synaptic flow' through the network, data-independent. Evaluated in eval mode, where a
    fresh network's batch norms (mean 0, variance 1) pass values through, as the original's networks without
    batch norm do; float64 against overflow in deep networks."""
    import paddle

    model.eval()
    model.to(dtype="float64")
    with paddle.no_grad():
        for value in list(model.parameters()) + list(model.buffers()):
            if paddle.is_floating_point(value):
                value.set_value(value.abs())
    model.clear_gradients()
    ones = paddle.ones([1, *images.shape[1:]], dtype="float64")
    model(ones).sum().backward()
    return float(sum((w * w.grad).abs().sum() for w in _weights(model)))


@_score("snip")
def snip(model, images, labels) -> float:
    """Sum of |w * dL/dw| for the cross-entropy of one batch: how much the loss depends on each connection."""
    return float(sum(np.abs(w * g).sum() for w, g in _loss_gradients(model, images, labels)))


@_score("grad_norm")
def grad_norm(model, images, labels) -> float:
    """Sum over layers of the L2 norm of dL/dw for one batch."""
    return float(sum(np.linalg.norm(g) for _, g in _loss_gradients(model, images, labels)))


@_score("naswot")
def naswot(model, images, labels) -> float:
    """log|det K|, K[i, j] = the number of activation units on which images i and j agree about being active
    (output > 0). Networks that tell images of one batch apart score high. Every activation layer is seen,
    ReLU-like or not, and so is Dynamic Shift-Max."""
    import paddle
    import paddle.nn as nn

    from .model.blocks.micronet import DynamicShiftMax

    activations = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.GELU, nn.Swish, nn.Sigmoid, DynamicShiftMax)
    codes = []
    hooks = [layer.register_forward_post_hook(lambda _, __, out: codes.append((out > 0).flatten(1)))
             for layer in model.sublayers() if isinstance(layer, activations)]
    model.eval()
    try:
        with paddle.no_grad():
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    c = np.concatenate([code.numpy() for code in codes], axis=1).astype(np.float64)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    return float(np.linalg.slogdet(kernel)[1])


@_score("jacob_cov")
def jacob_cov(model, images, labels) -> float:
    """-(sum over the eigenvalues v of the correlation matrix of per-image input Jacobians of log(v + k) +
    1 / (v + k)), k = 1e-5: high when the network maps different images through different local linear maps."""
    model.train()
    x = images.clone()
    x.stop_gradient = False
    model(x).sum().backward()
    jacobians = x.grad.numpy().reshape(len(x), -1).astype(np.float64)
    eigenvalues = np.linalg.eigvalsh(np.corrcoef(jacobians))
    k = 1e-5
    return float(-np.sum(np.log(eigenvalues + k) + 1.0 / (eigenvalues + k)))


@_score("zen")
def zen(model, images, labels, gamma: float = 1e-2) -> float:
    """Zen-score (Lin et al. 2021): with every weight redrawn from N(0, 1) and batch norm on batch statistics,
    log of the mean L1 change of the features before global pooling (the head's input) when Gaussian inputs
    are perturbed by gamma * noise, plus the log of each batch norm's scale, sqrt(mean channel variance of its
    input) in the unperturbed pass. Measures expressivity without labels. The scales come from the batch itself, which is what the
    reference code's running variances hold after one forward pass with momentum 1."""
    import paddle
    import paddle.nn as nn

    with paddle.no_grad():
        for weight in _weights(model):
            weight.set_value(paddle.randn(weight.shape))
    x = paddle.randn(images.shape)
    noise = paddle.randn(images.shape)
    scales, features = [], []
    norms = [layer for layer in model.sublayers() if isinstance(layer, (nn.BatchNorm1D, nn.BatchNorm2D))]
    hooks = [norm.register_forward_pre_hook(lambda _, inputs: scales.append(_batch_scale(inputs[0])))
             for norm in norms]
    head = model.layers[-1] if hasattr(model, "layers") else None  # an lwnas Network: features = the head's input
    if head is not None:
        hooks.append(head.register_forward_pre_hook(lambda _, inputs: features.append(inputs[0])))
    model.train()
    try:
        with paddle.no_grad():
            outputs = [model(x), model(x + gamma * noise)]
    finally:
        for hook in hooks:
            hook.remove()
    first, second = features if head is not None else outputs
    change = float((first - second).abs().flatten(1).sum(1).mean())
    return float(np.log(change) + sum(scales[:len(norms)]))


def _batch_scale(inputs) -> float:
    """log sqrt(mean over channels of the batch variance), for a batch norm's input (N, C) or (N, C, H, W)."""
    values = inputs.numpy().astype(np.float64)
    axes = (0,) if values.ndim == 2 else (0, 2, 3)
    return float(np.log(np.sqrt(values.var(axis=axes).mean())))


def scores(spec, images, labels, names: list[str] | None = None, seed: int = 0,
           seconds: dict | None = None) -> dict[str, float]:
    """The zero-cost scores of `spec` on one batch (all, or `names`), plus `params` and `madds` (the baselines);
    `seconds`, if given, receives each score's time (its network's construction included)."""
    import time

    import paddle

    from .model.build import build
    from .model.cost import count
    from .train.devices import seed_everything

    cost = count(spec)
    result = {"params": float(cost.params), "madds": float(cost.macs)}
    names = list(SCORES) if names is None else names
    if names:
        images, labels = paddle.to_tensor(images), paddle.to_tensor(labels)
    for name in names:
        start = time.perf_counter()
        seed_everything(seed)
        result[name] = SCORES[name](build(spec), images, labels)
        if seconds is not None:
            seconds[name] = time.perf_counter() - start
    return result
