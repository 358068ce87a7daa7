"""Training images/s and inference latency of our blocks against straightforward plain-Paddle references of
the same networks, as a ratio, in one run. The references are the same networks (same weights; outputs are
checked to match) with the hot ops written the way the seed notebooks and blog posts write them:

- MicroNet: Dynamic Shift-Max builds its channel index on every call and gathers with index_select;
- ShuffleNet v2: channel split by slicing, channel shuffle by reshape / transpose / reshape;
- FasterNet: PConv by cloning the input and writing the convolved slice back.

    python benchmarks/throughput.py [--batch-size 64] [--proxy-resolution 32] [--steps 20]
"""
import argparse
import copy
import time
import types
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

import lwnas  # noqa: E402
from lwnas.deploy.latency import measure  # noqa: E402
from lwnas.model.blocks.fasternet import PartialConv  # noqa: E402
from lwnas.model.blocks.micronet import DynamicShiftMax  # noqa: E402
from lwnas.model.blocks.shufflenet import ShuffleV2Unit  # noqa: E402


def naive_shift_max(self, x):
    b, c, h, w = x.shape
    g = self.groups
    per = c // g
    index = np.array([((i // per + 1) % g) * per + (i % per + 1) % per for i in range(c)])
    coeff = (self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1)) - 0.5) * self.scale
    coeff = coeff.reshape([b, 2 * self.branches, c, 1, 1]) + self.init
    shifted = paddle.index_select(x, paddle.to_tensor(index), axis=1)
    out = x * coeff[:, 0] + shifted * coeff[:, 1]
    if self.branches == 2:
        out = paddle.maximum(out, x * coeff[:, 2] + shifted * coeff[:, 3])
    return out


def naive_shuffle_v2(self, x):
    if self.stride == 1:
        half = x.shape[1] // 2
        keep, x = x[:, :half], x[:, half:]
    else:
        keep = self.proj(x)
    y = paddle.concat([keep, self.main(x)], axis=1)
    b, c, h, w = y.shape
    return y.reshape([b, 2, c // 2, h, w]).transpose([0, 2, 1, 3, 4]).reshape([b, c, h, w])


def naive_pconv(self, x):
    y = x.clone()
    y[:, :self.conv_channels] = self.conv(x[:, :self.conv_channels])
    return y


NAIVE = {DynamicShiftMax: naive_shift_max, ShuffleV2Unit: naive_shuffle_v2, PartialConv: naive_pconv}


def reference(model):
    ref = copy.deepcopy(model)
    for layer in ref.sublayers(include_self=True):
        if type(layer) in NAIVE:
            layer.forward = types.MethodType(NAIVE[type(layer)], layer)
    return ref


def train_rate(model, batch, resolution, steps, classes=10):
    model.train()
    opt = paddle.optimizer.Momentum(0.01, parameters=model.parameters())
    x = paddle.randn([batch, 3, resolution, resolution])
    y = paddle.randint(0, classes, [batch])
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--proxy-resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    paddle.set_device(args.device)
    print(f"device {args.device}; training at {args.proxy_resolution}px batch {args.batch_size}; "
          f"latency at 224px batch 1 (median of 30)")
    print(f"{'network':<20} {'train img/s':>11} {'ref img/s':>10} {'ratio':>6}  {'latency ms':>10} "
          f"{'ref ms':>8} {'ratio':>6}")
    for name in ("micronet_m1", "shufflenet_v2_x0_5", "fasternet_t0"):
        paddle.seed(0)
        ours = lwnas.build(name, 10)
        ref = reference(ours)
        ours.eval(), ref.eval()
        x = paddle.randn([2, 3, 64, 64])
        assert np.allclose(ours(x).numpy(), ref(x).numpy(), atol=1e-5), f"{name}: reference differs"
        rate = train_rate(ours, args.batch_size, args.proxy_resolution, args.steps)
        ref_rate = train_rate(ref, args.batch_size, args.proxy_resolution, args.steps)
        ours.eval(), ref.eval()
        lat = measure(ours, 224, runs=30).median_ms
        ref_lat = measure(ref, 224, runs=30).median_ms
        print(f"{name:<20} {rate:11.0f} {ref_rate:10.0f} {rate / ref_rate:6.2f}  {lat:10.2f} {ref_lat:8.2f} "
              f"{ref_lat / lat:6.2f}", flush=True)
    print("ratios > 1 mean ours is faster")


if __name__ == "__main__":
    main()
