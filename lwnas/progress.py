"""The live bar inside a training epoch, shared by `lwnas train` and `lwnas search` (tqdm): steps done, loss, rate
and time left. On a terminal it redraws in place; in a log it writes a line only while an epoch takes longer than
30 s, so that a long epoch is not silent and a short one adds nothing."""
from __future__ import annotations


class EpochBar:
    def __init__(self, stream):
        self.stream, self.tty, self.bar = stream, stream.isatty(), None

    def update(self, description: str, step: int, steps: int, loss: float):
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=steps, desc=description, unit="step", file=self.stream, leave=False,
                            mininterval=0.5 if self.tty else 30, delay=0 if self.tty else 30, dynamic_ncols=self.tty)
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix_str(f"loss {loss:.3f}", refresh=False)
        if step == steps:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
