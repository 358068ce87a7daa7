"""`lwnas search`: an Optuna study over a search space under a MAdds budget.

Each trial samples a network (lwnas.space), rejects it analytically if it is over budget, skips an
architecture the study already holds, and otherwise proxy-trains it (lwnas.train) and measures its latency
(lwnas.latency). Everything a trial produced is stored in the
study (Optuna RDB storage: SQLite under runs/ by default) and under runs/<study>/, so a killed search
resumes where it stopped.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .budget import human
from .errors import LwnasError
from .progress import Progress
from .storage import check_study_name, fail_stale, open_storage, redact, storage_url
from .train import TrainConfig, TrainingDiverged, load_data, seed_everything

SAMPLERS = ("tpe", "nsga2", "random")
# 3: a trial's params name its network, channel repairs included (2 queued repaired drafts as trials of their
# own, which kept NSGA-II in its first generation); only shrunk drafts are queued
ENCODING = 3
PRESCREEN_BATCH = 64  # training images a zero-cost score sees
PRUNE_STARTUP_TRIALS, PRUNE_WARMUP_EPOCHS = 3, 2  # epoch 1 is too noisy to prune on
SLOT_PREFIX = "#slot"  # claims-table rows that are training slots (arch hashes are hex)


@dataclass
class SearchSettings:
    space: str = "micro"
    budget: int = 12_000_000
    trials: int = 6
    data: str = "synthetic"
    objective: str = "accuracy"  # accuracy | accuracy-latency
    sampler: str = "tpe"  # for both objectives: it learns from rejected drafts, NSGA-II does not (README)
    seed: int = 0
    device: str = "cpu"
    study: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"
    shrink: bool = False  # shrink over-budget samples toward the budget (piles networks onto its edge)
    latency_batch: int = 1
    latency_runs: int = 30
    latency_engine: str = "eager"  # eager (the dynamic graph) or inference (a Paddle Inference predictor)
    latency_threads: int = 1
    skip_bad_images: bool = False
    heartbeat_grace: int = 60  # seconds without a heartbeat before a worker's trial counts as dead
    until_total: int | None = None  # stop when the study holds this many trained trials (set for --workers)
    baselines: tuple[str, ...] = ()  # named configs trained with the same proxy, as the reference to beat
    worker: int = 0  # index among the --workers K processes: each samples with its own seed
    prescreen: int = 1  # train only the best of every N feasible candidates by a zero-cost score (1: off)
    prescreen_score: str = "params"
    proxy: TrainConfig = field(default_factory=TrainConfig)

    @property
    def multi(self) -> bool:
        return self.objective == "accuracy-latency"

    def study_name(self) -> str:
        if self.study:
            return self.study
        data = "synthetic" if self.data == "synthetic" else re.sub(r"[^A-Za-z0-9_.-]", "_", Path(self.data).name)
        kind = "acc-lat" if self.multi else "acc"
        return f"{self.space}-{human(self.budget).replace('.00', '')}-{data}-{kind}"[:100]


def _beats(trial: dict, baseline: dict, multi: bool) -> bool:
    """Higher top-1; with two objectives, at least as good on top-1 and latency and better on one."""
    top1, latency = trial["top1"], trial["latency_ms"]
    if not multi:
        return top1 > baseline["top1"]
    return top1 >= baseline["top1"] and latency <= baseline["latency_ms"] and \
        (top1 > baseline["top1"] or latency < baseline["latency_ms"])


def sampler_seed(seed: int, worker: int) -> int:
    """Worker 0 samples with --seed itself; worker k with a seed derived from (seed, k), so that workers started
    together do not draw the same architectures."""
    import numpy as np

    return seed if worker == 0 else int(np.random.SeedSequence([seed, worker]).generate_state(1)[0])


def make_sampler(settings: SearchSettings):
    import optuna

    name = settings.sampler
    seed = sampler_seed(settings.seed, settings.worker)
    if name not in SAMPLERS:
        raise LwnasError(f"unknown sampler {name!r}; expected one of: {', '.join(SAMPLERS)}")
    if name == "tpe":  # multivariate/group TPE models the define-by-run space jointly (Optuna marks it experimental)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4, multivariate=True, group=True)
    if name == "nsga2":
        # A generation no larger than the run: with a population above --trials NSGA-II never leaves its
        # random first generation. Its parents are completed trials only: rejected drafts never inform it.
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, min(8, settings.trials)))
    return optuna.samplers.RandomSampler(seed=seed)


def is_trained(trial) -> bool:
    """A completed trial that trained its architecture (studies of older lwnas versions completed repeats too)."""
    import optuna

    return trial.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in trial.user_attrs


def prune_now(trial, epoch: int, epochs: int, top1: float | None = None, multi: bool = False) -> bool:
    """The pruner's verdict after `epoch`, except after the last: the network is trained by then, and pruning
    would discard a finished result. Two-objective studies prune on top-1 alone (Optuna's pruners take one
    objective), by the same median rule."""
    if epoch >= epochs:
        return False
    return below_median(trial.study, epoch, top1) if multi else trial.should_prune()


def below_median(study, epoch: int, top1: float) -> bool:
    """Optuna's MedianPruner rule (3 startup trials, 2 warm-up epochs) on the top-1 histories of the trained
    trials: below their median at this epoch."""
    import statistics

    if epoch < PRUNE_WARMUP_EPOCHS:
        return False
    seen = [h["top1"] for t in Search.trained_trials(study) for h in t.user_attrs.get("history", [])
            if h["epoch"] == epoch]
    return len(seen) >= PRUNE_STARTUP_TRIALS and top1 < statistics.median(seen)


class Duplicate(LwnasError):
    """A sample of an architecture the study already holds (trained, pruned or training elsewhere). The trial
    is failed, not completed with a copy of the original's result: samplers skip failed trials, so none of
    them sees one network twice, and the pruner's statistics hold each network once."""


