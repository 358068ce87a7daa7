"""Inference latency of a built network as deployment sees it: eval mode, MobileOne re-parameterized,
warm-up runs first, then timed runs with device synchronization; median and interquartile range."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    median_ms: float
    iqr_ms: float  # 75th minus 25th percentile
    runs: int
    batch_size: int
    resolution: int
    device: str
    threads: int = 1
    fast_ms: float | None = None  # the lowest 10th percentile of a round of runs (measure_backends)

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return self.iqr_ms / self.median_ms if self.median_ms else 0.0

    def to_dict(self) -> dict:
        return {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms, "fast_ms": self.fast_ms, "spread": self.spread,
                "runs": self.runs,
                "batch_size": self.batch_size, "resolution": self.resolution, "device": self.device,
                "threads": self.threads}


def measure(model, resolution: int, batch_size: int = 1, warmup: int = 10, runs: int = 50,
            in_channels: int = 3, engine: str = "eager", threads: int = 1) -> Latency:
    """Median and IQR of `runs` forward passes after `warmup` untimed ones, on the current Paddle device, with
    `threads` CPU math threads.

    engine 'eager' times the dynamic-graph model; 'inference' exports it (paddle.jit.save) and times a
    Paddle Inference predictor, which is what a deployment runs (on a CPU, with whichever of its two backends is
    faster for this network: see `_predictors`); 'onnxruntime' exports it to ONNX and times an ONNX Runtime session
    on the CPU, as many edge deployments run it."""
    backends = measure_backends(model, resolution, batch_size, warmup, runs, in_channels, engine, threads)
    return min(backends.values(), key=lambda latency: latency.median_ms)


def measure_backends(model, resolution: int, batch_size: int = 1, warmup: int = 10, runs: int = 50,
                     in_channels: int = 3, engine: str = "eager", threads: int = 1, rounds: int = 1
                     ) -> dict[str, Latency]:
    """`measure` for each backend the engine can run: Paddle Inference on a CPU has two (keys 'oneDNN' and
    'native kernels'; see `_predictors`), every other engine one (key: the engine). A latency predictor models each
    backend apart, since a deployment picks the faster one per network. With `rounds` > 1 the backends take
    turns, `runs` each per round, and `fast_ms` is the lowest round's 10th percentile: on a machine shared with
    others, the 10th percentile of one round of 30 runs moved by up to 2x from one second to the next, and the
    fastest of several rounds is what repeats."""
    import paddle

    device = paddle.device.get_device()
    paddle.base.core.set_num_threads(threads)
    sync = paddle.device.synchronize if device.startswith("gpu") else (lambda: None)
    shape = [batch_size, in_channels, resolution, resolution]
    if engine == "inference" and not device.startswith("gpu"):
        runners = dict(zip(CPU_INFERENCE_BACKENDS, _predictors(model, shape, device, threads, CPU_INFERENCE_BACKENDS)))
    elif engine == "inference":
        runners = dict(zip([engine], _predictors(model, shape, device, threads)))
    elif engine == "onnxruntime":
        runners = {engine: _onnx_session(model, shape, device, threads)}
    elif engine == "eager":
        x = paddle.randn(shape)

        def run():
            with paddle.no_grad():
                model(x)
        runners = {engine: run}
    else:
        raise ValueError(f"unknown engine {engine!r}")
    timed = {backend: [] for backend in runners}
    for round_ in range(rounds):
        for backend, run in runners.items():
            timed[backend].append(_timed(run, warmup if round_ == 0 else 2, runs, sync))
    names = {backend: f"{device}/inference ({backend})" if backend in CPU_INFERENCE_BACKENDS else f"{device}/{backend}"
             for backend in runners}
    return {backend: _summary(blocks, batch_size, resolution, names[backend], threads)
            for backend, blocks in timed.items()}


CPU_INFERENCE_BACKENDS = ("oneDNN", "native kernels")


def _timed(run, warmup: int, runs: int, sync) -> list[float]:
    """Milliseconds of each of `runs` calls after `warmup` untimed ones."""
    times = []
    for i in range(warmup + runs):
        sync()
        start = time.perf_counter()
        run()
        sync()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return times


def _summary(blocks: list[list[float]], batch_size: int, resolution: int, engine: str, threads: int) -> Latency:
    """Median and IQR over every timed run; `fast_ms`, the lowest 10th percentile of a round."""
    times = [t for block in blocks for t in block]
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    fast = min(np.percentile(block, 10) for block in blocks)
    return Latency(float(median), float(q3 - q1), len(times), batch_size, resolution, engine, threads, float(fast))


def _predictors(model, shape, device, threads, backends=(None,)) -> list:
    """Export once to a temporary folder (removed once the predictors have loaded it) and return, per backend, a
    callable running one Paddle Inference prediction. On a CPU the backend is Intel's oneDNN kernels (Paddle's
    default) or Paddle's native ones. Neither wins everywhere: MicroNet's ~450 small operators per image (group
    convolutions, shuffles, Dynamic Shift-Max) run 1.3-2.3x faster natively (M2: 10.7 against 17.3 ms), while
    MobileNetV3, ShuffleNet and the other families run 2.5x faster on oneDNN; a deployment sets the faster one
    (`config.disable_mkldnn()` for the native kernels)."""
    import os
    import tempfile

    import paddle
    from paddle import inference

    runs = []
    with tempfile.TemporaryDirectory(prefix="lwnas-latency-") as folder:  # the predictors read it when created
        paddle.jit.save(model, os.path.join(folder, "model"),
                        input_spec=[paddle.static.InputSpec(shape, "float32", "x")])
        graph = next(f for f in os.listdir(folder) if f.endswith((".json", ".pdmodel")))
        for backend in backends:
            config = inference.Config(os.path.join(folder, graph), os.path.join(folder, "model.pdiparams"))
            if device.startswith("gpu"):
                config.enable_use_gpu(256, int(device.split(":")[1]) if ":" in device else 0)
            else:
                config.disable_gpu()
                config.set_cpu_math_library_num_threads(threads)
                config.enable_mkldnn() if backend == "oneDNN" else config.disable_mkldnn()
            config.disable_glog_info()
            predictor = inference.create_predictor(config)
            predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(
                np.random.default_rng(0).standard_normal(shape).astype("float32"))
            runs.append(predictor.run)
    return runs


def _onnx_session(model, shape, device, threads):
    """Export to ONNX in a temporary folder (removed once the session has loaded it) and return a callable
    running one ONNX Runtime inference on the CPU."""
    import tempfile
    from pathlib import Path

    import paddle

    from ..errors import LwnasError
    from .export import write_onnx

    if device.startswith("gpu"):
        raise LwnasError("the onnxruntime engine times on the CPU; use --device cpu")
    try:
        import onnxruntime
        import paddle2onnx  # noqa: F401  (paddle.onnx.export's backend)
    except ImportError:
        raise LwnasError("the onnxruntime engine needs onnxruntime and paddle2onnx: pip install onnxruntime "
                         "paddle2onnx (from an lwnas checkout: pip install -e '.[onnx]')") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory(prefix="lwnas-latency-") as folder:
        path = write_onnx(model, Path(folder) / "model", [paddle.static.InputSpec(shape, "float32", "x")])
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype("float32")}
    return lambda: session.run(None, feed)
