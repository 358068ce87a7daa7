"""--prescreen N: a cheap zero-cost score picks which of every N feasible candidates a worker trains."""
from __future__ import annotations

PRESCREEN_BATCH = 64  # training images a zero-cost score sees


class Prescreen:
    """One worker's candidates so far and the fixed batch its scores see."""

    def __init__(self, search):
        self.search, self.settings = search, search.settings
        self.candidates, self.batch = [], None

    def check(self, trial, spec):
        """--prescreen N: of every N feasible candidates this worker draws, only the one with the best zero-cost
        score is trained. The others are pruned with their score recorded. The best is trained by this trial if
        it was drawn last, else its parameters are queued and the next trial trains it."""
        import optuna

        n = self.settings.prescreen
        if n <= 1 or "prescreen_of" in trial.user_attrs:
            return
        score = self.score(spec)
        trial.set_user_attr("prescreen_score", score)
        self.candidates.append((score, trial.number, dict(trial.params)))
        self.search.stats["prescreened"] += 1
        if len(self.candidates) < n:
            trial.set_user_attr("prescreened", f"candidate {len(self.candidates)} of {n}, "
                                               f"{self.settings.prescreen_score} {score:.4g}")
            raise optuna.TrialPruned()
        best_score, best, params = max(self.candidates)
        self.candidates = []
        if best == trial.number:
            return
        trial.set_user_attr("prescreened", f"{self.settings.prescreen_score} {score:.4g} is below trial {best}'s "
                                           f"{best_score:.4g}, which is queued")
        trial.study.enqueue_trial(params, user_attrs={"prescreen_of": best})
        raise optuna.TrialPruned()

    def score(self, spec) -> float:
        """The prescreening score of a network, on a fixed batch of this search's training images."""
        import numpy as np

        from ..train.data import Augmented
        from ..zero_cost import scores

        name, proxy = self.settings.prescreen_score, self.settings.proxy
        if name in ("params", "madds"):
            return scores(spec, None, None, names=[])[name]
        if self.batch is None:
            images = self.search.train_set.subset(PRESCREEN_BATCH, proxy.seed)
            view = Augmented(images, proxy.resolution, train=False)
            self.batch = np.stack([view[i][0] for i in range(len(view))]), images.labels
        return scores(spec, *self.batch, names=[name], seed=proxy.seed)[name]
