"""Latency without timing every network: a linear model of whole-network latency, fitted on random networks of a
space timed where they will run. A block adds a cost per block of its type and costs per multiply-add, weight,
layer call (convolutions and fully-connected layers) and element written, with coefficients per block type or
pooled over types, whichever predicts the table's own networks better when each is left out. The fit is on whole
networks, so every block is timed in context, with the fusions, caches and scheduling it gets inside a network:
a block timed alone costs something else (the first table of this kind, block timings summed, was off by more
than 10% for 60-76% of held-out networks). Timings are `fast_ms` (lwnas.deploy.latency), which repeat where a
median does not. Paddle Inference on a CPU runs a network on whichever of its two backends is faster for it, so
the table models each backend and predicts the smaller. The table is a JSON file: build it where the network
will run (`lwnas latency table`), copy it back, and search with `--latency-engine predict:TABLE`."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LwnasError

TABLE_VERSION = 2
FEATURES = ("blocks", "madds", "weights", "calls", "written")  # summed per block type over a network
RIDGE_STRENGTHS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # per network, on features scaled to unit mean
# How a network's features enter the fit: every feature per block type; per type only the per-block and per-call
# costs, with MAdds, weights and elements written pooled over types; or everything pooled.
LAYOUTS = ("per type", "shared", "pooled")
PER_CALL = [FEATURES.index("blocks"), FEATURES.index("calls")]
PER_ELEMENT = [FEATURES.index("madds"), FEATURES.index("weights"), FEATURES.index("written")]


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
    models: dict = field(default_factory=dict)  # backend -> {"layout", "ridge", "scale", "coefficients", ...} (`fit`)

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
        return min(float((self.design_row(features, model["layout"]) / model["scale"]) @ model["coefficients"])
                   for model in self.models.values())

    def measure(self, spec, resolution: int | None = None, runs: int = 20) -> float:
        """The network timed as the table's networks were (engine, threads, batch, rounds; the faster backend's
        `fast_ms`): what `predict` is to be compared with."""
        timed = time_network(spec, self.engine, self.threads, self.batch_size, runs, resolution or self.resolution)
        return min(latency.fast_ms for latency in timed.values())

    def design_row(self, features: dict[str, list[float]], layout: str) -> np.ndarray:
        """One network's design row: an overhead column, then its features in `layout` (see LAYOUTS)."""
        per_type = np.array([features.get(kind, [0.0] * len(FEATURES)) for kind in self.types])
        if layout == "per type":
            values = per_type.ravel()
        elif layout == "shared":
            values = np.concatenate([per_type[:, PER_CALL].ravel(), per_type[:, PER_ELEMENT].sum(0)])
        else:
            values = per_type.sum(0)
        return np.concatenate([[1.0], values])

    def fit(self):
        """Per backend, ridge least squares on relative error (every network counts alike, whatever its latency),
        with the features scaled to unit mean; the layout and the ridge strength are the pair with the lowest
        leave-one-out error on the table's own networks (with few networks, fewer coefficients predict better)."""
        if len(self.networks) < 2:
            raise LwnasError("a latency table needs at least two timed networks")
        designs = {}  # layout -> (rows, scale): the same for every backend
        for layout in LAYOUTS:
            rows = np.array([self.design_row(network["features"], layout) for network in self.networks])
            designs[layout] = rows, np.where(rows.mean(0) > 0, rows.mean(0), 1.0)
        self.models = {}
        for backend in self.networks[0]["ms"]:
            measured = np.array([network["ms"][backend] for network in self.networks])
            candidates = []
            for layout, (rows, scale) in designs.items():
                relative = rows / scale / measured[:, None]  # predicting 1 for every row is predicting the timing
                for strength in RIDGE_STRENGTHS:
                    coefficients, error = _ridge(relative, strength)
                    candidates.append((error, {"layout": layout, "ridge": strength, "scale": scale.tolist(),
                                               "coefficients": coefficients.tolist(),
                                               "leave_one_out_rmse": error ** 0.5}))
            self.models[backend] = min(candidates, key=lambda candidate: candidate[0])[1]

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


def _ridge(x: np.ndarray, strength: float) -> tuple[np.ndarray, float]:
    """Coefficients fitting x @ c = 1 under a ridge penalty (the first, overhead, column unpenalized), and their
    mean squared leave-one-out residual (closed form, from the hat matrix)."""
    penalty = strength * len(x) * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    inverse = np.linalg.pinv(x.T @ x + penalty)
    coefficients = inverse @ x.T @ np.ones(len(x))
    leverage = np.einsum("ij,jk,ik->i", x, inverse, x)
    residuals = (1.0 - x @ coefficients) / np.maximum(1.0 - leverage, 1e-9)
    return coefficients, float(np.mean(residuals ** 2))


TABLE_ROUNDS = 6  # rounds of timed runs per network and backend; the table models the fastest (Latency.fast_ms)


def time_network(spec, engine: str, threads: int, batch_size: int, runs: int, resolution: int | None = None,
                 rounds: int = TABLE_ROUNDS) -> dict:
    """The deployed network timed on each backend of `engine` (backend -> Latency), on the current device."""
    from ..model.build import build
    from .export import deployable
    from .latency import measure_backends

    return measure_backends(deployable(build(spec)), resolution or spec.resolution, batch_size, warmup=5, runs=runs,
                            in_channels=spec.in_channels, engine=engine, threads=threads, rounds=rounds)


def build_table(specs, engine: str = "inference", threads: int = 1, batch_size: int = 1, runs: int = 20,
                resolution: int | None = None, note=print) -> LatencyTable:
    """Time each network of `specs` on every backend of `engine`, then fit."""
    import paddle

    table = LatencyTable(engine, threads, batch_size, paddle.device.get_device(), resolution)
    for i, spec in enumerate(specs, 1):
        ms = {backend: latency.fast_ms for backend, latency in
              time_network(spec, engine, threads, batch_size, runs, resolution).items()}
        table.networks.append({"name": spec.name, "features": network_features(spec, resolution), "ms": ms})
        note(f"[{i}/{len(specs)}] {spec.name}: " + ", ".join(f"{backend} {value:.2f} ms"
                                                             for backend, value in ms.items()))
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
