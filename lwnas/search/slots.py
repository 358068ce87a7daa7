"""Who may train: the study's training slots and architecture claims, both rows of the claims table
(lwnas.search.claims), so that concurrent workers never train more networks than asked, nor one network twice."""
from __future__ import annotations

import time

from .storage import fail_stale, ran_training

SLOT_PREFIX = "#slot"  # claims-table rows that are training slots (arch hashes are hex)


class TrainingSlots:
    def __init__(self, claims, note, grace: int):
        self.claims, self.note, self.grace = claims, note, grace
        self.held = None  # (slot, trial number) of the running trial

    def reserve(self, trial, arch_hash: str, target: int):
        """Train only while holding one of the study's `target` training slots: rows of the claims table,
        claimed atomically, so that concurrent workers never train more than the target however their requests
        interleave. Trials that trained (to the end or until the pruner stopped them) keep their slot; failed and
        interrupted ones give it back (see `objective`). A dead worker's slot is kept for the retry Optuna queues for its trial, so the retry is not
        crowded out by later trials; a trial that finds no free slot while such a retry waits in the queue steps
        aside, so that its worker runs the retry next. Otherwise it waits for a slot to come free."""
        import optuna

        states = optuna.trial.TrialState
        study = trial.study
        waited = False
        while True:
            trials = {t.number: t for t in study.get_trials(deepcopy=False)}
            done = sum(1 for t in trials.values() if ran_training(t))
            me = trials.get(trial.number)
            retry_of = me.system_attrs.get("failed_trial") if me else None
            retried = {t.system_attrs["failed_trial"] for t in trials.values() if "failed_trial" in t.system_attrs}
            if done < target:
                holders = self.claims.holders(SLOT_PREFIX)
                for k in range(target):
                    owner = holders.get(f"{SLOT_PREFIX}{k}")
                    if owner is None and self.claims.claim(f"{SLOT_PREFIX}{k}", trial.number) is None:
                        return self._hold(trial, k)
                    holder = trials.get(owner)
                    free = owner is not None and (holder is None or (
                        holder.state == states.PRUNED and not ran_training(holder)) or (
                        holder.state == states.FAIL and (owner == retry_of or owner not in retried)))
                    if free and self.claims.take_over(f"{SLOT_PREFIX}{k}", owner, trial.number):
                        return self._hold(trial, k)
            queued_retry = any(t.state == states.WAITING and "failed_trial" in t.system_attrs for t in trials.values())
            if done >= target or queued_retry and retry_of is None:
                surplus = done >= target
                trial.set_user_attr("surplus" if surplus else "stepped_aside", True)
                self.claims.release(arch_hash, trial.number)
                if surplus:
                    study.stop()
                else:
                    self.note(f"trial {trial.number} steps aside for a dead worker's retried trial, which "
                                       f"this worker runs next")
                raise optuna.TrialPruned()
            if not waited:
                self.note(f"trial {trial.number} waits: running trials of other workers may complete the "
                                   f"study (a dead worker's trial is failed after {self.grace} s "
                                   f"without heartbeat)")
                waited = True
            time.sleep(1)
            fail_stale(study)

    def _hold(self, trial, slot: int):
        self.held = (slot, trial.number)
        trial.set_user_attr("training", True)

    def give_back(self, trial):
        """A trial that will not complete frees its training slot for another."""
        if self.held is not None and self.held[1] == trial.number:
            self.claims.release(f"{SLOT_PREFIX}{self.held[0]}", trial.number)
            trial.set_user_attr("training", False)
        self.held = None

    def keep(self):
        """The trial completed: its slot stays taken."""
        self.held = None


def claim_architecture(claims, trial, arch_hash: str):
    """None if this trial now owns `arch_hash` (claimed in the database), else the trial that does:
    completed, pruned or still running elsewhere. A failed owner's claim is taken over, and so is a claim
    left by a deleted study of the same name (its owner is not a trial of this study with this hash)."""
    import optuna

    while True:
        owner = claims.claim(arch_hash, trial.number)
        if owner is None or owner == trial.number:
            return None
        other = next((t for t in trial.study.get_trials(deepcopy=False) if t.number == owner), None)
        left_over = other is None or other.user_attrs.get("arch_hash") != arch_hash
        if not left_over and other.state != optuna.trial.TrialState.FAIL:
            return other
        if claims.take_over(arch_hash, owner, trial.number):
            return None
