"""`lwnas runs`: list studies, show one study's best trials or Pareto front, write the front's specs
as YAML (ready for `lwnas train`) and an HTML page with the front plotted against the named configs."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..budget import human
from ..errors import LwnasError
from ..model.spec import ArchSpec
from .storage import load_study, open_storage, redact, storage_url


def list_studies(url: str | None, runs_dir: str, as_json: bool = False):
    import optuna

    url = storage_url(url, runs_dir)
    storage = open_storage(url)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        settings = summary.user_attrs.get("settings", {})
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        best = max((t.values[0] for t in complete), default=None)
        rows.append({"study": summary.study_name, "space": settings.get("space", "?"),
                     "budget": settings.get("budget"), "objective": settings.get("objective", "?"),
                     "completed": len(complete), "trials": summary.n_trials, "best_top1": best})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"no studies in {redact(url)}; start one with `lwnas search --flops-budget 12M`")
        return
    from ..table import print_table

    print_table([{**r, "budget": human(r["budget"]) if r["budget"] else "?",
                   "best_top1": f"{r['best_top1']:.1f}" if r["best_top1"] is not None else "-"} for r in rows],
                 ["study", "space", "budget", "objective", "completed", "trials", "best_top1"])


def front(study) -> list:
    """Best trials: the top one for a single objective, the Pareto front for two (trained ones only)."""
    trials = [t for t in study.best_trials if "duplicate_of" not in t.user_attrs]
    return sorted(trials, key=lambda t: -t.values[0])


def show_study(name: str, url: str | None, runs_dir: str, as_json: bool = False, top: int = 10):
    study = load_study(name, url, runs_dir)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
                and "duplicate_of" not in t.user_attrs]
    if len(study.directions) == 1:
        chosen = sorted(complete, key=lambda t: -t.values[0])[:top]
    else:
        chosen = front(study) if complete else []
    measured = study.user_attrs.get("front_latency_measured", {})  # searches on predicted latency
    rows = [{"trial": t.number, "arch_hash": t.user_attrs.get("arch_hash"), "madds": t.user_attrs.get("madds"),
             "params": t.user_attrs.get("params"), "top1": t.user_attrs.get("top1"),
             "latency_ms": t.user_attrs.get("latency_ms"),
             **({"measured_ms": measured.get(str(t.number))} if measured else {})} for t in chosen]
    baselines = [{"baseline": b, **{k: v for k, v in r.items() if k != "history"}}
                 for b, r in sorted(study.user_attrs.get("baselines", {}).items())]
    out = Path(runs_dir) / name
    written = write_front(out, chosen) if chosen else []
    plot = write_plot(out / "front.html", study, complete, chosen, baselines) if complete else None
    pages = write_optuna_plots(out / "optuna", study) if complete else []
    families = family_summary(complete)
    budget = study.user_attrs.get("settings", {}).get("budget")
    use = budget_use(complete, budget) if budget and complete else None
    stored = len(study.get_trials(deepcopy=False))
    if as_json:
        print(json.dumps({"study": name, "directions": [d.name.lower() for d in study.directions],
                          "best": rows, "baselines": baselines, "spec_files": [str(p) for p in written],
                          "plot": str(plot) if plot else None, "optuna_plots": [str(p) for p in pages],
                          "block_types": families, "budget_use": use, "trials_stored": stored,
                          "settings": study.user_attrs.get("settings")}, indent=2))
        return
    if not rows:
        print(f"study {name}: no completed trials yet")
        return
    from ..table import print_table

    def readable(r):
        shown = {**r, "madds": human(r["madds"]), "params": human(r["params"]), "top1": f"{r['top1']:.1f}",
                 "latency_ms": f"{r['latency_ms']:.2f}"}
        if "measured_ms" in r:
            shown["measured_ms"] = "-" if r["measured_ms"] is None else f"{r['measured_ms']:.2f}"
        return shown

    settings = study.user_attrs.get("settings")
    if settings:
        print(describe_settings(settings))
    title = "best trials" if len(study.directions) == 1 else "Pareto front (top-1 vs latency)"
    print(f"study {name}: {len(complete)} trained architectures; {title}:")
    latency = ["latency_ms", "measured_ms"] if measured else ["latency_ms"]  # predicted, then timed for real
    print_table([readable(r) for r in rows], ["trial", "arch_hash", "madds", "params", "top1", *latency])
    if baselines:
        print("baselines (named configs, same proxy training):")
        print_table([readable(b) for b in baselines], ["baseline", "arch_hash", "madds", "params", "top1",
                                                         "latency_ms"])
    if use:
        print(f"MAdds / budget (quartiles): the {len(complete)} trained {_quartiles(use['all'])}; the best "
              f"{len(use['best'])} {_quartiles(use['best'])}")
    print(f"{stored} trials stored for {len(complete)} trained (the rest: rejected or shrunk drafts, "
          f"prescreened-out candidates, duplicates, pruned or failed)")
    print("block types of the trained architectures (how many used each, best top-1 among them):")
    print_table([{**f, "best_top1": f"{f['best_top1']:.1f}"} for f in families], ["block", "trials", "best_top1"])
    print(f"specs written to {out / 'front'}/ (train one with `lwnas train --arch FILE.yaml`); plot: "
          f"{plot or 'needs plotly: pip install plotly'}")
    print(f"Optuna's plots: {', '.join(map(str, pages))}" if pages else
          "Optuna's plots (history, importances, Pareto front) need plotly: pip install plotly")


def describe_settings(settings: dict) -> str:
    """One line on what a study searched: space, budget, data, schedule, pruner, sampler, latency."""
    proxy = settings.get("proxy", {})
    subsets = ", ".join(f"{k.split('_')[0]} subset {proxy[k]}" for k in ("train_subset", "val_subset") if proxy.get(k))
    pruner = settings.get("pruner", "median")
    rungs = (f" (rungs from epoch {settings['min_epochs']}, keeping 1/{settings['reduction_factor']})"
             if "min_epochs" in settings else "")
    return (f"space {settings['space']}, budget {human(settings['budget'])} MAdds, data {settings['data']}; "
            f"{proxy.get('epochs')} epochs at {proxy.get('resolution')} px, batch {proxy.get('batch_size')}, lr "
            f"{proxy.get('lr')}, validation split {proxy.get('val_split', 'the test split (old study)')}"
            f"{', ' + subsets if subsets else ''}; pruner {pruner}{rungs}; sampler {settings['sampler']}; "
            f"objective {settings['objective']}, latency {settings['latency_engine']}")


def budget_use(trials, budget: int) -> dict:
    """MAdds/budget of every trained trial and of the best quarter by top-1: whether the search piles onto
    the budget edge, and whether the best networks are the ones that do."""
    ranked = sorted(trials, key=lambda t: -t.user_attrs["top1"])
    fractions = [round(t.user_attrs["madds"] / budget, 3) for t in ranked]
    return {"all": sorted(fractions), "best": sorted(fractions[:max(1, len(fractions) // 4)])}


def _quartiles(values: list[float]) -> str:
    import numpy as np

    return "/".join(f"{q:.2f}" for q in np.percentile(values, [25, 50, 75]))


def family_summary(trials) -> list[dict]:
    """Per block type in the trained architectures: how many used it and the best top-1 among those, best
    first. Says which block families win on this data and budget."""
    usage: dict[str, list[float]] = {}
    for t in trials:
        for block_type in {block.type for _, block in ArchSpec.from_yaml(t.user_attrs["spec"]).blocks()}:
            usage.setdefault(block_type, []).append(t.user_attrs["top1"])
    return [{"block": block, "trials": len(top1s), "best_top1": max(top1s)}
            for block, top1s in sorted(usage.items(), key=lambda item: (-max(item[1]), item[0]))]


def write_optuna_plots(folder: Path, study) -> list[Path]:
    """Optuna's own views as HTML pages, when plotly is installed (none otherwise): optimization history,
    parameter importances (which slot's depth, block type and width choices matter) and, with two objectives,
    the Pareto front. A view Optuna cannot draw yet (importances need several trials) is left out."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        return []
    import optuna.visualization as views

    multi = len(study.directions) > 1
    top1 = {"target": (lambda t: t.values[0]), "target_name": "proxy top-1"} if multi else {}
    figures = {"history": lambda: views.plot_optimization_history(study, **top1),
               "importances": lambda: views.plot_param_importances(study, **top1)}
    if multi:
        figures["pareto"] = lambda: views.plot_pareto_front(study, target_names=["proxy top-1", "latency (ms)"])
    folder.mkdir(parents=True, exist_ok=True)
    pages = []
    for name, figure in figures.items():
        try:
            with warnings.catch_warnings():  # "importance may be inaccurate" per parameter: the page says enough
                warnings.simplefilter("ignore", UserWarning)
                page = figure()
        except (ValueError, RuntimeError):
            continue
        page.write_html(str(folder / f"{name}.html"), include_plotlyjs="directory")  # one plotly.min.js beside
        pages.append(folder / f"{name}.html")
    return pages


def write_front(folder: Path, trials) -> list[Path]:
    """The trials' specs in folder/front/, replacing the files an earlier call wrote (the front may have moved)."""
    target = folder / "front"
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("trial_*.yaml"):
        old.unlink()
    paths = []
    for t in trials:
        path = target / f"trial_{t.number:04d}_{t.user_attrs['arch_hash']}.yaml"
        path.write_text(t.user_attrs["spec"])
        paths.append(path)
    return paths


def _reference_configs(space_name: str, num_classes: int) -> list[tuple[str, int]]:
    """Named configs that are points of the study's space, with their MAdds at the study's class count."""
    from ..model.configs import config_names, get_config
    from ..model.cost import count
    from .space_files import get_space

    try:
        space = get_space(space_name)
    except LwnasError:
        return []
    refs = []
    for name in config_names():
        spec = get_config(name)
        if space.contains(spec):
            refs.append((name, count(spec.replace(num_classes=num_classes)).macs))
    return refs


def write_plot(path: Path, study, complete, chosen, baselines=()) -> Path | None:
    """An HTML page with two plotly scatter plots (validation top-1 against MAdds and against latency), when plotly
    is installed (None otherwise). Named configs trained as baselines are labelled red points; the space's other
    named configs and the budget are labelled vertical lines on the MAdds plot (their accuracy on this data is
    unknown until trained)."""
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        return None
    chosen_ids = {t.number for t in chosen}
    settings = study.user_attrs.get("settings", {})
    classes = ArchSpec.from_yaml(complete[0].user_attrs["spec"]).num_classes  # the data's, as the trials count
    budget = settings.get("budget")
    x_max = max([t.user_attrs["madds"] for t in complete] + ([budget] if budget else [])) * 1.15
    trained = {b["baseline"] for b in baselines}
    refs = [(n, m) for n, m in _reference_configs(settings.get("space", ""), classes) if m <= x_max and n not in trained]
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True)
    for col, key, scale, title in ((1, "madds", 1e6, "MAdds (M)"), (2, "latency_ms", 1.0, "latency (ms)")):
        for best in (True, False):
            trials = [t for t in complete if (t.number in chosen_ids) == best]
            figure.add_trace(go.Scatter(
                x=[t.user_attrs[key] / scale for t in trials], y=[t.user_attrs["top1"] for t in trials],
                mode="markers", name="best / Pareto front" if best else "other trained trials",
                marker={"color": "#236" if best else "white", "line": {"color": "#236", "width": 1}, "size": 8},
                text=[f"trial {t.number}" for t in trials], showlegend=col == 1), row=1, col=col)
        figure.add_trace(go.Scatter(
            x=[b[key] / scale for b in baselines], y=[b["top1"] for b in baselines], mode="markers+text",
            name="baselines", text=[b["baseline"] for b in baselines], textposition="middle right",
            marker={"color": "#c33", "size": 10}, showlegend=col == 1), row=1, col=col)
        figure.update_xaxes(title_text=title, row=1, col=col)
    for name, madds in refs + ([("budget", budget)] if budget else []):
        figure.add_vline(x=madds / 1e6, line_dash="dash", line_color="#c33", annotation_text=name, row=1, col=1)
    figure.update_yaxes(title_text="validation top-1 (%)", row=1, col=1)
    figure.update_layout(title=f"{study.study_name}: {len(complete)} trained architectures", template="simple_white")
    figure.write_html(str(path), include_plotlyjs="directory")  # plotly.min.js beside it, shared with optuna/
    return path


