"""Latency without timing every network: a table of block latencies, each distinct block (type, parameters,
input shape) timed once on the target device, and a linear fit of whole-network latency on their sum (nn-Meter's
kernel-sum idea at block granularity). Blocks the table has not seen are estimated from their MAdds and the
sizes of their input and output maps by a least-squares fit per block type. The table is a JSON file: build it
where the network will run (`lwnas latency table`), copy it back, and search with `--latency-engine
predict:TABLE`."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LwnasError

TABLE_VERSION = 1


@dataclass(frozen=True)
class BlockRow:
    key: str  # type, parameters and input shape: what makes two blocks time alike
    type: str
    args: dict
    in_shape: tuple[int, int, int]
    features: tuple[float, float, float]  # MAdds, input and output elements: what an unseen block is estimated from


def block_rows(spec, resolution: int | None = None) -> list[BlockRow]:
    from ..model.blocks import BLOCKS
    from ..model.cost import trace

    rows = []
    for (_, block), cost in zip(spec.blocks(), trace(spec, resolution)):
        args = block.kwargs
        if BLOCKS[block.type].head:
            args["num_classes"] = spec.num_classes
        key = json.dumps([block.type, sorted(args.items()), list(cost.in_shape)])
        rows.append(BlockRow(key, block.type, args, tuple(cost.in_shape),
                             (float(cost.macs), float(np.prod(cost.in_shape)), float(np.prod(cost.out_shape)))))
    return rows


@dataclass
class LatencyTable:
    engine: str
    threads: int
    batch_size: int
    device: str
    blocks: dict[str, float] = field(default_factory=dict)  # key -> median ms
    features: dict[str, list] = field(default_factory=dict)  # key -> [type, MAdds, input elements, output elements]
    scale: float = 1.0  # network ms = scale * sum of block ms + overhead
    overhead: float = 0.0
    per_type: dict[str, list] = field(default_factory=dict)  # type -> least-squares coefficients
    networks: list = field(default_factory=list)  # [sum of block ms, measured network ms] behind the fit

    def block_ms(self, row: BlockRow) -> float:
        if row.key in self.blocks:
            return self.blocks[row.key]
        coefficients = self.per_type.get(row.type, self.per_type.get("*"))
        if coefficients is None:
            raise LwnasError(f"latency table has no {row.type} block and no fallback; build it on this space")
        return max(0.0, float(np.dot(coefficients, (1.0, *row.features))))

    def predict(self, spec, resolution: int | None = None) -> float:
        return self.scale * sum(self.block_ms(row) for row in block_rows(spec, resolution)) + self.overhead

    def coverage(self, spec) -> float:
        """Share of the network's blocks the table timed itself (the rest are estimated)."""
        rows = block_rows(spec)
        return sum(row.key in self.blocks for row in rows) / len(rows)

    def fit(self):
        """The per-type estimates for unseen blocks, and the network-level scale and overhead."""
        by_type: dict[str, list] = {}
        for key, (kind, *features) in self.features.items():
            by_type.setdefault(kind, []).append(((1.0, *features), self.blocks[key]))
            by_type.setdefault("*", []).append(((1.0, *features), self.blocks[key]))
        self.per_type = {kind: np.linalg.lstsq(np.array([x for x, _ in pairs]), np.array([y for _, y in pairs]),
                                               rcond=None)[0].tolist()
                         for kind, pairs in by_type.items() if len(pairs) >= 4}
        if len(self.networks) >= 2:
            sums, measured = np.array(self.networks).T
            self.scale, self.overhead = (float(v) for v in np.polyfit(sums, measured, 1))

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


def time_block(row: BlockRow, engine: str, threads: int, batch_size: int, runs: int) -> float:
    """One block on its own, on the current device, as deployed (eval mode, re-parameterized)."""
    from ..model.blocks import BLOCKS
    from .export import deployable
    from .latency import measure

    c, h, w = row.in_shape
    layer = deployable(BLOCKS[row.type].layer(c, dict(row.args)))
    return measure(layer, h, batch_size, warmup=5, runs=runs, in_channels=c, engine=engine,
                   threads=threads).median_ms


def build_table(specs, engine: str = "inference", threads: int = 1, batch_size: int = 1, runs: int = 20,
                note=print) -> LatencyTable:
    """Time every distinct block of `specs` once and each whole network once, then fit."""
    import paddle

    from ..model.build import build
    from .export import deployable
    from .latency import measure

    table = LatencyTable(engine, threads, batch_size, paddle.device.get_device())
    for i, spec in enumerate(specs, 1):
        rows = block_rows(spec)
        for row in rows:
            if row.key not in table.blocks:
                table.blocks[row.key] = time_block(row, engine, threads, batch_size, runs)
                table.features[row.key] = [row.type, *row.features]
        network = measure(deployable(build(spec)), spec.resolution, batch_size, warmup=5, runs=runs,
                          in_channels=spec.in_channels, engine=engine, threads=threads).median_ms
        table.networks.append([sum(table.blocks[row.key] for row in rows), network])
        note(f"[{i}/{len(specs)}] {spec.name}: {network:.2f} ms, sum of its {len(rows)} blocks "
             f"{table.networks[-1][0]:.2f} ms; {len(table.blocks)} blocks timed so far")
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
