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

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return self.iqr_ms / self.median_ms if self.median_ms else 0.0

    def to_dict(self) -> dict:
        return {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms, "spread": self.spread, "runs": self.runs,
                "batch_size": self.batch_size, "resolution": self.resolution, "device": self.device}


def deployable(model):
    """The network as it is deployed: eval mode, multi-branch blocks folded into single convs."""
    from .blocks.mobileone import reparameterize

    model.eval()
    reparameterize(model)
    return model


def measure(model, resolution: int, batch_size: int = 1, warmup: int = 10, runs: int = 50,
            in_channels: int = 3) -> Latency:
    """Median and IQR of `runs` forward passes after `warmup` untimed ones, on the current Paddle device."""
    import paddle

    device = paddle.device.get_device()
    sync = paddle.device.synchronize if device.startswith("gpu") else (lambda: None)
    x = paddle.randn([batch_size, in_channels, resolution, resolution])
    times = []
    with paddle.no_grad():
        for i in range(warmup + runs):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return Latency(float(median), float(q3 - q1), runs, batch_size, resolution, device)
