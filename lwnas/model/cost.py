"""Multiply-adds and parameters of a spec, computed analytically (no Paddle network is built).

Counting convention (the one the MicroNet, ShuffleNet, MobileNetV3, AsymmNet, FasterNet and MobileOne
papers use for "FLOPs"/"MAdds"): multiply-adds of convolutions and fully-connected layers, including the
small FC layers inside squeeze-excite and Dynamic Shift-Max, plus the fusions of Dynamic Shift-Max
(2 multiply-adds per output element and fusion, which the MicroNet budgets include); biases, batch norm, activations, pooling,
channel shuffles and element-wise ops are not counted. Parameters are all trainable weights
(conv/linear weights and biases, batch-norm scale and shift; running statistics are buffers, not
parameters). For re-parameterizable blocks (MobileOne) multiply-adds and `params` describe the deployed
single-branch network; `train_params` counts the multi-branch network as it is trained.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SpecError


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Tally:
    """Tracks a feature map's shape through a block while summing its multiply-adds and parameters, and the
    convolutions and fully-connected layers it runs (`kernels`) with the elements they write (`written`): what a
    latency predictor needs beside MAdds, since small layers cost a call each whatever their arithmetic."""

    __slots__ = ("c", "h", "w", "macs", "params", "train_params", "kernels", "written")

    def __init__(self, c: int, h: int, w: int):
        self.c, self.h, self.w = c, h, w
        self.macs = self.params = self.train_params = self.kernels = self.written = 0

    def _add(self, macs: int, params: int, train_params: int | None = None):
        self.macs += macs
        self.params += params
        self.train_params += params if train_params is None else train_params

    def conv(self, out: int, kernel=1, stride=1, groups: int = 1, bias: bool = False, bn: bool = False,
             train_params: int | None = None) -> "Tally":
        """A convolution with 'same'-style padding (k//2 for odd k, 0 for even k), applied to the current map."""
        kh, kw = _pair(kernel)
        sh, sw = _pair(stride)
        ph, pw = (kh // 2 if kh % 2 else 0), (kw // 2 if kw % 2 else 0)
        self.h = (self.h + 2 * ph - kh) // sh + 1
        self.w = (self.w + 2 * pw - kw) // sw + 1
        weights = out * (self.c // groups) * kh * kw
        params = weights + (out if bias else 0) + (2 * out if bn else 0)
        self._add(self.h * self.w * weights, params, train_params)
        self.c = out
        self.kernels += 1
        self.written += out * self.h * self.w
        return self

    def linear(self, c_in: int, out: int, bias: bool = True, bn: bool = False):
        """A fully-connected layer on a pooled vector; does not change the tracked map."""
        self._add(c_in * out, c_in * out + (out if bias else 0) + (2 * out if bn else 0))
        self.kernels += 1
        self.written += out

    def pool(self, kernel: int, stride: int, padding: int):
        self.h = (self.h + 2 * padding - kernel) // stride + 1
        self.w = (self.w + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int
    train_params: int
    kernels: int = field(default=0, repr=False)  # convolutions and fully-connected layers (Tally)
    written: int = field(default=0, repr=False)


@dataclass(frozen=True)
class LayerCost:
    path: str
    type: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    macs: int
    params: int
    train_params: int
    kernels: int  # convolutions and fully-connected layers
    written: int  # elements those write


def trace(spec, resolution: int | None = None) -> list[LayerCost]:
    """Walk the spec block by block; raises SpecError where channels or sizes do not fit."""
    from .blocks import BLOCKS

    res = resolution or spec.resolution
    tally = Tally(spec.in_channels, res, res)
    rows = []
    for path, block in spec.blocks():
        block_type = BLOCKS[block.type]
        args = block.kwargs
        if block_type.head:
            args["num_classes"] = spec.num_classes
        if block_type.check is not None:
            problem = block_type.check(tally.c, args)
            if problem:
                raise SpecError(path, problem)
        before = (tally.c, tally.h, tally.w, tally.macs, tally.params, tally.train_params, tally.kernels, tally.written)
        block_type.cost(tally, args)
        if tally.h < 1 or tally.w < 1:
            raise SpecError(path, f"feature map shrinks to {tally.h}x{tally.w} at resolution {res}; "
                                  f"use a larger resolution or fewer stride-2 blocks")
        rows.append(LayerCost(path, block.type, before[:3], (tally.c, tally.h, tally.w),
                              tally.macs - before[3], tally.params - before[4], tally.train_params - before[5],
                              tally.kernels - before[6], tally.written - before[7]))
    return rows


def count(spec, resolution: int | None = None) -> Cost:
    """Multiply-adds and parameters of a spec at its resolution or the one given (`lwnas.count` also takes a
    config name)."""
    rows = trace(spec, resolution)
    return Cost(*(sum(getattr(r, name) for r in rows)
                  for name in ("macs", "params", "train_params", "kernels", "written")))


def count_built(model, resolution: int, in_channels: int = 3) -> Cost:
    """Independent check of `count`: hooks on every Conv2D, Linear and Dynamic Shift-Max of a built Paddle network.

    Run on the network as built, `params` is the multi-branch count; run after lwnas.reparameterize,
    it is the deployed count. The returned Cost has params == train_params (the network is what it is).
    """
    import paddle

    macs = kernels = written = 0

    def conv_hook(layer, inputs, output):
        nonlocal macs, kernels, written
        kh, kw = layer.weight.shape[2:]
        macs += int(output[0].numel()) * (layer.weight.shape[1]) * kh * kw
        kernels, written = kernels + 1, written + int(output[0].numel())

    def linear_hook(layer, inputs, output):
        nonlocal macs, kernels, written
        rows = int(output.numel()) // output.shape[0] // layer.weight.shape[1]
        macs += rows * layer.weight.shape[0] * layer.weight.shape[1]
        kernels, written = kernels + 1, written + int(output.numel()) // output.shape[0]

    def shift_max_hook(layer, inputs, output):
        nonlocal macs, kernels, written
        macs += fusion_macs(int(output[0].numel()), layer.branches)
        kernels, written = kernels + layer.branches, written + layer.branches * int(output[0].numel())

    from .blocks.micronet import DynamicShiftMax, fusion_macs

    handles = []
    for sub in model.sublayers(include_self=True):
        if isinstance(sub, DynamicShiftMax):
            handles.append(sub.register_forward_post_hook(shift_max_hook))
        if isinstance(sub, paddle.nn.Conv2D):
            handles.append(sub.register_forward_post_hook(conv_hook))
        elif isinstance(sub, paddle.nn.Linear):
            handles.append(sub.register_forward_post_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, in_channels, resolution, resolution]))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    params = sum(int(p.numel()) for p in model.parameters() if p.trainable)
    return Cost(macs, params, params, kernels, written)
