"""`lwnas runs`: list studies, show one study's best trials or Pareto front, write the front's specs
as YAML (ready for `lwnas train`) and an HTML page with the front plotted against the named configs."""
from __future__ import annotations

import html
import json
import warnings
from pathlib import Path

from .budget import human
from .errors import LwnasError
from .spec import ArchSpec
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
    from .table import print_table

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
    from .table import print_table

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
    print(f"specs written to {out / 'front'}/ (train one with `lwnas train --arch FILE.yaml`); plot: {plot}")
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
    from .configs import config_names, get_config
    from .cost import count
    from .space import get_space

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


def write_plot(path: Path, study, complete, chosen, baselines=()) -> Path:
    """A self-contained HTML page with two SVG scatter plots (top-1 vs MAdds, top-1 vs latency). Named
    configs trained as baselines are labelled red points; the space's other named configs appear as labelled
    vertical lines on the MAdds plot (their accuracy on this data is unknown until trained)."""
    chosen_ids = {t.number for t in chosen}
    points = [(t.user_attrs["madds"], t.user_attrs["latency_ms"], t.user_attrs["top1"], t.number in chosen_ids,
               t.number) for t in complete]
    settings = study.user_attrs.get("settings", {})
    classes = ArchSpec.from_yaml(complete[0].user_attrs["spec"]).num_classes  # the data's, as the trials count
    refs = _reference_configs(settings.get("space", ""), classes)
    budget = settings.get("budget")
    x_max = max([p[0] for p in points] + ([budget] if budget else [])) * 1.15
    trained = {b["baseline"] for b in baselines}
    refs = [(n, m) for n, m in refs if m <= x_max and n not in trained]
    svg1 = _scatter([(p[0] / 1e6, p[2], p[3], p[4]) for p in points], "MAdds (M)", "proxy top-1 (%)",
                    [(n, m / 1e6) for n, m in refs] + ([("budget", budget / 1e6)] if budget else []),
                    [(b["baseline"], b["madds"] / 1e6, b["top1"]) for b in baselines])
    svg2 = _scatter([(p[1], p[2], p[3], p[4]) for p in points], "latency (ms)", "proxy top-1 (%)", [],
                    [(b["baseline"], b["latency_ms"], b["top1"]) for b in baselines])
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(study.study_name)}</title>"
            f"<h2>{html.escape(study.study_name)}</h2><p>{len(points)} trained architectures; "
            f"filled: best / Pareto front. Red points: baselines (named configs, same proxy training). "
            f"Vertical lines: other named configs in the space and the budget.</p>"
            f"{svg1}{svg2}")
    path.write_text(page)
    return path


def _scatter(points, xlabel, ylabel, vlines, marks=(), width=560, height=380) -> str:
    pad = 50
    xs = [p[0] for p in points] + [v[1] for v in vlines] + [m[1] for m in marks]
    ys = [p[1] for p in points] + [m[2] for m in marks]
    x0, x1 = 0.0, max(xs) * 1.05 if xs else 1.0
    y0, y1 = min(ys + [0.0]), max(ys + [1.0]) * 1.05

    def sx(x):
        return pad + (x - x0) / (x1 - x0 or 1) * (width - 2 * pad)

    def sy(y):
        return height - pad - (y - y0) / (y1 - y0 or 1) * (height - 2 * pad)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"style='font:11px sans-serif;margin:8px;border:1px solid #ccc'>",
             f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='black'/>",
             f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='black'/>",
             f"<text x='{width / 2}' y='{height - 12}' text-anchor='middle'>{html.escape(xlabel)}</text>",
             f"<text x='14' y='{height / 2}' transform='rotate(-90 14 {height / 2})' "
             f"text-anchor='middle'>{html.escape(ylabel)}</text>"]
    for frac in (0, 0.5, 1):
        xv, yv = x0 + frac * (x1 - x0), y0 + frac * (y1 - y0)
        parts.append(f"<text x='{sx(xv)}' y='{height - pad + 14}' text-anchor='middle'>{xv:.3g}</text>")
        parts.append(f"<text x='{pad - 4}' y='{sy(yv) + 4}' text-anchor='end'>{yv:.3g}</text>")
    for i, (label, x) in enumerate(vlines):
        parts.append(f"<line x1='{sx(x)}' y1='{pad}' x2='{sx(x)}' y2='{height - pad}' stroke='#c33' "
                     f"stroke-dasharray='4 3'/><text x='{sx(x) + 3}' y='{pad + 12 + 12 * (i % 4)}' "
                     f"fill='#c33'>{html.escape(label)}</text>")
    for x, y, best, number in points:
        fill = "#236" if best else "white"
        parts.append(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='4' fill='{fill}' stroke='#236'>"
                     f"<title>trial {number}: {x:.3g}, {y:.1f}%</title></circle>")
    for label, x, y in marks:
        parts.append(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='5' fill='#c33'><title>{html.escape(label)}: "
                     f"{x:.3g}, {y:.1f}%</title></circle><text x='{sx(x) + 7:.1f}' y='{sy(y) + 4:.1f}' "
                     f"fill='#c33'>{html.escape(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)
