"""--baseline NAME: named configs trained once per study exactly as its trials are, the marks a search must beat.
Their results are study attributes, not trials, so that the sampler never sees them."""
from __future__ import annotations

from ..budget import human
from ..train.devices import seed_everything
from ..train.loop import TrainingDiverged
from .storage import trained_trials
from .trial_latency import trial_latency


def beats(trial: dict, baseline: dict, multi: bool) -> bool:
    """Higher top-1; with two objectives, at least as good on top-1 and latency and better on one."""
    top1, latency = trial["top1"], trial["latency_ms"]
    if not multi:
        return top1 > baseline["top1"]
    return top1 >= baseline["top1"] and latency <= baseline["latency_ms"] and \
        (top1 > baseline["top1"] or latency < baseline["latency_ms"])


def train_all(search, study):
    """Train each --baseline config once per study with the same proxy, data, seed and latency measurement
    as the trials; the results are study attributes (not trials, so the sampler never sees them)."""
    search.load_data()
    for name, spec in search.baselines.items():
        if name in study.user_attrs.get("baselines", {}):
            continue
        result = _train(search, name, spec)
        if result is not None:  # re-read: another worker may have recorded another baseline meanwhile
            study.set_user_attr("baselines", {**study.user_attrs.get("baselines", {}), name: result})


def _train(search, name: str, spec) -> dict | None:
    """The baseline's result, or None when its training diverged (it is tried again on the next run)."""
    from ..model.build import build
    from ..model.cost import count

    settings, progress, res = search.settings, search.progress, search.space.resolution
    cost = count(spec, res)
    progress.begin_baseline(name, spec.arch_hash, cost.macs)
    seed_everything(settings.proxy.seed)
    model = build(spec)
    epochs, current = search.epochs, {"epoch": 1}

    def on_epoch(result):
        current["epoch"] = result.epoch + 1
        progress.epoch(result.epoch, epochs, result.top1, result.loss)

    try:
        history = search.score_network(
            spec, model, on_epoch, lambda step, steps, loss: progress.step(current["epoch"], epochs, step, steps, loss))
    except TrainingDiverged as err:
        progress.finish(f"failed: {err} (not recorded; it is retried on the next run)", trained=False)
        return None
    latency = trial_latency(settings, search.table, model, spec, res)
    result = {"arch_hash": spec.arch_hash, "madds": cost.macs, "params": cost.params,
              "top1": history[-1].top1, "latency_ms": latency.median_ms, "latency_iqr_ms": latency.iqr_ms,
              "history": [h.__dict__ for h in history]}
    search.write_artifacts(f"baseline_{name}", spec, result)
    progress.finish(f"top-1 {result['top1']:.1f}%, latency {latency.median_ms:.2f} ms", trained=False)
    return result


def compare(search, study):
    """One line per baseline: which trained trial beats it (higher top-1; with two objectives, a trial that
    dominates it on top-1 and latency), or that none does."""
    trained = trained_trials(study)
    for name, b in sorted(study.user_attrs.get("baselines", {}).items()):
        winners = [t for t in trained if beats(t.user_attrs, b, search.settings.multi)]
        head = f"baseline {name}: top-1 {b['top1']:.1f}%, {human(b['madds'])} MAdds, {b['latency_ms']:.2f} ms"
        if winners:
            best = max(winners, key=lambda t: t.user_attrs["top1"])
            w = best.user_attrs
            search.progress.note(f"{head}: beaten by trial {best.number} (top-1 {w['top1']:.1f}%, "
                                 f"{human(w['madds'])} MAdds, {w['latency_ms']:.2f} ms)")
        else:
            search.progress.note(f"{head}: not beaten by any of the {len(trained)} trained architectures")
