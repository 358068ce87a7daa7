"""What a search is asked to do (SearchSettings), and how a study's stored settings differ from a resumed run's."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..budget import human
from ..train.settings import TrainConfig

# 3: a trial's params name its network, channel repairs included (2 queued repaired drafts as trials of their
# own, which kept NSGA-II in its first generation); only shrunk drafts are queued
# 4: trials are scored on a validation split held out from the training images (3 and before: on the test split)
ENCODING = 4
DEFAULT_TRIALS = 6  # when no compute budget is given
SCHEDULE_EPOCHS = 15  # the training schedule of a trial, unless --epochs says otherwise


@dataclass
class SearchSettings:
    space: str = "micro"
    budget: int = 12_000_000
    trials: int | None = 6  # trainings (finished or stopped at a rung); None: until a compute budget is spent
    data: str = "synthetic"
    objective: str = "accuracy"  # accuracy | accuracy-latency
    sampler: str = "random"  # with successive halving (ASHA) it led TPE at equal compute (docs/benchmarks.md)
    seed: int = 0
    device: str = "cpu"
    study: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"
    shrink: bool = False  # shrink over-budget samples toward the budget (piles networks onto its edge)
    latency_batch: int = 1
    latency_runs: int = 30
    latency_engine: str = "auto"  # auto | eager | inference | onnxruntime | predict:TABLE (lwnas.search.trial_latency)
    latency_threads: int = 1
    skip_bad_images: bool = False
    heartbeat_grace: int = 60  # seconds without a heartbeat before a worker's trial counts as dead
    until_total: int | None = None  # stop when the study holds this many trained trials (set for --workers)
    baselines: tuple[str, ...] = ()  # named configs trained with the same proxy, as the reference to beat
    worker: int = 0  # index among the --workers K processes: each samples with its own seed
    prescreen: int = 1  # train only the best of every N feasible candidates by a zero-cost score (1: off)
    prescreen_score: str = "params"
    supernet: str | None = None  # a supernet run folder or checkpoint: score by inherited weights, not training
    pruner: str = "sha"  # sha | hyperband | median | none (lwnas.search.pruning)
    min_epochs: int = 2  # successive halving's first rung
    reduction_factor: int = 3  # successive halving keeps the best 1/reduction_factor at each rung
    max_epochs: int | None = None  # compute budget: training epochs of all trials together, over the whole study
    time_limit: float | None = None  # seconds this run may take; a trial it stops continues when the study resumes
    proxy: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=SCHEDULE_EPOCHS))  # every trial's schedule

    @property
    def multi(self) -> bool:
        return self.objective == "accuracy-latency"

    def study_name(self) -> str:
        if self.study:
            return self.study
        data = "synthetic" if self.data == "synthetic" else re.sub(r"[^A-Za-z0-9_.-]", "_", Path(self.data).name)
        kind = "acc-lat" if self.multi else "acc"
        return f"{self.space}-{human(self.budget).replace('.00', '')}-{data}-{kind}"[:100]


def settings_diff(stored: dict, asked: dict) -> str:
    """'key: stored -> asked' for every setting that differs, nested proxy settings as proxy.key."""
    def flat(settings: dict) -> dict:
        out = {}
        for key, value in settings.items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        return out

    old, new = flat(stored), flat(asked)
    changed = [f"{key}: changed" if key.endswith("sha256") else
               f"{key}: {old.get(key, 'unset')} -> {new.get(key, 'unset')}"
               for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    if (old.get("encoding") or 0) < 4:
        changed.append("its trials were scored on the test split, which lwnas no longer selects on")
    return "; ".join(changed)
