"""The Optuna sampler of a search: which one, with which seed for which worker, sized to the run."""
from __future__ import annotations

import warnings

from .errors import LwnasError

SAMPLERS = ("tpe", "nsga2", "random")


def sampler_seed(seed: int, worker: int) -> int:
    """Worker 0 samples with --seed itself; worker k with a seed derived from (seed, k), so that workers started
    together do not draw the same architectures."""
    import numpy as np

    return seed if worker == 0 else int(np.random.SeedSequence([seed, worker]).generate_state(1)[0])


def make_sampler(settings):
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
