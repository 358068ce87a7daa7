"""Run once on a machine with a GPU: does every named config train, time and export there?

For each named config: build it (10 classes), take `--steps` training steps through lwnas's own trainer on
images of one flat colour per class (with --device gpu: float16 autocast and loss scaling, as `lwnas search/train
--device gpu` run), check that the loss falls, time the deployed network, export a Paddle inference model and
check its output against the network's. One line per check; exit code 1 if any failed.

    python benchmarks/gpu_smoke.py --device gpu            # on the GPU machine: all 32 named configs
    python benchmarks/gpu_smoke.py --device cpu            # the same checks without AMP, one config per family
                                                           # (every block type; CI runs it), --configs all for all
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# One config per family, so that every block type runs: all 32 take about 9 minutes on a 2-core CPU.
CPU_CONFIGS = ["asymmnet_small_x1_0", "fasternet_t0", "micronet_m1", "mobilenetv3_small_x1_0", "mobileone_s0",
               "shufflenet_v1_g3_x1_0", "shufflenet_v2_x1_0"]


def check_training(spec, args):
    """(trained model, detail); AssertionError unless the loss of the last quarter of the steps is below the
    first quarter's. Every step sees the same batch (one-batch epochs) of flat colours, one per class, which the
    trainer's shifts and flips leave as they are: memorizing it is a reliable sign that the step works. (Gratings,
    whose orientation a flip turns into another class's, made the losses of 20 steps jump more than fall.)"""
    import lwnas
    from lwnas.train.devices import seed_everything
    from lwnas.train.loop import train
    from lwnas.train.settings import TrainConfig

    config = TrainConfig(epochs=args.steps, batch_size=args.batch_size, lr=0.05, warmup_epochs=2,
                         resolution=args.resolution, amp=args.amp, bn_recalibration=1)
    seed_everything(0)
    model = lwnas.build(spec)
    losses = []
    start = time.perf_counter()
    batch = flat_colours(args.batch_size, args.resolution)
    train(model, batch, batch, config, on_step=lambda step, steps, loss: losses.append(loss))
    quarter = max(1, args.steps // 4)
    first, last = float(np.mean(losses[:quarter])), float(np.mean(losses[-quarter:]))
    assert len(losses) == args.steps and np.isfinite(losses).all(), f"losses {losses}"
    assert last < first, f"loss did not fall: {first:.3f} -> {last:.3f}"
    return model, (f"loss {first:.3f} -> {last:.3f} over {len(losses)} steps{' with AMP' if args.amp else ''} "
                   f"({time.perf_counter() - start:.1f} s)")


def flat_colours(n: int, resolution: int, classes: int = 10):
    """n images of one colour each, image i of class i % classes, the colours drawn once per class."""
    from lwnas.train.data import ImageSet

    colours = np.random.default_rng(0).integers(0, 256, size=(classes, 3), dtype=np.uint8)
    labels = np.arange(n) % classes
    images = np.broadcast_to(colours[labels][:, None, None, :], (n, resolution, resolution, 3)).copy()
    return ImageSet(images, labels.astype(np.int64), [f"colour{c}" for c in range(classes)])


def check_latency(model, spec, args) -> str:
    from lwnas.deploy.export import deployable
    from lwnas.deploy.latency import measure

    result = measure(deployable(model), args.resolution, batch_size=1, warmup=3, runs=args.latency_runs)
    assert result.median_ms > 0
    return f"median {result.median_ms:.2f} ms, IQR {result.iqr_ms:.2f} ms at {args.resolution}px, batch 1"


def check_export(model, spec, args) -> str:
    import paddle

    from lwnas.deploy.export import deployable, export_model

    model = deployable(model)
    x = paddle.randn([2, spec.in_channels, args.resolution, args.resolution])
    with paddle.no_grad():
        expected = model(x).numpy()
    with tempfile.TemporaryDirectory() as folder:
        path = export_model(model, spec, Path(folder), "paddle", args.resolution)
        got = paddle.jit.load(str(path))(x).numpy()
    error = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))
    assert error < 1e-4, f"exported model differs by {error:.2e} of the output's scale"
    return f"Paddle inference model equals the network to {error:.1e}"


def main(argv=None) -> int:
    import lwnas
    from lwnas.train.devices import set_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--device", default="gpu", help="gpu (default), gpu:N or cpu")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, help="default: on for GPUs, off on cpu")
    parser.add_argument("--configs", nargs="+", help="named configs to check, or 'all' (default: all on GPUs, "
                                                     "one per family on cpu)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, help="default 16 on GPUs, 8 on cpu (where only the code path "
                                                           "is checked, and 16 takes minutes)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--latency-runs", type=int, default=10)
    args = parser.parse_args(argv)
    on_gpu = args.device.startswith("gpu")
    args.amp = on_gpu if args.amp is None else args.amp
    args.batch_size = args.batch_size or (16 if on_gpu else 8)
    try:
        set_device(args.device)
    except lwnas.LwnasError as err:
        print(f"gpu_smoke: error: {err}", file=sys.stderr)
        return 2
    if args.configs in (None, ["all"]):
        names = lwnas.config_names() if on_gpu or args.configs else CPU_CONFIGS
    else:
        names = args.configs
    failed = 0
    print(f"{len(names)} configs on {args.device}, {args.steps} steps of batch {args.batch_size} at "
          f"{args.resolution}px, AMP {'on' if args.amp else 'off'}", flush=True)
    for name in names:
        spec = lwnas.get_config(name).replace(num_classes=10)
        model = None
        for check in ("train", "latency", "export"):
            try:
                if check == "train":
                    model, detail = check_training(spec, args)
                elif model is None:
                    raise AssertionError("not trained")
                else:
                    detail = (check_latency if check == "latency" else check_export)(model, spec, args)
                print(f"PASS {name} {check}: {detail}", flush=True)
            except Exception as err:  # a smoke test reports every failure and goes on
                failed += 1
                print(f"FAIL {name} {check}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                      flush=True)
    print(f"{len(names) * 3 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
