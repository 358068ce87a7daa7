"""The progress of a search: a line per epoch and trial (trial n/N, arch hash, MAdds, loss, accuracy, ETA) and
the live bar inside an epoch (lwnas.progress)."""
from __future__ import annotations

import sys
import time

from ..budget import human
from ..progress import EpochBar


class Progress:
    """One live line per trial: trial n/N (n without a trial count), arch hash, MAdds, epoch/step, accuracy, ETA."""

    def __init__(self, total: int | None, stream=None):
        self.total, self.stream = total, stream or sys.stdout
        self.bar = EpochBar(self.stream)
        self.done, self.started, self.trial_times = 0, time.time(), []
        self.prefix = ""

    def begin(self, number: int, arch_hash: str, macs: int):
        count = f"{self.done + 1}/{self.total}" if self.total else f"{self.done + 1}"
        self.prefix = f"[{count}] trial {number} {arch_hash} {human(macs)} MAdds"
        self.trial_start = time.time()

    def begin_baseline(self, name: str, arch_hash: str, macs: int):
        self.prefix = f"[baseline] {name} {arch_hash} {human(macs)} MAdds"
        self.trial_start = time.time()

    def eta(self, done_fraction: float) -> str:
        """Time left for the remaining trials: the mean of the trials timed so far (this run's, or the study's
        earlier ones when resuming), else this trial's pace (`done_fraction` of it in the time since it began).
        Without a trial count (a compute budget ends the study), the time left in this trial."""
        elapsed = time.time() - self.trial_start
        if self.trial_times and self.total:
            per_trial = sum(self.trial_times) / len(self.trial_times)
        elif done_fraction > 0:
            per_trial = elapsed / done_fraction
        else:
            return "?"
        left = (self.total - self.done) * per_trial - elapsed if self.total else per_trial - elapsed
        return time.strftime("%H:%M:%S" if left >= 3600 else "%M:%S", time.gmtime(max(0, round(left))))

    def step(self, epoch: int, epochs: int, step: int, steps: int, loss: float):
        self.bar.update(f"{self.prefix} | epoch {epoch}/{epochs}", step, steps, loss)

    def epoch(self, epoch: int, epochs: int, top1: float, loss: float):
        self.bar.close()
        self.stream.write(f"{self.prefix} | epoch {epoch}/{epochs} loss {loss:.3f} val top-1 {top1:.1f}% | ETA "
                          f"{self.eta(epoch / epochs)}\n")
        self.stream.flush()

    def finish(self, message: str, trained: bool):
        self.bar.close()
        if trained:
            self.done += 1
            self.trial_times.append(time.time() - self.trial_start)
        self.stream.write(f"{self.prefix} | {message}\n")
        self.stream.flush()

    def note(self, message: str):
        self.stream.write(message + "\n")
        self.stream.flush()
