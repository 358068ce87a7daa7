"""Latency without timing every network: a linear model of whole-network latency, fitted on random networks of a
space timed where they will run. A block adds a cost per block of its type and costs per multiply-add, weight,
layer call (convolutions and fully-connected layers) and element written, each coefficient fitted per block type.
The fit is on whole networks, so every block is timed in context, with the fusions, caches and scheduling it gets
inside a network: a block timed alone costs something else (the first table of this kind, block timings summed,
was off by more than 10% for 40-76% of held-out networks). Paddle Inference on a CPU runs a network on whichever of
its two backends is faster for it (lwnas.deploy.latency), so the table models each backend and predicts the
smaller. The table is a JSON file: build it where the network will run (`lwnas latency table`), copy it back, and
search with `--latency-engine predict:TABLE`."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LwnasError

TABLE_VERSION = 2
FEATURES = ("blocks", "madds", "weights", "calls", "written")  # summed per block type over a network
RIDGE = 1e-3  # keeps the per-type coefficients of rare types small; relative to the features' scale


def network_features(spec, resolution: int | None = None) -> dict[str, list[float]]:
    """Per block type, the network's FEATURES summed over its blocks of that type (computed, nothing is built)."""
    from ..model.cost import trace

    sums: dict[str, np.ndarray] = {}
    for row in trace(spec, resolution):
        weights = row.params  # deployed weights (MobileOne folded): what a forward pass reads
        sums[row.type] = sums.get(row.type, np.zeros(len(FEATURES))) + (1, row.macs, weights, row.kernels,
                                                                          row.written)
    return {kind: values.tolist() for kind, values in sorted(sums.items())}


@dataclass
class LatencyTable:
    engine: str
    threads: int
    batch_size: int
    device: str
    resolution: int | None = None  # the networks' own when None
    networks: list = field(default_factory=list)  # {"name", "features": {type: FEATURES}, "ms": {backend: ms}}
    models: dict = field(default_factory=dict)  # backend -> {"scale": [...], "coefficients": [...]}, from `fit`

    @property
    def types(self) -> list[str]:
        return sorted({kind for network in self.networks for kind in network["features"]})

    def predict(self, spec, resolution: int | None = None) -> float:
        """Predicted milliseconds: the fastest backend's."""
        features = network_features(spec, resolution or self.resolution)
        unknown = sorted(set(features) - set(self.types))
        if unknown:
            raise LwnasError(f"this latency table has no {', '.join(unknown)} blocks (it was built on networks of "
                             f"{', '.join(self.types)}); build it on the space you search (`lwnas latency table "
                             f"--space ...`)")
        row = self._row(features)
        return min(float((row / model["scale"]) @ model["coefficients"]) for model in self.models.values())

    def _row(self, features: dict[str, list[float]]) -> np.ndarray:
        """One network's design row: an overhead column, then FEATURES for each type the table knows."""
        zeros = [0.0] * len(FEATURES)
        return np.array([1.0] + [value for kind in self.types for value in features.get(kind, zeros)])

    def fit(self):
        """Per backend, ridge least squares on relative error (every network counts alike, whatever its latency),
        with the features scaled to unit mean so one ridge strength suits all."""
        if len(self.networks) < 2:
            raise LwnasError("a latency table needs at least two timed networks")
        rows = np.array([self._row(network["features"]) for network in self.networks])
        scale = np.where(rows.mean(0) > 0, rows.mean(0), 1.0)
        scaled = rows / scale
        penalty = np.sqrt(RIDGE * len(rows)) * np.eye(scaled.shape[1])
        penalty[0, 0] = 0.0  # the overhead is not shrunk
        self.models = {}
        for backend in self.networks[0]["ms"]:
            measured = np.array([network["ms"][backend] for network in self.networks])
            a = np.vstack([scaled / measured[:, None], penalty])
            b = np.concatenate([np.ones(len(rows)), np.zeros(len(penalty))])
            coefficients = np.linalg.lstsq(a, b, rcond=None)[0]
            self.models[backend] = {"scale": scale.tolist(), "coefficients": coefficients.tolist()}

    def save(self, path: str | Path):
        Path(path).write_text(json.dumps({"version": TABLE_VERSION, **asdict(self)}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        try:
            data = json.loads(Path(path).read_text())
        except OSError as err:
            raise LwnasError(f"cannot read latency table {path}: {err.strerror}") from None
        except json.JSONDecodeError as err:
            raise LwnasError(f"{path}: not a latency table (invalid JSON: {err.msg})") from None
        if not isinstance(data, dict) or data.pop("version", None) != TABLE_VERSION:
            raise LwnasError(f"{path}: not a latency table of this lwnas (version {TABLE_VERSION}); build it with "
                             f"`lwnas latency table`")
        return cls(**data)


def time_network(spec, engine: str, threads: int, batch_size: int, runs: int, resolution: int | None = None
                 ) -> dict[str, float]:
    """Median milliseconds of the deployed network on each backend of `engine`, on the current device."""
    from ..model.build import build
    from .export import deployable
    from .latency import measure_backends

    backends = measure_backends(deployable(build(spec)), resolution or spec.resolution, batch_size, warmup=5,
                                runs=runs, in_channels=spec.in_channels, engine=engine, threads=threads)
    return {backend: latency.median_ms for backend, latency in backends.items()}


def build_table(specs, engine: str = "inference", threads: int = 1, batch_size: int = 1, runs: int = 20,
                resolution: int | None = None, note=print) -> LatencyTable:
    """Time each network of `specs` on every backend of `engine`, then fit."""
    import paddle

    table = LatencyTable(engine, threads, batch_size, paddle.device.get_device(), resolution)
    for i, spec in enumerate(specs, 1):
        ms = time_network(spec, engine, threads, batch_size, runs, resolution)
        table.networks.append({"name": spec.name, "features": network_features(spec, resolution), "ms": ms})
        note(f"[{i}/{len(specs)}] {spec.name}: " + ", ".join(f"{backend} {value:.2f} ms" for backend, value in ms.items()))
    table.fit()
    return table


def sample_specs(space, count: int, seed: int, num_classes: int = 1000, budget: int | None = None) -> list:
    """`count` distinct random networks of the space (under `budget` MAdds when given)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs, seen = [], set()
    for _ in range(200 * count):
        sample = space.sample(study.ask(), budget, num_classes=num_classes, name=f"{space.name}-{len(specs)}")
        if sample.spec is None or budget is not None and sample.macs > budget or sample.spec.arch_hash in seen:
            continue
        seen.add(sample.spec.arch_hash)
        specs.append(sample.spec)
        if len(specs) == count:
            break
    return specs