def resolve_arch(arch: str, storage: str | None = None, runs_dir: str = "runs") -> ArchSpec:
    """A config name, a spec YAML, or STUDY:TRIAL (a trained trial of a search study)."""
    from ..model.configs import resolve

    if ":" in arch and not arch.endswith((".yaml", ".yml")) and "/" not in arch.split(":")[0]:
        study_name, _, number = arch.rpartition(":")
        if not number.isdigit():
            raise LwnasError(f"--arch {arch!r}: expected STUDY:TRIAL with a trial number, e.g. micro-12M-synthetic-acc:3")
        import optuna

        from .storage import load_study

        study = load_study(study_name, storage, runs_dir)
        trained = {t.number: t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                   if "spec" in t.user_attrs}
        found = [t for t in study.get_trials(deepcopy=False) if t.number == int(number)]
        if found and found[0].user_attrs.get("duplicate_of") in trained:  # a repeat: the trial that trained it
            number = str(found[0].user_attrs["duplicate_of"])
        if int(number) not in trained:
            state = {"FAIL": "failed"}.get(found[0].state.name, found[0].state.name.lower()) if found else ""
            what = f"trial {number} is {state}, not trained" if found else f"no trial {number}"
            listed = ", ".join(map(str, sorted(trained)[:20])) + (" ..." if len(trained) > 20 else "")
            raise LwnasError(f"study {study_name!r}: {what}; trained trials: {listed or 'none'}")
        return ArchSpec.from_yaml(trained[int(number)].user_attrs["spec"], f"{study_name}:{number}")
    return resolve(arch)


def searched_settings(arch: str, storage: str | None = None, runs_dir: str = "runs") -> dict | None:
    """The settings of the study that STUDY:TRIAL names (its data set, training schedule, ...), else None."""
    if ":" not in arch or arch.endswith((".yaml", ".yml")) or "/" in arch.split(":")[0]:
        return None
    from .storage import load_study

    return load_study(arch.rpartition(":")[0], storage, runs_dir).user_attrs.get("settings")
