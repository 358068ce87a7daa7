"""`lwnas search`: an Optuna study over a search space under a MAdds budget.

Each trial samples a network (lwnas.search.space), rejects it analytically if it is over budget, skips an
architecture the study already holds, and otherwise trains it on the study's schedule (lwnas.train.loop) with a
checkpoint per epoch under runs/<study>/arch_<hash>/, scored on the validation split. The pruner
(lwnas.search.pruning; successive halving by default) stops it at a rung or lets it finish: a finished trial is a
trained network, ready to evaluate or export. Its latency is timed or predicted (lwnas.search.trial_latency);
--baseline configs are trained alike (lwnas.search.baselines), --prescreen filters drafts (lwnas.search.prescreen).
Everything is stored in the study (Optuna RDB storage: SQLite under runs/ by default), so a killed search resumes
where it stopped, a trial interrupted mid-training from its last epoch. The study ends after --trials trainings, or
when its compute budget (--max-epochs, total over the study) or this run's --time-limit is spent.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import asdict
from pathlib import Path

from ..budget import human
from ..deploy.predictor import LatencyTable
from ..errors import LwnasError
from ..train import checkpoint
from ..train.devices import seed_everything
from ..train.loop import TrainingDiverged
from ..train.settings import TrainConfig
from ..train.splits import data_reference, load_data
from . import baselines
from .prescreen import Prescreen
from .progress import Progress
from .pruning import epochs_spent, make_pruner, prune_now
from .samplers import make_sampler
from .settings import ENCODING, SearchSettings, settings_diff
from .slots import TrainingSlots, claim_architecture
from .storage import check_study_name, fail_stale, open_storage, ran_training, redact, storage_url, trained_trials
from .trial_latency import auto_latency_engine, measure_front, trial_latency

REPEATS_TO_STOP = 50  # feasible draws in a row that the study already holds: the space is (nearly) exhausted
PRUNE_REASONS = {"sha": "is not among the best at this rung of successive halving",
                 "hyperband": "is not among the best at this rung of its Hyperband bracket",
                 "median": "is below the median of earlier trials", "none": ""}


class Duplicate(LwnasError):
    """A sample of an architecture the study already holds (trained, pruned or training elsewhere). The trial
    is failed, not completed with a copy of the original's result: samplers skip failed trials, so none of
    them sees one network twice, and the pruner's statistics hold each network once."""


class Interrupted(LwnasError):
    """Ctrl-C during a trial, or the time limit: the trial is failed, its parameters queued to be tried first on
    resume, and the retry continues from the trial's last checkpoint."""


class TimeLimitReached(Exception):
    """--time-limit passed at the end of an epoch."""