class Interrupted(LwnasError):
    """Ctrl-C during a trial: the trial is failed, its parameters queued to be tried first on resume."""


class Search:
    def __init__(self, settings: SearchSettings):
        from .configs import get_config
        from .space import get_space

        self.settings = settings
        self.name = check_study_name(settings.study_name())
        self.space = get_space(settings.space)
        self.baselines = {name: get_config(name) for name in dict.fromkeys(settings.baselines)}
        self.url = storage_url(settings.storage, settings.runs_dir)
        self.run_dir = Path(settings.runs_dir) / self.name
        self.stats = dict.fromkeys(("rejected", "shrunk", "prescreened", "duplicates", "failed", "pruned",
                                    "trained"), 0)
        self.train_set = self.val_set = None
        self.progress = Progress(settings.trials)
        self._candidates, self._batch = [], None  # --prescreen: this worker's candidates so far, the score's batch
        self._slot = None  # (training slot, trial number) held by the running trial

    def load_data(self):
        """The proxy's train/val sets. MAdds count with their class count from here on: the budget must admit
        the space's smallest network, and the baselines must fit it."""
        from .cost import count

        if self.train_set is not None:
            return
        s = self.settings
        self.train_set, self.val_set = load_data(s.data, s.proxy, s.skip_bad_images)
        smallest = self.space.smallest(len(self.train_set.classes))
        if s.budget < smallest.macs:
            raise LwnasError(f"budget {human(s.budget)} MAdds is below the smallest network of space "
                             f"'{self.space.name}' ({human(smallest.macs)} MAdds at {self.space.resolution}px with "
                             f"{len(self.train_set.classes)} classes); raise --flops-budget or pick a smaller space")
        for name, spec in self.baselines.items():
            spec = self.baselines[name] = spec.replace(num_classes=len(self.train_set.classes))
            macs = count(spec, self.space.resolution).macs
            if macs > s.budget:
                raise LwnasError(f"baseline {name} has {human(macs)} MAdds at {self.space.resolution}px, over the "
                                 f"{human(s.budget)} budget; pick a named config under the budget")

    # ---- study ----------------------------------------------------------------------------
    def open_study(self):
        import optuna

        settings = self.settings
        storage = open_storage(self.url, settings.heartbeat_grace)
        directions = ["maximize", "minimize"] if settings.multi else ["maximize"]
        pruner = optuna.pruners.NopPruner() if settings.multi else optuna.pruners.MedianPruner(
            n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=PRUNE_WARMUP_EPOCHS)
        try:
            study = optuna.create_study(study_name=self.name, storage=storage, directions=directions,
                                        sampler=make_sampler(settings), pruner=pruner, load_if_exists=True)
        except ValueError as err:  # e.g. an existing study with other directions
            raise LwnasError(f"study {self.name!r}: {err}") from None
        from .claims import ArchClaims

        self.claims = ArchClaims(storage.engine, self.name)
        identity = self.identity()
        stored = study.user_attrs.get("settings")
        if stored is None:
            study.set_user_attr("settings", identity)
        elif stored != identity:
            changed = sorted(k for k in identity if stored.get(k) != identity[k])
            raise LwnasError(f"study {self.name!r} was created with other settings ({', '.join(changed)} "
                             f"differ); resume it with the same options or pass a new --study name")
        return study

    def identity(self) -> dict:
        """What makes trials of one study comparable; resuming with any of it changed is refused."""
        import hashlib

        from .space import space_path

        s = self.settings
        return {"space": s.space, "space_file_sha256": hashlib.sha256(space_path(s.space).read_bytes()).hexdigest(),
                "budget": s.budget, "data": s.data, "objective": s.objective, "proxy": s.proxy.to_dict(),
                "device": "cpu" if s.device == "cpu" else "gpu", "shrink": s.shrink, "sampler": s.sampler,
                "latency_engine": s.latency_engine, "latency_threads": s.latency_threads,
                "latency_batch": s.latency_batch, "encoding": ENCODING}

    def run(self, progress: Progress | None = None):
        import optuna

        settings = self.settings
        from . import quiet

        # Failed trials are reported on the progress line; Optuna's own report adds their parameters and a traceback.
        optuna.logging.set_verbosity(optuna.logging.INFO if quiet.verbose else optuna.logging.ERROR)
        self.load_data()  # first: a bad data path must not create a study
        study = self.open_study()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress or self.progress
        before = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        self.progress.note(f"study {self.name} in {redact(self.url)}: {before} completed trial(s) so far; "
                           f"space {self.space.name}, budget {human(settings.budget)} MAdds, data {settings.data} "
                           f"({len(self.train_set)} train / {len(self.val_set)} val images)")
        skipped = self.train_set.skipped_note(self.val_set)
        if skipped:
            self.progress.note(skipped)
        self.progress.trial_times = [t.user_attrs["train_seconds"] for t in self.trained_trials(study)
                                     if "train_seconds" in t.user_attrs][-20:]  # resuming: the ETA knows the pace
        self.train_baselines(study)
        attempts = max(500, 100 * settings.trials)  # rejected drafts cost milliseconds
        self.target = settings.until_total or self.trained(study) + settings.trials

        def stop_when_done(study, trial):
            if self.interrupted or self.trained(study) >= self.target or self._attempts >= attempts:
                study.stop()
            elif self.stats["failed"] >= max(3, settings.trials):
                self.progress.note(f"stopping: {self.stats['failed']} trials failed (see their 'error' attribute "
                                   f"in `lwnas runs show`); check the proxy settings, e.g. --lr")
                study.stop()

        self._attempts, self.interrupted = 0, False
        study.optimize(self.objective, callbacks=[stop_when_done], catch=(TrainingDiverged, Interrupted, Duplicate),
                       gc_after_trial=True)
        if self.interrupted:
            raise KeyboardInterrupt
        if self.trained(study) < self.target and self._attempts >= attempts:
            self.progress.note(f"stopped after {self._attempts} samples: only {self.stats['trained']} new "
                               f"architectures found (the others were duplicates or over budget)")
        self._settle(study)
        s = self.stats
        self.progress.note(f"done: {s['trained']} trained, {s['shrunk']} over-budget drafts shrunk and queued, "
                           f"{s['duplicates']} repeated architectures skipped, {s['rejected']} samples rejected "
                           f"over budget, {s['prescreened']} candidates prescreened, {s['pruned']} pruned, "
                           f"{s['failed']} failed")
        self.compare_with_baselines(study)
        return study

    # ---- baselines ------------------------------------------------------------------------
    def train_baselines(self, study):
        """Train each --baseline config once per study with the same proxy, data, seed and latency measurement
        as the trials; the results are study attributes (not trials, so the sampler never sees them)."""
        self.load_data()
        for name, spec in self.baselines.items():
            if name in study.user_attrs.get("baselines", {}):
                continue
            result = self._train_baseline(name, spec)
            if result is not None:  # re-read: another worker may have recorded another baseline meanwhile
                study.set_user_attr("baselines", {**study.user_attrs.get("baselines", {}), name: result})

    def _train_baseline(self, name: str, spec):
        from .build import build
        from .cost import count
        from .latency import deployable, measure

        settings, progress, res = self.settings, self.progress, self.space.resolution
        cost = count(spec, res)
        progress.begin_baseline(name, spec.arch_hash, cost.macs)
        seed_everything(settings.proxy.seed)
        model = build(spec)
        epochs, current = settings.proxy.epochs, {"epoch": 1}

        def on_epoch(result):
            current["epoch"] = result.epoch + 1
            progress.epoch(result.epoch, epochs, result.top1, result.loss)

        try:
            history = self._train(model, on_epoch,
                                  lambda step, steps, loss: progress.step(current["epoch"], epochs, step, steps, loss))
        except TrainingDiverged as err:
            progress.finish(f"failed: {err} (not recorded; it is retried on the next run)", trained=False)
            return None
        latency = measure(deployable(model), res, settings.latency_batch, runs=settings.latency_runs,
                          engine=settings.latency_engine, threads=settings.latency_threads)
        result = {"arch_hash": spec.arch_hash, "madds": cost.macs, "params": cost.params,
                  "top1": history[-1].top1, "latency_ms": latency.median_ms, "latency_iqr_ms": latency.iqr_ms,
                  "history": [h.__dict__ for h in history]}
        self._write_artifacts(f"baseline_{name}", spec, result)
        progress.finish(f"top-1 {result['top1']:.1f}%, latency {latency.median_ms:.2f} ms", trained=False)
        return result

    def compare_with_baselines(self, study):
        """One line per baseline: which trained trial beats it (higher top-1; with two objectives, a trial that
        dominates it on top-1 and latency), or that none does."""
        trained = self.trained_trials(study)
        for name, b in sorted(study.user_attrs.get("baselines", {}).items()):
            winners = [t for t in trained if _beats(t.user_attrs, b, self.settings.multi)]
            head = f"baseline {name}: top-1 {b['top1']:.1f}%, {human(b['madds'])} MAdds, {b['latency_ms']:.2f} ms"
            if winners:
                best = max(winners, key=lambda t: t.user_attrs["top1"])
                w = best.user_attrs
                self.progress.note(f"{head}: beaten by trial {best.number} (top-1 {w['top1']:.1f}%, "
                                   f"{human(w['madds'])} MAdds, {w['latency_ms']:.2f} ms)")
            else:
                self.progress.note(f"{head}: not beaten by any of the {len(trained)} trained architectures")

    # ---- one trial ------------------------------------------------------------------------
    def objective(self, trial):
        """One trial (see _trial); Ctrl-C fails it cleanly and queues its parameters for the resumed search."""
        try:
            value = self._trial(trial)
            self._slot = None  # a completed trial keeps its slot
            return value
        except KeyboardInterrupt:
            self._give_back_slot(trial)
            trial.set_user_attr("error", "interrupted (Ctrl-C); retried first when the search resumes")
            if trial.params:
                trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            self.interrupted = True
            raise Interrupted(f"trial {trial.number} interrupted") from None
        except BaseException:
            self._give_back_slot(trial)
            raise

    def _trial(self, trial):
        import optuna

        from .build import build
        from .cost import count
        from .latency import deployable, measure

        settings = self.settings
        self._attempts += 1
        spec = self.draw(trial)
        self._prescreen(trial, spec)
        same = self._owner(trial, spec.arch_hash)
        if same is not None:
            self.stats["duplicates"] += 1
            trial.set_user_attr("duplicate_of", same.number)
            raise Duplicate(f"architecture {spec.arch_hash} is trial {same.number}'s")

        self._reserve_slot(trial, spec.arch_hash)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # which process trained it
        cost = count(spec)
        trial.set_user_attr("params", cost.params)
        trial.set_user_attr("spec", spec.to_yaml())
        progress = self.progress
        progress.begin(trial.number, spec.arch_hash, cost.macs)
        seed_everything(settings.proxy.seed)  # every candidate starts from the same seeded state
        model = build(spec, len(self.train_set.classes))
        epochs = settings.proxy.epochs
        current = {"epoch": 1}
        epochs_seen = []

        def on_step(step, steps, loss):
            progress.step(current["epoch"], epochs, step, steps, loss)

        def on_epoch(result):
            current["epoch"] = result.epoch + 1
            progress.epoch(result.epoch, epochs, result.top1, result.loss)
            epochs_seen.append(result.__dict__)  # fresh per attempt: a retried trial inherits the dead one's attrs
            trial.set_user_attr("history", epochs_seen)
            if not settings.multi:
                trial.report(result.top1, result.epoch)
            if prune_now(trial, result.epoch, epochs, result.top1, settings.multi):
                self.stats["pruned"] += 1
                reason = f"top-1 {result.top1:.1f}% at epoch {result.epoch} is below the median of earlier trials"
                trial.set_user_attr("pruned", reason)
                progress.finish(f"pruned: {reason}", trained=False)
                raise optuna.TrialPruned()

        start = time.time()
        try:
            history = self._train(model, on_epoch, on_step)
        except TrainingDiverged as err:
            self.stats["failed"] += 1
            trial.set_user_attr("error", str(err))
            progress.finish(f"failed: {err}", trained=False)
            raise
        trial.set_user_attr("train_seconds", round(time.time() - start, 2))
        latency = measure(deployable(model), spec.resolution, settings.latency_batch, runs=settings.latency_runs,
                          engine=settings.latency_engine, threads=settings.latency_threads)
        top1 = history[-1].top1
        trial.set_user_attr("top1", top1)
        trial.set_user_attr("latency_ms", latency.median_ms)
        trial.set_user_attr("latency_iqr_ms", latency.iqr_ms)
        self._write_artifacts(f"trial_{trial.number:04d}", spec,
                              {"arch_hash": spec.arch_hash, "madds": cost.macs, "params": cost.params,
                               "top1": top1, "latency": latency.to_dict(), "history": [h.__dict__ for h in history]})
        self.stats["trained"] += 1
        progress.finish(f"top-1 {top1:.1f}%, latency {latency.median_ms:.2f} ms "
                        f"(IQR {latency.iqr_ms:.2f})", trained=True)
        return (top1, latency.median_ms) if settings.multi else top1

    def draw(self, trial):
        """The trial's network, which its parameters name (`space.spec_from_params`); a draft over the budget,
        or one that was shrunk to fit it, is rejected with TrialPruned instead."""
        import optuna

        from .cost import count

        settings = self.settings
        sample = self.space.sample(trial, settings.budget, shrink=settings.shrink,
                                   num_classes=len(self.train_set.classes), name=f"{self.name}-t{trial.number}")
        if sample.spec is None or sample.macs > settings.budget:
            self.stats["rejected"] += 1
            trial.set_constraint("over_budget", float(sample.macs - settings.budget) if sample.spec else 1e12)
            trial.set_user_attr("rejected", sample.reason or f"{human(sample.macs)} MAdds over budget")
            raise optuna.TrialPruned()
        if sample.shrunk:
            self._queue_shrunk(trial, sample)
        spec = sample.spec
        trial.set_user_attr("arch_hash", spec.arch_hash)
        trial.set_user_attr("madds", count(spec).macs)
        trial.set_constraint("over_budget", float(sample.macs - settings.budget))  # <= 0: feasible
        return spec

    def _prescreen(self, trial, spec):
        """--prescreen N: of every N feasible candidates this worker draws, only the one with the best zero-cost
        score is trained. The others are pruned with their score recorded. The best is trained by this trial if
        it was drawn last, else its parameters are queued and the next trial trains it."""
        import optuna

        n = self.settings.prescreen
        if n <= 1 or "prescreen_of" in trial.user_attrs:
            return
        score = self.zero_cost(spec)
        trial.set_user_attr("prescreen_score", score)
        self._candidates.append((score, trial.number, dict(trial.params)))
        self.stats["prescreened"] += 1
        if len(self._candidates) < n:
            trial.set_user_attr("prescreened", f"candidate {len(self._candidates)} of {n}, "
                                               f"{self.settings.prescreen_score} {score:.4g}")
            raise optuna.TrialPruned()
        best_score, best, params = max(self._candidates)
        self._candidates = []
        if best == trial.number:
            return
        trial.set_user_attr("prescreened", f"{self.settings.prescreen_score} {score:.4g} is below trial {best}'s "
                                           f"{best_score:.4g}, which is queued")
        trial.study.enqueue_trial(params, user_attrs={"prescreen_of": best})
        raise optuna.TrialPruned()

    def zero_cost(self, spec) -> float:
        """The prescreening score of a network, on a fixed batch of this search's training images."""
        import numpy as np

        from .data import Augmented
        from .zero_cost import scores

        name, proxy = self.settings.prescreen_score, self.settings.proxy
        if name in ("params", "madds"):
            return scores(spec, None, None, names=[])[name]
        if self._batch is None:
            images = self.train_set.subset(PRESCREEN_BATCH, proxy.seed)
            view = Augmented(images, proxy.resolution, train=False)
            self._batch = np.stack([view[i][0] for i in range(len(view))]), images.labels
        return scores(spec, *self._batch, names=[name], seed=proxy.seed)[name]

    def _queue_shrunk(self, trial, sample):
        """The draft was over the budget and shrunk, so its parameters are not the network that would be
        trained: it is rejected (with its excess as the constraint, which the sampler learns from) and the
        shrunk network is queued as a trial of its own, whose parameters name it. Unless the study holds it."""
        import optuna

        self.stats["shrunk"] += 1
        trial.set_constraint("over_budget", float(sample.drafted_macs - self.settings.budget))
        trial.set_user_attr("rejected", f"{human(sample.drafted_macs)} MAdds over budget as drafted; shrunk to "
                                        f"{human(sample.macs)}, which is queued")
        trial.study.enqueue_trial(sample.params, user_attrs={"shrunk_from": trial.number}, skip_if_exists=True)
        raise optuna.TrialPruned()

    def _train(self, model, on_epoch, on_step):
        from .train import train

        return train(model, self.train_set, self.val_set, self.settings.proxy, on_epoch=on_epoch, on_step=on_step)

    def _settle(self, study):
        """Before leaving, wait (at most a heartbeat grace period and a bit) until no trial is left RUNNING:
        live workers finish theirs, a dead worker's trial is marked failed, so nothing stays RUNNING forever."""
        import optuna

        deadline = time.time() + 1.5 * self.settings.heartbeat_grace
        while time.time() < deadline:
            fail_stale(study)
            if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                return
            time.sleep(1)

    @staticmethod
    def trained_trials(study) -> list:
        """Completed trials that trained their architecture (not reused duplicates), from every worker."""
        import optuna

        return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if is_trained(t)]

    @classmethod
    def trained(cls, study) -> int:
        return len(cls.trained_trials(study))

    def _reserve_slot(self, trial, arch_hash: str):
        """Train only while holding one of the study's `target` training slots: rows of the claims table,
        claimed atomically, so that concurrent workers never train more than the target however their requests
        interleave. Completed trials keep their slot; pruned, failed and interrupted ones give it back (see
        `objective`). A dead worker's slot is kept for the retry Optuna queues for its trial, so the retry is not
        crowded out by later trials; a trial that finds no free slot while such a retry waits in the queue steps
        aside, so that its worker runs the retry next. Otherwise it waits for a slot to come free."""
        import optuna

        states = optuna.trial.TrialState
        study = trial.study
        waited = False
        while True:
            trials = {t.number: t for t in study.get_trials(deepcopy=False)}
            done = sum(1 for t in trials.values() if is_trained(t))
            me = trials.get(trial.number)
            retry_of = me.system_attrs.get("failed_trial") if me else None
            retried = {t.system_attrs["failed_trial"] for t in trials.values() if "failed_trial" in t.system_attrs}
            if done < self.target:
                holders = self.claims.holders(SLOT_PREFIX)
                for k in range(self.target):
                    owner = holders.get(f"{SLOT_PREFIX}{k}")
                    if owner is None and self.claims.claim(f"{SLOT_PREFIX}{k}", trial.number) is None:
                        return self._hold(trial, k)
                    holder = trials.get(owner)
                    free = owner is not None and (holder is None or holder.state == states.PRUNED or (
                        holder.state == states.FAIL and (owner == retry_of or owner not in retried)))
                    if free and self.claims.take_over(f"{SLOT_PREFIX}{k}", owner, trial.number):
                        return self._hold(trial, k)
            queued_retry = any(t.state == states.WAITING and "failed_trial" in t.system_attrs for t in trials.values())
            if done >= self.target or queued_retry and retry_of is None:
                surplus = done >= self.target
                trial.set_user_attr("surplus" if surplus else "stepped_aside", True)
                self.claims.release(arch_hash, trial.number)
                if surplus:
                    study.stop()
                else:
                    self.progress.note(f"trial {trial.number} steps aside for a dead worker's retried trial, which "
                                       f"this worker runs next")
                raise optuna.TrialPruned()
            if not waited:
                self.progress.note(f"trial {trial.number} waits: running trials of other workers may complete the "
                                   f"study (a dead worker's trial is failed after {self.settings.heartbeat_grace} s "
                                   f"without heartbeat)")
                waited = True
            time.sleep(1)
            fail_stale(study)

    def _hold(self, trial, slot: int):
        self._slot = (slot, trial.number)
        trial.set_user_attr("training", True)

    def _give_back_slot(self, trial):
        """A trial that will not complete frees its training slot for another."""
        if self._slot is not None and self._slot[1] == trial.number:
            self.claims.release(f"{SLOT_PREFIX}{self._slot[0]}", trial.number)
            trial.set_user_attr("training", False)
        self._slot = None

    def _owner(self, trial, arch_hash: str):
        """None if this trial now owns `arch_hash` (claimed in the database), else the trial that does:
        completed, pruned or still running elsewhere. A failed owner's claim is taken over, and so is a claim
        left by a deleted study of the same name (its owner is not a trial of this study with this hash)."""
        import optuna

        while True:
            owner = self.claims.claim(arch_hash, trial.number)
            if owner is None or owner == trial.number:
                return None
            other = next((t for t in trial.study.get_trials(deepcopy=False) if t.number == owner), None)
            left_over = other is None or other.user_attrs.get("arch_hash") != arch_hash
            if not left_over and other.state != optuna.trial.TrialState.FAIL:
                return other
            if self.claims.take_over(arch_hash, owner, trial.number):
                return None

    def _write_artifacts(self, folder_name: str, spec, metrics: dict):
        folder = self.run_dir / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "spec.yaml").write_text(spec.to_yaml())
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
