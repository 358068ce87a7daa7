"""The Optuna sampler of a search: which one, with which seed for which worker, sized to the run."""
from __future__ import annotations

import warnings

from ..errors import LwnasError

SAMPLERS = ("tpe", "nsga2", "random")
RANDOM_DRAWS = 100_000  # per trial: a budget that admits so few networks is refused


def sampler_seed(seed: int, worker: int) -> int:
    """Worker 0 samples with --seed itself; worker k with a seed derived from (seed, k), so that workers started
    together do not draw the same architectures."""
    import numpy as np

    return seed if worker == 0 else int(np.random.SeedSequence([seed, worker]).generate_state(1)[0])


def make_sampler(settings, space=None, num_classes: int | None = None):
    """The study's sampler. Random search needs `space` and the data's class count to draw feasible networks
    itself; without them (a study opened only to be checked or read), or with --shrink (whose over-budget drafts
    are shrunk toward the budget), Optuna's RandomSampler stands in."""
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
    if space is None or num_classes is None or settings.shrink:  # --shrink asks for over-budget drafts, to shrink
        return optuna.samplers.RandomSampler(seed=seed)
    return feasible_random_sampler(space, settings.budget, num_classes, seed)


def feasible_random_sampler(space, budget: int, num_classes: int, seed: int):
    """Random search under the budget without storing what it rejects: each trial's whole network is drawn up
    front (every decision uniform, as Optuna's RandomSampler draws them) and redrawn in memory until it fits, so
    the study holds one trial per network instead of hundreds of rejected ones (234 per trained network at 12M
    in `micro`, and 0.4 s of database writes each). The distribution is the same: uniform decisions conditioned
    on fitting. A trial's draw depends on (seed, trial number) only: a resumed study draws new networks instead of
    replaying the ones it has, and workers sharing a study draw apart. Parameters a trial already has (queued ones)
    are never drawn."""
    import numpy as np
    import optuna

    class FeasibleRandomSampler(optuna.samplers.BaseSampler):
        def __init__(self):
            self._fallback = optuna.samplers.RandomSampler(seed=seed)
            self._drawn: dict[int, dict] = {}  # trial number -> its network's parameters
            self.rejected = 0  # networks drawn over the budget (in memory only)

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            if trial.number not in self._drawn:
                self._drawn[trial.number] = self._draw(np.random.default_rng((seed, trial.number)))
            params = self._drawn[trial.number]
            if param_name in params:
                return params[param_name]
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self._drawn.pop(trial.number, None)

        def _draw(self, rng) -> dict:
            for _ in range(RANDOM_DRAWS):
                sample = space.random_sample(rng, num_classes)
                if sample.macs <= budget:
                    return sample.params
                self.rejected += 1
            raise LwnasError(f"no network of space {space.name} fits {budget} MAdds in {RANDOM_DRAWS} random draws")

    return FeasibleRandomSampler()