class Search:
    def __init__(self, settings: SearchSettings):
        from ..model.configs import get_config
        from .space_files import get_space

        self.settings = settings
        self.name = check_study_name(settings.study_name())
        self.space = get_space(settings.space)
        self.baselines = {name: get_config(name) for name in dict.fromkeys(settings.baselines)}
        self.url = storage_url(settings.storage, settings.runs_dir)
        self.run_dir = Path(settings.runs_dir) / self.name
        self.stats = dict.fromkeys(("rejected", "shrunk", "prescreened", "duplicates", "failed", "pruned",
                                    "trained"), 0)
        self.train_set = self.val_set = None
        self.trained_so_far = None  # trainings in the study, updated after each trial (a resume command needs it)
        self.progress = Progress(settings.trials)
        self.prescreen = Prescreen(self)
        self._loaders = None  # --supernet: (train, val) loaders for recalibration and evaluation
        engine = settings.latency_engine
        self.table = LatencyTable.load(engine.partition(":")[2]) if engine.startswith("predict:") else None
        self.supernet = self.supernet_state = None
        if settings.supernet:
            self._load_supernet()

    def _load_supernet(self):
        """--supernet: the checkpoint's space must be the searched one, and its training settings (resolution,
        training subset, batch-norm batches) become the proxy's, so subnets are scored on the data view they
        learned; --val-subset still chooses how many validation images score each subnet."""
        from ..supernet.extract import load_supernet

        self.supernet, self.supernet_state = load_supernet(Path(self.settings.supernet))
        if self.supernet.space.text != self.space.text:
            raise LwnasError(f"--supernet {self.settings.supernet} was trained on another space "
                             f"({self.supernet_state['supernet']}); search the space it holds (its space.yaml)")
        stored = self.supernet_state["config"]
        val_subset = self.settings.proxy.val_subset or stored["val_subset"]
        self.settings.proxy = TrainConfig.from_dict({**stored, "val_subset": val_subset}, "the supernet's settings")

    def load_data(self):
        """The proxy's train/val sets. MAdds count with their class count from here on: the budget must admit
        the space's smallest network, and the baselines must fit it."""
        from ..model.cost import count

        if self.train_set is not None:
            return
        s = self.settings
        self.train_set, self.val_set = load_data(s.data, s.proxy, s.skip_bad_images)
        if self.supernet is not None and self.train_set.classes != self.supernet_state["classes"]:
            raise LwnasError(f"--supernet {s.supernet} was trained on other classes than {s.data} has; search with "
                             f"the data it was trained on")
        smallest = self.space.smallest(len(self.train_set.classes))
        if s.budget < smallest.macs:
            raise LwnasError(f"budget {human(s.budget)} MAdds is below the smallest network of space "
                             f"'{self.space.name}' ({human(smallest.macs)} MAdds at {self.space.resolution}px with "
                             f"{len(self.train_set.classes)} classes); raise --flops-budget or pick a smaller space")
        for name, spec in self.baselines.items():
            spec = self.baselines[name] = spec.replace(num_classes=len(self.train_set.classes))
            macs = count(spec, self.space.resolution).macs
            if self.supernet is not None and not self.space.contains(spec):
                raise LwnasError(f"baseline {name} is not a network of space {self.space.name} ("
                                 f"{self.space.why_not(spec)}), so the supernet cannot score it")
            if macs > s.budget:
                raise LwnasError(f"baseline {name} has {human(macs)} MAdds at {self.space.resolution}px, over the "
                                 f"{human(s.budget)} budget; pick a named config under the budget")

    # ---- study ----------------------------------------------------------------------------
    def open_study(self):
        import optuna

        settings = self.settings
        if settings.latency_engine == "auto":  # a concrete engine is part of the study's identity
            self.load_data()
            settings.latency_engine = auto_latency_engine("auto", len(self.train_set), settings.proxy.epochs)
        storage = open_storage(self.url, settings.heartbeat_grace)
        directions = ["maximize", "minimize"] if settings.multi else ["maximize"]
        try:
            study = optuna.create_study(study_name=self.name, storage=storage, directions=directions,
                                        sampler=make_sampler(settings, self.space, self._classes()),
                                        pruner=make_pruner(settings),
                                        load_if_exists=True)
        except ValueError as err:  # e.g. an existing study with other directions
            raise LwnasError(f"study {self.name!r}: {err}") from None
        from .claims import ArchClaims

        self.claims = ArchClaims(storage.engine, self.name)
        self.slots = TrainingSlots(self.claims, lambda message: self.progress.note(message), settings.heartbeat_grace)
        identity = self.identity()
        stored = study.user_attrs.get("settings")
        if stored is not None and "proxy" in stored:  # a proxy setting added since, at its default, changes nothing
            stored = {**stored, "proxy": {**TrainConfig().to_dict(), **stored["proxy"]}}
        if stored is None:
            study.set_user_attr("settings", identity)
        elif stored != identity:
            raise LwnasError(f"study {self.name!r} was created with other settings ({settings_diff(stored, identity)}"
                             f"); resume it with the same options or pass a new --study name")
        return study

    def _classes(self) -> int | None:
        """The data's class count, once load_data has run (a study opened only to check it needs none)."""
        return len(self.train_set.classes) if self.train_set is not None else None

    def identity(self) -> dict:
        """What makes trials of one study comparable; resuming with any of it changed is refused."""
        import hashlib

        from .space_files import space_path

        s = self.settings
        identity = {"space": s.space, "space_file_sha256": hashlib.sha256(space_path(s.space).read_bytes()).hexdigest(),
                "budget": s.budget, "data": data_reference(s.data), "objective": s.objective,
                "proxy": s.proxy.to_dict(),
                "device": "cpu" if s.device == "cpu" else "gpu", "shrink": s.shrink, "sampler": s.sampler,
                "latency_engine": s.latency_engine, "latency_threads": s.latency_threads,
                "latency_batch": s.latency_batch, "encoding": ENCODING, "pruner": s.pruner}
        if s.pruner in ("sha", "hyperband"):
            identity.update(min_epochs=s.min_epochs, reduction_factor=s.reduction_factor)
        if self.supernet is not None:  # scores are inherited-weight accuracies of this supernet at this epoch
            identity.update(supernet=self.supernet_state["supernet"], supernet_epoch=self.supernet_state["epoch"])
        if self.table is not None:  # the table's content, not its path (workers on other machines copy it)
            table = asdict(self.table)
            identity.update(latency_engine="predict", latency_threads=table.pop("threads"),
                            latency_batch=table.pop("batch_size"),
                            latency_table_sha256=hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest())
        return identity

    def run(self, progress: Progress | None = None):
        import optuna

        settings = self.settings
        from .. import quiet

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
        self.progress.trial_times = [t.user_attrs["train_seconds"] for t in trained_trials(study)
                                     if "train_seconds" in t.user_attrs][-20:]  # resuming: the ETA knows the pace
        baselines.train_all(self, study)
        attempts = max(1000, 300 * (settings.trials or 10))  # a rejected draft costs milliseconds
        self.repeats = 0  # feasible samples in a row that the study already holds
        self.trained_so_far = self.trained(study)
        self.target = settings.until_total or (self.trained_so_far + settings.trials if settings.trials else 10 ** 9)
        self.deadline = time.time() + settings.time_limit if settings.time_limit else None

        def stop_when_done(study, trial):
            self.trained_so_far = self.trained(study)
            if self.interrupted or self.timed_out or self.trained(study) >= self.target or \
                    self._attempts >= attempts or self.budget_spent(study) or self.past_deadline():
                study.stop()
            elif self.repeats >= REPEATS_TO_STOP:
                self.progress.note(f"stopping: the last {self.repeats} networks drawn are all in the study already "
                                   f"(a small space, or a budget that admits few networks)")
                study.stop()
            elif self.stats["failed"] >= max(3, settings.trials or 3):
                self.progress.note(f"stopping: {self.stats['failed']} trials failed (see their 'error' attribute "
                                   f"in `lwnas runs show`); check the proxy settings, e.g. --lr")
                study.stop()

        self._attempts, self.interrupted, self.timed_out = 0, False, False
        if self.budget_spent(study):
            self.progress.note(f"the compute budget is spent: {epochs_spent(study)} of {settings.max_epochs} epochs")
        else:
            study.optimize(self.objective, callbacks=[stop_when_done], catch=(TrainingDiverged, Interrupted, Duplicate),
                           gc_after_trial=True)
        if self.interrupted:
            raise KeyboardInterrupt
        if self.timed_out or self.past_deadline():
            self.progress.note("stopped at the time limit; run the same command again to continue (a trial cut "
                               "short continues from its last epoch)")
        if self.trained(study) < self.target and self._attempts >= attempts:
            self.progress.note(f"stopped after {self._attempts} samples: only {self.stats['trained']} new "
                               f"architectures found (the others were duplicates or over budget)")
        self._settle(study)
        s = self.stats
        s["rejected"] += getattr(study.sampler, "rejected", 0)  # random search rejects in memory
        self.progress.note(f"done: {s['trained']} trained to the end, {s['pruned']} stopped early (pruner or "
                           f"budget), {s['shrunk']} over-budget drafts shrunk and queued, {s['duplicates']} repeated "
                           f"architectures skipped, {s['rejected']} samples rejected over budget, "
                           f"{s['prescreened']} candidates prescreened, {s['failed']} failed; "
                           f"{epochs_spent(study)} training epochs in the study")
        baselines.compare(self, study)
        if self.table is not None:
            measure_front(self.settings, self.table, study, self.progress)
        return study

    def budget_spent(self, study) -> bool:
        return self.settings.max_epochs is not None and epochs_spent(study) >= self.settings.max_epochs

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    # ---- one trial ------------------------------------------------------------------------
    def objective(self, trial):
        """One trial (see _trial). Ctrl-C or the time limit fails it cleanly and queues its parameters: the resumed
        search runs it first, from its last checkpoint. A trial stopped by the pruner keeps its training slot (its
        training counts); one stopped before training gives it back."""
        import optuna

        if trial.user_attrs.get("training"):  # a retry, with its dead original's attributes: they are not ours
            trial.set_user_attr("training", False)
            trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            value = self._trial(trial)
            self.slots.keep()
            return value
        except (KeyboardInterrupt, TimeLimitReached) as stop:
            self.slots.give_back(trial)
            what = "interrupted (Ctrl-C)" if isinstance(stop, KeyboardInterrupt) else "stopped at the time limit"
            trial.set_user_attr("error", f"{what}; continued from its last checkpoint when the search resumes")
            if trial.params:
                trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            self.interrupted, self.timed_out = isinstance(stop, KeyboardInterrupt), isinstance(stop, TimeLimitReached)
            raise Interrupted(f"trial {trial.number} {what}") from None
        except optuna.TrialPruned:
            if "pruned" in trial.user_attrs:
                self.slots.keep()
            else:
                self.slots.give_back(trial)
            raise
        except BaseException:
            self.slots.give_back(trial)
            raise

    def _trial(self, trial):
        from ..model.build import build
        from ..model.cost import count

        settings = self.settings
        self._attempts += 1
        spec = self.draw(trial)
        self.prescreen.check(trial, spec)
        same = claim_architecture(self.claims, trial, spec.arch_hash)
        if same is not None:
            self.stats["duplicates"] += 1
            self.repeats += 1
            trial.set_user_attr("duplicate_of", same.number)
            raise Duplicate(f"architecture {spec.arch_hash} is trial {same.number}'s")

        self.repeats = 0
        self.slots.reserve(trial, spec.arch_hash, self.target)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # which process trained it
        cost = count(spec)
        trial.set_user_attr("params", cost.params)
        trial.set_user_attr("spec", spec.to_yaml())
        progress = self.progress
        progress.begin(trial.number, spec.arch_hash, cost.macs)
        folder = self.run_dir / f"arch_{spec.arch_hash}"  # by architecture: a retried trial finds its checkpoint
        resume = self._checkpoint(folder, spec)
        seed_everything(settings.proxy.seed)  # every candidate starts from the same seeded state
        model = build(spec, len(self.train_set.classes))
        epochs = self.epochs
        epochs_seen = list(resume["history"]) if resume else []  # fresh per attempt, not the dead original's attrs
        current = {"epoch": len(epochs_seen) + 1}
        if resume:
            progress.note(f"trial {trial.number}: continuing {spec.arch_hash} after epoch {resume['epoch']}")
            trial.set_user_attr("history", epochs_seen)
            for past in epochs_seen if not settings.multi else []:
                trial.report(past["top1"], past["epoch"])

        def on_step(step, steps, loss):
            progress.step(current["epoch"], epochs, step, steps, loss)

        def on_epoch(result):
            current["epoch"] = result.epoch + 1
            progress.epoch(result.epoch, epochs, result.top1, result.loss)
            epochs_seen.append(result.__dict__)
            trial.set_user_attr("history", epochs_seen)
            if not settings.multi:
                trial.report(result.top1, result.epoch)
            if result.epoch < epochs and self.budget_spent(trial.study):
                self._stop_early(trial, folder, f"the compute budget of {settings.max_epochs} epochs is spent")
            if prune_now(trial, result.epoch, result.top1, settings):
                self._stop_early(trial, folder, f"top-1 {result.top1:.1f}% at epoch {result.epoch} "
                                                f"{PRUNE_REASONS[settings.pruner]}")
            if result.epoch < epochs and self.past_deadline():
                raise TimeLimitReached()

        def save(state, best):
            checkpoint.save(folder, {**state, "spec": spec.to_yaml(), "arch_hash": spec.arch_hash,
                                     "classes": self.train_set.classes, "config": settings.proxy.to_dict(),
                                     "data": data_reference(settings.data)}, best)

        start = time.time()
        try:
            history = self.score_network(spec, model, on_epoch, on_step, resume, save)
        except TrainingDiverged as err:
            self.stats["failed"] += 1
            trial.set_user_attr("error", str(err))
            progress.finish(f"failed: {err}", trained=False)
            raise
        trial.set_user_attr("train_seconds", round(time.time() - start, 2))
        latency = trial_latency(self.settings, self.table, model, spec, spec.resolution)
        top1 = history[-1].top1
        trial.set_user_attr("top1", top1)
        if self.supernet is None:
            (folder / checkpoint.PREVIOUS).unlink(missing_ok=True)  # finished: only last and best are of use
            trial.set_user_attr("checkpoint", str(folder.resolve()))
        trial.set_user_attr("latency_ms", latency.median_ms)
        trial.set_user_attr("latency_iqr_ms", latency.iqr_ms)
        self.write_artifacts(f"trial_{trial.number:04d}", spec,
                              {"arch_hash": spec.arch_hash, "madds": cost.macs, "params": cost.params,
                               "top1": top1, "latency": latency.to_dict(), "history": [h.__dict__ for h in history]})
        self.stats["trained"] += 1
        progress.finish(f"top-1 {top1:.1f}%, latency {latency.median_ms:.2f} ms "
                        f"(IQR {latency.iqr_ms:.2f})", trained=True)
        return (top1, latency.median_ms) if settings.multi else top1

    def _checkpoint(self, folder: Path, spec) -> dict | None:
        """The last checkpoint of this architecture under this study's schedule, to continue from; one written
        under other settings (a deleted study of the same name) is discarded."""
        if self.supernet is not None or not folder.exists():
            return None
        state = checkpoint.load_latest(folder, warn=self.progress.note)
        if state is not None and state["arch_hash"] == spec.arch_hash and \
                state["config"] == self.settings.proxy.to_dict() and state["classes"] == self.train_set.classes:
            return state
        shutil.rmtree(folder)
        return None

    def _stop_early(self, trial, folder: Path, reason: str):
        """The pruner (or the spent budget) stops the trial: its history stays in the study, its checkpoints go."""
        import optuna

        self.stats["pruned"] += 1
        trial.set_user_attr("pruned", reason)
        self.progress.finish(f"stopped: {reason}", trained=True)  # its training counts towards --trials
        shutil.rmtree(folder, ignore_errors=True)
        raise optuna.TrialPruned()

    def draw(self, trial):
        """The trial's network, which its parameters name (`space.spec_from_params`); a draft over the budget,
        or one that was shrunk to fit it, is rejected with TrialPruned instead."""
        import optuna

        from ..model.cost import count

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

    @property
    def epochs(self) -> int:
        """Epochs a trial reports: the proxy's, or one evaluation with --supernet."""
        return 1 if self.supernet is not None else self.settings.proxy.epochs

    def score_network(self, spec, model, on_epoch, on_step, resume=None, save=None):
        """The network's epoch results: training of `model` (from `resume`, a checkpoint, `save` called each epoch),
        or with --supernet one evaluation of `spec` with inherited weights after batch-norm recalibration (a single,
        last, epoch: never pruned)."""
        from ..train.loop import EpochResult, train

        if self.supernet is None:
            return train(model, self.train_set, self.val_set, self.settings.proxy, on_epoch=on_epoch, on_step=on_step,
                         resume=resume, save=save)
        from ..supernet import SupernetError
        from ..supernet.train import evaluate_subnet
        from ..train.loop import loaders

        if self._loaders is None:
            self._loaders = loaders(self.train_set, self.val_set, self.settings.proxy)[2:]
        start = time.perf_counter()
        try:
            loss, top1, top5 = evaluate_subnet(self.supernet, spec, *self._loaders,
                                               self.settings.proxy.bn_recalibration)
        except SupernetError as err:
            raise LwnasError(str(err)) from None
        seconds = time.perf_counter() - start
        result = EpochResult(1, loss, top1, top5, 0.0, len(self.val_set) / max(seconds, 1e-9), seconds)
        on_epoch(result)
        return [result]

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
    def trained(study) -> int:
        """Trainings the study holds: finished, or stopped by the pruner (they spent their compute)."""
        return sum(1 for t in study.get_trials(deepcopy=False) if ran_training(t))

    def write_artifacts(self, folder_name: str, spec, metrics: dict):
        folder = self.run_dir / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "spec.yaml").write_text(spec.to_yaml())
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
