"""How networks are chosen: search spaces, the Optuna study and its trial flow, pruning, samplers, storage and
workers, and the results a study shows."""
