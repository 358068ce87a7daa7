"""Channel identities: which bank entries each weight of a subnet reads, so that a channel means the same thing in
every subnet that has it.

Cutting the leading channels of every bank works while networks keep their channels in place, but shuffles,
splits and concatenations move channels by amounts that depend on widths and group counts: a later layer's input
column j would read a different earlier filter in each subnet, and subnets other than the largest and smallest
collapse (measured: `benchmarks/supernet_ranking.py --probe`). So every channel of a subnet carries an *identity*,
the bank index of what made it, and each weight is gathered from its bank by the identities of its channels:

- a convolution or linear layer makes new channels, its own leading bank rows, unless its output is added to a
  residual: then it takes the residual's identities, so that the sum keeps one meaning per channel;
- a depthwise convolution, batch norm, activation and pooling keep each channel's identity; a depthwise
  convolution with a channel multiplier (MicroNet's) gives output j of input channel c the identity c*SPREAD + j;
- shuffles and splits permute identities; a concatenation keeps its parts apart (a part made inside the
  block is offset past every identity the other part can carry; AsymmNet's copies of its input are interleaved
  with its expansion), except ShuffleNet v2's stride-1 unit, whose branch takes the identities of the half it
  consumed;
- a grouped (not depthwise) convolution reads a dense bank [filters, input identities], so each pair of a filter
  and an input channel has one weight whatever the group count.

Dynamic Shift-Max's partner channels and ShuffleNet v2's split point still move with the width: identities make
the weights agree, not the block's fixed wiring.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn as nn

from ..model.blocks.common import shuffle_order
from ..model.blocks.micronet import ChannelShuffle, DynamicShiftMax, Sequence

SPREAD = 8  # room per channel for a depthwise channel multiplier (MicroNet's are at most 6)


@dataclass
class Cut:
    """The bank entries one weight reads: `rows` along axis 0; `cols` along axis 1, one index per column (a linear
    layer's outputs) or one row of indices per row (a grouped convolution), or None for the leading columns; a
    smaller kernel is the centre of the bank's."""

    rows: np.ndarray
    cols: np.ndarray | None = None

    def needs(self, shape) -> tuple[int, ...]:
        """The smallest bank shape this cut fits in, for a weight of `shape`."""
        need = [int(self.rows.max()) + 1 if len(self.rows) else 0]
        if len(shape) > 1:
            need.append(int(self.cols.max()) + 1 if self.cols is not None and self.cols.size else shape[1])
        return tuple(need) + tuple(shape[2:])

    def used(self, bank_shape, shape) -> np.ndarray:
        """Which entries of a bank of `bank_shape` the weight reads (a boolean mask)."""
        mask = np.zeros(bank_shape, bool)
        cols = self.cols if self.cols is not None else np.arange(shape[1]) if len(shape) > 1 else None
        kernel = _centre(bank_shape, shape)
        for i, row in enumerate(self.rows):
            if cols is None:
                mask[row] = True
            else:
                mask[(row, cols[i] if cols.ndim == 2 else cols) + kernel] = True
        return mask

    def taker(self, bank_shape, shape):
        """A function that cuts the weight from the bank tensor, differentiably (gathers only where needed)."""
        kernel = _centre(bank_shape, shape)
        rows = _index(self.rows)
        cols = None if self.cols is None else _index(self.cols)
        width = shape[1] if len(shape) > 1 else None

        def take(bank):
            w = bank[(slice(None), slice(None)) + kernel] if kernel else bank
            w = w[:rows] if isinstance(rows, int) else paddle.index_select(w, rows, axis=0)
            if width is None:
                return w
            if cols is None:
                return w[:, :width]
            if isinstance(cols, int):
                return w[:, :cols]
            if len(cols.shape) == 1:
                return paddle.index_select(w, cols, axis=1)
            return paddle.take_along_axis(w, cols.reshape(cols.shape + [1] * (len(w.shape) - 2)), 1)

        return take


def _centre(bank_shape, shape) -> tuple:
    if len(shape) < 3:
        return ()
    return tuple(slice((b - s) // 2, (b - s) // 2 + s) for b, s in zip(bank_shape[2:], shape[2:]))


def _index(indices: np.ndarray):
    """A leading run 0..n-1 as its length (a slice is cheaper than a gather), anything else as a tensor."""
    if indices.ndim == 1 and np.array_equal(indices, np.arange(len(indices))):
        return len(indices)
    return paddle.to_tensor(indices.astype("int64"))


class Routes:
    """The cuts of one block's weights, filled while following its channels' identities through it."""

    def __init__(self, layer: nn.Layer, n_in: int, widest: int):
        self.layer = layer
        self.n_in, self.widest = n_in, widest  # the position's: identities its input can carry, widest input
        self.cuts: dict[str, Cut] = {}

    def conv(self, path: str, ids: np.ndarray, rows=None, spread: bool = False) -> np.ndarray:
        conv = _sublayer(self.layer, path)
        out, per_group = conv.weight.shape[:2]
        groups = conv._groups
        if groups == len(ids) and spread:  # depthwise with a channel multiplier
            made = out // len(ids)
            assert made <= SPREAD, f"channel multiplier {made} exceeds {SPREAD}"
            rows = (ids[:, None] * SPREAD + np.arange(made)).reshape(-1)
            self.cuts[f"{path}.weight"] = Cut(rows)
        elif groups == len(ids) == out:  # depthwise
            assert rows is None or np.array_equal(rows, ids), "a depthwise conv keeps its channels' identities"
            rows = ids
            self.cuts[f"{path}.weight"] = Cut(rows)
        else:
            rows = np.arange(out) if rows is None else np.asarray(rows)
            group_of_row = np.arange(out) // (out // groups)
            self.cuts[f"{path}.weight"] = Cut(rows, ids.reshape(groups, per_group)[group_of_row])
        if conv.bias is not None:
            self.cuts[f"{path}.bias"] = Cut(rows)
        return rows

    def norm(self, path: str, ids: np.ndarray) -> np.ndarray:
        for name in ("weight", "bias"):
            self.cuts[f"{path}.{name}"] = Cut(ids)
        return ids

    def linear(self, path: str, ids: np.ndarray, out=None) -> np.ndarray:
        linear = _sublayer(self.layer, path)
        out = np.arange(linear.weight.shape[1]) if out is None else out
        self.cuts[f"{path}.weight"] = Cut(ids, out)
        if linear.bias is not None:
            self.cuts[f"{path}.bias"] = Cut(out)
        return out

    def squeeze_excite(self, path: str, ids: np.ndarray) -> np.ndarray:
        squeezed = self.conv(f"{path}.reduce", ids)
        self.conv(f"{path}.expand", squeezed, rows=ids)
        return ids

    def shift_max(self, path: str, ids: np.ndarray) -> np.ndarray:
        """Dynamic Shift-Max: coefficient t of channel c is output t*C + c of its second FC; its bank column is
        identity*4 + t (at most two fusions of two coefficients each)."""
        layer = _sublayer(self.layer, path)
        hidden = self.linear(f"{path}.fc.0", ids)
        coefficients = 2 * layer.branches
        self.linear(f"{path}.fc.2", hidden, out=(ids[None, :] * 4 + np.arange(coefficients)[:, None]).reshape(-1))
        return ids

    def chain(self, path: str, layers, ids: np.ndarray, rows=None, spread: bool = False) -> np.ndarray:
        """Follow a Sequential or a MicroNet `Sequence`; `rows` (a residual's identities) are what the chain must
        end with: its last convolution takes them, permuted back through any shuffles after it."""
        if isinstance(layers, Sequence):
            steps = layers.steps
            names = {id(layer): f"layers.{i}" for i, layer in enumerate(layers.layers)}
        else:
            steps = list(layers.children())
            names = {id(layer): name for name, layer in layers.named_children()}
        convs = [i for i, step in enumerate(steps) if isinstance(step, nn.Conv2D) or (
            isinstance(step, nn.Sequential) and any(isinstance(layer, nn.Conv2D) for layer in step.sublayers()))]
        prefix = f"{path}." if path else ""
        for i, step in enumerate(steps):
            at = prefix + names[id(step)] if id(step) in names else None
            target = _before(rows, steps[i + 1:]) if rows is not None and i == convs[-1] else None
            if isinstance(step, nn.Conv2D):
                ids = self.conv(at, ids, rows=target, spread=spread)
            elif isinstance(step, (nn.BatchNorm1D, nn.BatchNorm2D)):
                ids = self.norm(at, ids)
            elif isinstance(step, nn.Linear):
                ids = self.linear(at, ids)
            elif isinstance(step, DynamicShiftMax):
                ids = self.shift_max(at, ids)
            elif isinstance(step, ChannelShuffle):
                ids = ids[shuffle_order(len(ids), step.groups)]
            elif isinstance(step, nn.Sequential):
                ids = self.chain(at, step, ids, rows=target)
        if rows is not None:
            assert np.array_equal(ids, rows), "a residual branch must end with its input's identities"
        return ids


def _before(target: np.ndarray, tail) -> np.ndarray:
    """The identities a convolution must give so that, after the shuffles in `tail`, they read `target`."""
    position = np.arange(len(target))
    for step in tail:
        if isinstance(step, ChannelShuffle):
            position = position[shuffle_order(len(position), step.groups)]
    rows = np.empty(len(target), dtype=np.int64)
    rows[position] = target
    return rows


def _sublayer(layer: nn.Layer, path: str) -> nn.Layer:
    for step in path.split(".") if path else ():
        layer = getattr(layer, step)  # Paddle names the items of a Sequential or LayerList "0", "1", ...
    return layer


# ---- one router per block family: (routes, input identities) -> output identities ------------------------------

def _micro_stem(r: Routes, ids):
    return r.chain("", r.layer, ids, spread=True)


def _micro_block(r: Routes, ids):
    return r.chain("body", r.layer.body, ids, rows=ids if r.layer.residual else None, spread=r.layer.depthwise_first)


def _micronet_head(r: Routes, ids):
    return r.chain("fc", r.layer.fc, ids)


def _classifier(r: Routes, ids):
    return r.chain("fc", r.layer.fc, ids)


def _conv_bn_act(r: Routes, ids):
    return r.chain("", r.layer, ids)


def _bottleneck(r: Routes, ids):
    """MobileNetV3's inverted residual and AsymmNet's bottleneck (its input copies interleaved with the
    expansion: copy s of channel c is c*(2k+1) + s, expansion channel e is e*(2k+1) + k)."""
    layer = r.layer
    y = ids
    if layer.expand is not None:
        y = r.chain("expand", layer.expand, ids)
        if layer.reuse:
            k = layer.reuse
            parts = [ids * (2 * k + 1) + s for s in range(k)] + [y * (2 * k + 1) + k]
            y = np.concatenate(parts + [ids * (2 * k + 1) + k + 1 + s for s in range(k)])
    y = r.chain("depthwise", layer.depthwise, y)
    if layer.se is not None:
        r.squeeze_excite("se", y)
    return r.chain("project", layer.project, y, rows=ids if layer.residual else None)


def _shufflenet_v2(r: Routes, ids):
    """Stride 1: the branch's outputs take the identities of the half it consumed (the unit's channels keep one
    set of identities). Stride 2: the branch's outputs come after every identity the shortcut can make."""
    layer = r.layer
    if layer.stride == 1:
        keep, main = ids[:len(ids) // 2], ids[len(ids) // 2:]
        made = r.chain("main", layer.main, main, rows=main)
    else:
        keep = r.chain("proj", layer.proj, ids)
        made = r.chain("main", layer.main, ids) + r.widest
    joined = np.concatenate([keep, made])
    return joined[shuffle_order(len(joined), 2)]


def _shufflenet_v1(r: Routes, ids):
    layer = r.layer
    y = r.chain("reduce", layer.reduce, ids)
    if layer.groups > 1:
        y = y[shuffle_order(len(y), layer.groups)]
    y = r.chain("depthwise", layer.depthwise, y)
    if layer.stride == 1:
        return r.chain("expand", layer.expand, y, rows=ids)
    return np.concatenate([ids, r.chain("expand", layer.expand, y) + r.n_in])


def _mobileone_conv(r: Routes, path: str, layer, ids):
    prefix = f"{path}." if path else ""
    rows = ids if layer.skip_branch is not None else None
    for i, branch in enumerate(layer.conv_branches):
        y = r.chain(f"{prefix}conv_branches.{i}", branch, ids, rows=rows)
    if layer.scale_branch is not None:
        y = r.chain(f"{prefix}scale_branch", layer.scale_branch, ids, rows=rows)
    if layer.skip_branch is not None:
        r.norm(f"{prefix}skip_branch", ids)
    if layer.se is not None:
        r.squeeze_excite(f"{prefix}se", y)
    return y


def _mobileone_block(r: Routes, ids):
    return _mobileone_conv(r, "1", r.layer[1], _mobileone_conv(r, "0", r.layer[0], ids))


ROUTERS = {
    "micro_stem": _micro_stem, "micro_block": _micro_block, "micronet_head": _micronet_head,
    "classifier": _classifier, "conv_bn_act": _conv_bn_act, "maxpool": lambda r, ids: ids,
    "inverted_residual": _bottleneck, "asymm_bottleneck": _bottleneck,
    "shufflenet_v2_unit": _shufflenet_v2, "shufflenet_v1_unit": _shufflenet_v1,
    "mobileone_conv": lambda r, ids: _mobileone_conv(r, "", r.layer, ids), "mobileone_block": _mobileone_block,
}


def route(block_type: str, layer: nn.Layer, ids: np.ndarray, n_in: int, widest: int, out_width):
    """(cut per trainable weight name, output identities) of one block whose input channels carry `ids`.

    A family without a router (FasterNet) keeps channels in place: it takes leading windows, and only after a
    block that also did (its input identities must be 0..c-1); `out_width()` gives its output width."""
    r = Routes(layer, n_in, widest)
    router = ROUTERS.get(block_type)
    if router is not None:
        out = router(r, ids)
    else:
        if not np.array_equal(ids, np.arange(len(ids))):
            raise ValueError(f"{block_type} cannot follow a block that moves channels")
        for name, param in layer.named_parameters():
            if not param.stop_gradient:  # batch-norm statistics are the subnet's own
                shape = param.shape
                r.cuts[name] = Cut(np.arange(shape[0]), np.arange(shape[1]) if len(shape) > 1 else None)
        out = np.arange(out_width())
    return r.cuts, out
