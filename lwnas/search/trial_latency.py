"""A trial's latency as its study measures it: timed with the study's engine, or predicted by a latency table;
with a table, the final front is timed for real beside its predictions."""
from __future__ import annotations

from .storage import is_trained, trained_trials

# Timing a `micro` network as deployed (export, one Paddle Inference predictor per CPU backend, 30 runs each) took
# 5.9-7.3 s on this project's 2-core CPU against 0.4 s in the eager engine, while training a 12M-MAdds network at
# 32 px sees 220-320 images a second: from AUTO_INFERENCE_IMAGES training images per finished trial (its epochs
# times its training set) the deployed timing costs about 5% of the trial or less.
AUTO_INFERENCE_IMAGES = 40_000


def auto_latency_engine(engine: str, train_images: int, epochs: int) -> str:
    """`engine` itself, unless it is 'auto': then Paddle Inference (what a deployment runs) where timing it is
    cheap beside training a trial to the end, the eager engine where it is not (a quick look at tiny data)."""
    if engine != "auto":
        return engine
    return "inference" if train_images * epochs >= AUTO_INFERENCE_IMAGES else "eager"


def trial_latency(settings, table, model, spec, resolution: int):
    """The network's latency as this study measures it: timed here, or predicted by a latency table."""
    from ..deploy.export import deployable
    from ..deploy.latency import Latency, measure

    if table is None:
        return measure(deployable(model), resolution, settings.latency_batch, runs=settings.latency_runs,
                       engine=settings.latency_engine, threads=settings.latency_threads)
    return Latency(table.predict(spec, resolution), 0.0, 0, table.batch_size, resolution,
                   f"{table.device}/{table.engine} (predicted)", table.threads)


def measure_front(settings, table, study, progress):
    """Predicted latencies are a model's: time the Pareto front (with one objective, the best trial) for real,
    as the table's networks were timed, and keep both (study attribute `front_latency_measured`)."""
    from ..model.spec import ArchSpec

    trained = trained_trials(study)
    front = [t for t in study.best_trials if is_trained(t)] if settings.multi else \
        sorted(trained, key=lambda t: -t.user_attrs["top1"])[:1]
    measured = dict(study.user_attrs.get("front_latency_measured", {}))
    for trial in front:
        spec = ArchSpec.from_yaml(trial.user_attrs["spec"])
        if str(trial.number) not in measured:
            measured[str(trial.number)] = table.measure(spec, spec.resolution)
        ms = measured[str(trial.number)]
        predicted = trial.user_attrs["latency_ms"]
        progress.note(f"trial {trial.number}: latency predicted {predicted:.2f} ms, measured {ms:.2f} ms "
                      f"({table.engine}, {table.threads} thread(s); {100 * (predicted / ms - 1):+.0f}%)")
    study.set_user_attr("front_latency_measured", measured)
