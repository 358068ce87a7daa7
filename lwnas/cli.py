"""The `lwnas` command line. User errors print one line and exit with code 2."""
from __future__ import annotations

import argparse
import json
import re
import sys

from . import __version__
from .budget import human
from .errors import LwnasError
from .pruning import PRUNERS
from .recipes import RECIPES
from .search import DEFAULT_TRIALS, SCHEDULE_EPOCHS
from .table import print_table
from .zero_cost import SCORES


def cmd_configs(args):
    from . import count, get_config, config_names
    from .published import PUBLISHED

    rows = []
    for name in config_names():
        spec = get_config(name)
        cost = count(spec)
        pub = PUBLISHED.get(name)
        rows.append({"name": name, "family": spec.family, "resolution": spec.resolution, "madds": cost.macs,
                     "params": cost.params, "train_params": cost.train_params,
                     "published_madds": pub.madds if pub else None, "published_params": pub.params if pub else None,
                     "published_top1": pub.top1 if pub else None, "arch_hash": spec.arch_hash})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print_table([{**r, "madds": human(r["madds"]), "params": human(r["params"]),
                   "published_top1": r["published_top1"] if r["published_top1"] is not None else "-"} for r in rows],
                 ["name", "family", "resolution", "madds", "params", "published_top1"])


def cmd_spaces(args):
    from .space import get_space, space_names

    rows = []
    for name in space_names():
        space = get_space(name)
        rows.append({"name": name, "resolution": space.resolution, "smallest_madds": space.smallest().macs,
                     "largest_madds": space.largest().macs, "description": space.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print_table([{**r, "smallest_madds": human(r["smallest_madds"]), "largest_madds": human(r["largest_madds"])}
                 for r in rows], ["name", "resolution", "smallest_madds", "largest_madds", "description"])
    print("MAdds at each space's resolution with 1000 classes; search one with `lwnas search --space NAME`")


def cmd_count(args):
    from . import count
    from .configs import resolve

    spec = resolve(args.arch)
    cost = count(spec, args.resolution)
    result = {"name": spec.name, "resolution": args.resolution or spec.resolution, "madds": cost.macs,
              "params": cost.params, "train_params": cost.train_params, "arch_hash": spec.arch_hash}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        extra = f" ({human(cost.train_params)} before re-parameterization)" if cost.train_params != cost.params else ""
        print(f"{spec.name} @ {result['resolution']}: {human(cost.macs)} MAdds, {human(cost.params)} params{extra}")


def cmd_show(args):
    from .configs import resolve
    from .cost import trace

    spec = resolve(args.arch)
    rows = trace(spec, args.resolution)
    if args.json:
        print(json.dumps({"spec": spec.to_dict(), "arch_hash": spec.arch_hash,
                          "layers": [{"path": r.path, "type": r.type, "in": r.in_shape, "out": r.out_shape,
                                      "madds": r.macs, "params": r.params, "train_params": r.train_params}
                                     for r in rows]}, indent=2))
        return
    print(spec.to_yaml())
    print(f"# arch hash {spec.arch_hash}")
    print_table([{"layer": r.path, "type": r.type, "in": "x".join(map(str, r.in_shape)),
                   "out": "x".join(map(str, r.out_shape)), "madds": human(r.macs), "params": human(r.params)}
                  for r in rows], ["layer", "type", "in", "out", "madds", "params"])
    print(f"total: {human(sum(r.macs for r in rows))} MAdds, {human(sum(r.params for r in rows))} params")


def _with_amp_default(settings: dict, device: str) -> dict:
    """AMP on by default on GPUs (float16), off on CPU; a flag or the settings file decides otherwise."""
    return {"amp": device.startswith("gpu"), **settings}


def _proxy_settings(args):
    from .train import TrainConfig

    data = {}
    if args.proxy_config:
        from .spec import read_yaml_mapping

        data = read_yaml_mapping(args.proxy_config).get("proxy", {})
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "resolution": args.proxy_resolution,
                 "train_subset": args.train_subset, "val_subset": args.val_subset, "lr": args.lr,
                 "workers": args.loader_workers, "seed": args.seed, "amp": args.amp, "amp_dtype": args.amp_dtype}
    data.update({k: v for k, v in overrides.items() if v is not None})
    data.setdefault("epochs", SCHEDULE_EPOCHS)
    return TrainConfig.from_dict(_with_amp_default(data, args.device), args.proxy_config or "proxy settings")


def cmd_search(args):
    from .budget import parse_count, parse_duration
    from .search import Search, SearchSettings
    from .train import set_device
    from .workers import run_workers

    settings = SearchSettings(space=args.space, budget=parse_count(args.flops_budget, "--flops-budget"),
                              trials=args.trials, data=args.data, objective=args.objective, sampler=args.sampler,
                              seed=args.seed, device=args.device, study=args.study, storage=args.storage,
                              runs_dir=args.runs_dir, shrink=args.shrink, latency_runs=args.latency_runs,
                              skip_bad_images=args.skip_bad_images, proxy=_proxy_settings(args),
                              heartbeat_grace=args.heartbeat_grace, until_total=args.until_total,
                              baselines=tuple(args.baseline), worker=args.worker_index,
                              prescreen=args.prescreen, prescreen_score=args.prescreen_score,
                              latency_engine=args.latency_engine, latency_threads=args.latency_threads,
                              supernet=args.supernet, pruner=args.pruner, min_epochs=args.min_epochs,
                              reduction_factor=args.reduction_factor, max_epochs=args.max_epochs,
                              time_limit=parse_duration(args.time_limit) if args.time_limit else None)
    if settings.trials is None and settings.max_epochs is None and settings.time_limit is None:
        settings.trials = DEFAULT_TRIALS
    search = Search(settings)
    if args.workers > 1:
        run_workers(search, args.argv, args.workers, args.until_total)
        return
    set_device(args.device)
    try:
        search.run()
    except KeyboardInterrupt:  # the resume command asks for the trials still owed, not as many again
        if settings.trials and "--trials" in args.argv and search.trained_so_far is not None:
            at = args.argv.index("--trials") + 1
            args.argv[at] = str(max(1, search.target - search.trained_so_far))
        raise
    print(f"see the results with: lwnas runs show {search.name}" +
          (f" --storage '{args.storage}'" if args.storage else ""))


def cmd_score(args):
    import numpy as np

    from . import data
    from .configs import resolve
    from .zero_cost import scores

    images = data.load(args.data, "train", args.resolution, seed=args.seed).subset(args.batch_size, args.seed)
    spec = resolve(args.arch).replace(num_classes=len(images.classes))
    view = data.Augmented(images, args.resolution, train=False)
    batch = np.stack([view[i][0] for i in range(len(view))])
    seconds = {}
    result = scores(spec, batch, images.labels, seed=args.seed, seconds=seconds)
    if args.json:
        print(json.dumps({"name": spec.name, "arch_hash": spec.arch_hash, "images": len(batch),
                          "resolution": args.resolution, "scores": result,
                          "seconds": {k: round(v, 3) for k, v in seconds.items()}}, indent=2))
        return
    print(f"{spec.name} ({spec.arch_hash}) on {len(batch)} images of {args.data} at {args.resolution}px:")
    print_table([{"score": name, "value": f"{value:.6g}",
                  "seconds": f"{seconds[name]:.2f}" if name in seconds else "-"} for name, value in result.items()],
                ["score", "value", "seconds"])


def cmd_runs(args):
    from .results import list_studies, show_study

    if args.study:
        show_study(args.study, args.storage, args.runs_dir, as_json=args.json, top=args.top)
    else:
        list_studies(args.storage, args.runs_dir, as_json=args.json)


def cmd_latency(args):
    from .build import build
    from .configs import resolve
    from .latency import deployable, measure
    from .train import set_device

    set_device(args.device)
    if args.arch == "table":
        return latency_table(args)
    spec = resolve(args.arch)
    model = deployable(build(spec))
    res = args.resolution or spec.resolution
    runs = [measure(model, res, args.batch_size, args.warmup, args.runs, spec.in_channels, args.engine, args.threads)
            for _ in range(args.repeat)]
    if args.json:
        print(json.dumps({"name": spec.name, "arch_hash": spec.arch_hash, "measurements": [r.to_dict() for r in runs]},
                         indent=2))
        return
    for i, r in enumerate(runs, 1):
        print(f"{spec.name} @ {res}px batch {r.batch_size} on {r.device}, {r.threads} thread(s): "
              f"median {r.median_ms:.3f} ms, "
              f"IQR {r.iqr_ms:.3f} ms ({100 * r.spread:.1f}% of median), {r.runs} runs" +
              (f" [repeat {i}]" if args.repeat > 1 else ""))
    if len(runs) > 1:
        medians = [r.median_ms for r in runs]
        print(f"spread of medians across repeats: {100 * (max(medians) - min(medians)) / min(medians):.1f}%")
    if args.table:
        from .predictor import LatencyTable

        table = LatencyTable.load(args.table)
        print(f"{args.table} predicts {table.predict(spec, res):.3f} ms ({table.engine}, {table.threads} thread(s), "
              f"{100 * table.coverage(spec):.0f}% of the blocks in the table)")


def latency_table(args):
    """`lwnas latency table --space S`: time the blocks of random networks of S on this machine."""
    from .predictor import build_table, sample_specs
    from .space import get_space

    if not args.space:
        raise LwnasError("latency table needs --space (e.g. --space micro)")
    space = get_space(args.space)
    specs = sample_specs(space, args.samples, args.seed, args.classes)
    table = build_table(specs, args.engine, args.threads, args.batch_size, args.runs)
    output = args.output or f"latency-{space.name}-{args.engine}.json"
    table.save(output)
    errors = [abs(table.scale * a + table.overhead - b) / b for a, b in table.networks]
    print(f"wrote {output}: {len(table.blocks)} blocks of {len(specs)} networks; network = {table.scale:.3f} x sum of "
          f"blocks + {table.overhead:.2f} ms (on these networks: mean error {100 * sum(errors) / len(errors):.1f}%)")


def cmd_train(args):
    from pathlib import Path

    from .retrain import resolve_arch, searched_settings, train_run
    from .storage import check_study_name
    from .train import set_device

    spec = resolve_arch(args.arch, args.storage, args.runs_dir)
    searched = searched_settings(args.arch, args.storage, args.runs_dir)
    defaults = {"epochs": 100, "ema_decay": 0.9998, "warmup_epochs": 3.0}
    if searched:  # the study's data and schedule: the trial was chosen for them
        args.data = args.data or searched["data"]
        defaults = {**defaults, "epochs": searched["proxy"]["epochs"], "resolution": searched["proxy"]["resolution"]}
        print(f"{args.arch}: the study's data ({args.data}) and schedule ({defaults['epochs']} epochs at "
              f"{defaults['resolution']} px) unless flags say otherwise")
    elif args.data is None:
        args.data = "synthetic"
        print("no --data: training on the built-in synthetic set")
    config = _train_settings(args, spec.resolution, defaults, spec.name)
    output = Path(args.output) if args.output else Path(args.runs_dir) / check_study_name(spec.name)
    set_device(args.device)
    _, history = train_run(spec, args.data, output, config, resume=args.resume, skip_bad=args.skip_bad_images,
                           from_disk=args.from_disk, epochs=args.epochs if args.resume else None,
                           init=Path(args.init) if args.init else None)
    print(f"done: best top-1 {max(h.top1 for h in history):.2f}%; checkpoints and logs in {output}")


def _train_settings(args, resolution: int, defaults: dict, name: str):
    """Training settings from, in rising precedence: `defaults`, --recipe, --config's 'train:' section, flags."""
    from .train import TrainConfig

    data = {}
    if args.config:
        from .spec import read_yaml_mapping

        data = read_yaml_mapping(args.config).get("train", {})
    small = args.data == "synthetic" or args.data.endswith((".tar.gz", ".tgz", ".tar"))
    defaults = {"resolution": 32 if small else resolution, **defaults}
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "resolution": args.resolution, "lr": args.lr,
                 "optimizer": args.optimizer, "workers": args.loader_workers, "seed": args.seed,
                 "train_subset": args.train_subset, "val_subset": args.val_subset, "amp": args.amp,
                 "amp_dtype": args.amp_dtype}
    recipe = {}
    if getattr(args, "recipe", None):
        from .recipes import RECIPES, recipe_settings

        recipe = recipe_settings(args.recipe, name, args.batch_size, args.lr)
        scaled = f" (lr scaled to --batch-size {args.batch_size})" if args.batch_size and args.lr is None else ""
        print(f"recipe {args.recipe} ({RECIPES[args.recipe].source}): " +
              ", ".join(f"{k} {v}" for k, v in recipe.items()) + scaled)
    settings = {**defaults, **recipe, **data, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig.from_dict(_with_amp_default(settings, args.device), args.config or "training settings")


def cmd_supernet(args):
    from pathlib import Path

    from .space import get_space
    from .train import set_device

    set_device(args.device)
    if args.action == "train":
        from .budget import parse_count
        from .supernet.train import Sandwich, train_supernet

        space = get_space(args.space)
        budget = parse_count(args.budget, "--budget") if args.budget else None
        distill = args.sandwich if args.distill is None else args.distill
        sandwich = Sandwich(random_subnets=args.random_subnets, distill=distill, budget=budget, sandwich=args.sandwich)
        config = _train_settings(args, space.resolution, {"epochs": 20, "ema_decay": 0.0}, space.name)
        name = f"supernet-{space.name}" + (f"-{human(budget)}" if budget else "")
        output = Path(args.output) if args.output else Path(args.runs_dir) / name
        _, history = train_supernet(space, args.data, output, config, sandwich, resume=args.resume,
                                    skip_bad=args.skip_bad_images, from_disk=args.from_disk,
                                    epochs=args.epochs if args.resume else None)
        print(f"done: largest subnet top-1 {history[-1].top1:.2f}%; checkpoints and logs in {output}")
        return
    from .retrain import resolve_arch
    from .supernet.extract import extract, load_supernet

    supernet, state = load_supernet(Path(args.checkpoint))
    spec = resolve_arch(args.arch, args.storage, args.runs_dir)
    result = extract(supernet, state, spec, args.data, Path(args.output), args.bn_batches, args.skip_bad_images)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{spec.name} ({result['arch_hash']}): inherited top-1 {result['top1']:.2f}% top-5 {result['top5']:.2f}% "
              f"after {result['bn_batches']} batch-norm batches; written to {args.output}")


def cmd_eval(args):
    from pathlib import Path

    from .retrain import evaluate_run
    from .train import set_device

    set_device(args.device)
    result = evaluate_run(Path(args.checkpoint), args.data, args.skip_bad_images, args.split)
    print(json.dumps(result, indent=2) if args.json else
          f"{result['data']} {result['split']} split, {result['images']} images: top-1 {result['top1']:.2f}%, "
          f"top-5 {result['top5']:.2f}%, loss {result['loss']:.4f}")


def cmd_predict(args):
    from pathlib import Path

    from .retrain import predict

    results = predict(Path(args.checkpoint), args.images, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(r["image"] + ": " + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in r["top"]))


def cmd_export(args):
    from pathlib import Path

    from .retrain import export

    output = Path(args.output)
    if output.exists() and any(output.iterdir()) and not args.force:
        raise LwnasError(f"{output} exists and is not empty; pass --force to overwrite it, or choose another --output")
    export(Path(args.checkpoint), output, args.format, args.resolution)
    print(f"exported to {output}/: " + ", ".join(sorted(f.name for f in output.iterdir() if f.is_file())))


def _latency_engine(text: str) -> str:
    from pathlib import Path

    if text in ("eager", "inference", "onnxruntime") or text.startswith("predict:") and Path(text[8:]).is_file():
        return text
    if text.startswith("predict:"):
        raise argparse.ArgumentTypeError(f"no latency table at {text[8:]!r} (build one with `lwnas latency table`)")
    raise argparse.ArgumentTypeError(f"expected eager, inference, onnxruntime or predict:TABLE, got {text!r}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit code 2, like every other input error, with the nearest option named for
    a mistyped one. No abbreviated options: a prefix such as --work would otherwise reach --workers (and the
    workers, which would start workers). A value such as -5M is a value (a budget to refuse with its own
    message), not an unknown option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})
        self._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?([eE][+-]?\d+)?[kKmMgG]?$")

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}{self._suggestion(message)} (see {self.prog} --help)\n")

    argv: list[str] = []  # the command line being parsed (set by `main`)

    def _suggestion(self, message: str) -> str:
        """'; did you mean --trials?' for an unrecognized option close to one of this command's (a required
        option reported missing may be one the user mistyped)."""
        import difflib

        known = [option for action in self._actions for option in action.option_strings if option.startswith("--")]
        typed = [token.split("=")[0] for token in self.argv if token.startswith("--")]
        for option in typed:
            close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
            if option not in known and close:
                lead = "" if message.startswith("unrecognized") else f"; {option} is not an option"
                return f"{lead}; did you mean {close[0]}?"
        return ""


def _add_amp_options(p):
    from .train import AMP_DTYPES

    p.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="automatic mixed precision (default: on with --device gpu, off on cpu)")
    p.add_argument("--amp-dtype", choices=AMP_DTYPES, help="half-precision type under --amp (default float16)")


def _add_training_options(p, epochs: int):
    p.add_argument("--config", help="YAML file with a 'train:' section of training settings")
    p.add_argument("--epochs", type=_positive_int, help=f"default {epochs}")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--resolution", type=_positive_int,
                   help="training resolution (default 32 for synthetic/CIFAR, else the spec's)")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=("sgd", "adamw"))
    p.add_argument("--loader-workers", type=int, help="DataLoader worker processes (default 0)")
    _add_amp_options(p)
    p.add_argument("--seed", type=int)
    p.add_argument("--train-subset", type=_positive_int)
    p.add_argument("--val-subset", type=_positive_int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--skip-bad-images", action="store_true")
    p.add_argument("--from-disk", action=argparse.BooleanOptionalAction, default=None,
                   help="read and decode folder/list images per batch in the loader workers instead of decoding the "
                        "set into memory first (default: only above 2 GiB of decoded pixels)")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lwnas", description="Hardware-aware NAS for lightweight classifiers.")
    parser.add_argument("--version", action="version", version=f"lwnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("configs", help="list the named paper configs with their computed cost")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_configs)

    p = sub.add_parser("spaces", help="list the search spaces, with the MAdds range of their networks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_spaces)

    for name, func, text in (("count", cmd_count, "multiply-adds and parameters of a config or spec file"),
                             ("show", cmd_show, "the spec and a per-layer cost breakdown")):
        p = sub.add_parser(name, help=text)
        p.add_argument("arch", help="config name (see `lwnas configs`) or path to a spec YAML")
        p.add_argument("--resolution", type=_positive_int, help="input resolution (default: the spec's)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)

    p = sub.add_parser("search", help="search a space for the best networks under a MAdds budget")
    p.add_argument("--flops-budget", required=True, help="MAdds budget at the space's resolution: 12M, 12e6, 0.3G")
    p.add_argument("--space", default="micro", help="search space name (search_spaces/) or YAML path; default micro")
    p.add_argument("--trials", type=_positive_int,
                   help=f"new architectures to train, to the end or until the pruner stops them (default "
                        f"{DEFAULT_TRIALS} when no --max-epochs or --time-limit is given, else no limit)")
    p.add_argument("--max-epochs", type=_positive_int, metavar="N",
                   help="compute budget: the study ends once its trials have trained N epochs in all (counted over "
                        "the whole study, so the same command resumes it to the same budget)")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="stop this run after DURATION (e.g. 45m, 2h); a trial cut short continues from its last epoch "
                        "when the same command runs again")
    p.add_argument("--pruner", choices=PRUNERS, default="sha",
                   help="sha: successive halving on validation top-1 (default); hyperband; median: below the median "
                        "of earlier trials; none: every trial trains to the end")
    p.add_argument("--min-epochs", type=_positive_int, default=2,
                   help="sha/hyperband: epochs before the first rung (default 2)")
    p.add_argument("--reduction-factor", type=_positive_int, default=3,
                   help="sha/hyperband: keep the best 1/N at each rung (default 3)")
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (built-in, default), a CIFAR tarball, an ImageFolder root or a list-file root")
    p.add_argument("--objective", choices=("accuracy", "accuracy-latency"), default="accuracy",
                   help="maximize proxy accuracy, or accuracy and latency together (Pareto front)")
    p.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default="tpe",
                   help="default: tpe, for both objectives (it learns from drafts rejected over budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N (default cpu)")
    p.add_argument("--study", help="study name (default: derived from space, budget, data and objective)")
    p.add_argument("--storage", help="SQLAlchemy URL of the Optuna storage (default sqlite:///RUNS_DIR/lwnas.db)")
    p.add_argument("--runs-dir", default="runs", help="where studies and trial artifacts go (default runs/)")
    p.add_argument("--shrink", action=argparse.BooleanOptionalAction, default=False,
                   help="shrink over-budget samples (widths, then depths) until they fit, instead of rejecting "
                        "them; off by default, as it piles every network onto the budget edge")
    p.add_argument("--baseline", action="append", default=[], metavar="CONFIG",
                   help="also train this named config (e.g. micronet_m2) with the same proxy, once per study, as the "
                        "reference the search should beat; repeatable")
    p.add_argument("--supernet", metavar="RUN", help="score each trial by its accuracy with weights inherited from "
                                                    "this trained supernet (`lwnas supernet train`) instead of "
                                                    "training it; the proxy settings become the supernet's")
    p.add_argument("--prescreen", type=_positive_int, default=1, metavar="N",
                   help="draw N feasible candidates per trained trial and train the best by --prescreen-score "
                        "(default 1: off)")
    p.add_argument("--prescreen-score", choices=("params", "madds", *SCORES), default="params",
                   help="zero-cost score that ranks the candidates (default params; see `lwnas score`)")
    p.add_argument("--proxy-config", help="YAML file with a 'proxy:' section of training settings")
    p.add_argument("--epochs", type=_positive_int,
                   help=f"epochs of the schedule every trial trains on, the one its network would finally be trained "
                        f"with (default {SCHEDULE_EPOCHS}); the pruner stops the weaker trials early")
    p.add_argument("--batch-size", type=_positive_int, help="proxy batch size (default 64)")
    p.add_argument("--proxy-resolution", type=_positive_int, help="proxy training resolution (default 32)")
    p.add_argument("--train-subset", type=_positive_int, help="use at most this many training images")
    p.add_argument("--val-subset", type=_positive_int, help="use at most this many validation images")
    p.add_argument("--lr", type=float, help="proxy learning rate (default 0.1)")
    p.add_argument("--loader-workers", type=int, help="DataLoader worker processes (default 0: in the main process)")
    _add_amp_options(p)
    p.add_argument("--latency-runs", type=_positive_int, default=30, help="timed runs per latency measurement")
    p.add_argument("--latency-threads", type=_positive_int, default=1, help="CPU math threads when timing (default 1)")
    p.add_argument("--latency-engine", type=_latency_engine, default="eager",
                   help="eager: time each trial's network as a dynamic graph (default); inference: in a Paddle "
                        "Inference predictor, as deployed; onnxruntime: its ONNX export in ONNX Runtime; "
                        "predict:TABLE: predict it from a latency table built on the target device (`lwnas latency "
                        "table`), and time the final front for real")
    p.add_argument("--skip-bad-images", action="store_true", help="skip (and count) unreadable images")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="worker processes on this machine sharing the study (one GPU each with --device gpu)")
    p.add_argument("--heartbeat-grace", type=_positive_int, default=60,
                   help="seconds without a heartbeat before a worker's running trial is failed and retried")
    p.add_argument("--until-total", type=_positive_int, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("score", help="zero-cost scores of a freshly initialized network on one batch")
    p.add_argument("arch", help="config name or path to a spec YAML")
    p.add_argument("--data", default="synthetic", help="data set the batch comes from (see `lwnas search --help`)")
    p.add_argument("--resolution", type=_positive_int, default=32, help="input resolution (default 32, the proxy's)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="images in the batch (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("runs", help="list studies, or show one study's best trials / Pareto front")
    p.add_argument("action", nargs="?", choices=("show",), help="show one study")
    p.add_argument("study", nargs="?", help="study name (with show)")
    p.add_argument("--storage", help="SQLAlchemy URL (default sqlite:///RUNS_DIR/lwnas.db)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--top", type=_positive_int, default=10, help="best trials shown for one objective")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("latency", help="measure inference latency (median and IQR), or build a latency table")
    p.add_argument("arch", help="config name or path to a spec YAML; `table` builds a latency table of --space")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=_positive_int, default=1)
    p.add_argument("--resolution", type=_positive_int)
    p.add_argument("--warmup", type=_positive_int, default=10)
    p.add_argument("--runs", type=_positive_int, default=50)
    p.add_argument("--repeat", type=_positive_int, default=1, help="repeat the measurement to see its spread")
    p.add_argument("--threads", type=_positive_int, default=1, help="CPU math threads (default 1)")
    p.add_argument("--engine", choices=("eager", "inference", "onnxruntime"), default="eager",
                   help="time the dynamic-graph model, an exported model in a Paddle Inference predictor, or an "
                        "ONNX export in ONNX Runtime (the onnx extra)")
    p.add_argument("--table", help="also print the latency this table (from `lwnas latency table`) predicts")
    p.add_argument("--space", help="latency table: the search space whose blocks it times")
    p.add_argument("--samples", type=_positive_int, default=40,
                   help="latency table: random networks of the space whose blocks are timed (default 40)")
    p.add_argument("--classes", type=_positive_int, default=1000, help="latency table: classes of the head")
    p.add_argument("--seed", type=int, default=0, help="latency table: picks the random networks")
    p.add_argument("--output", help="latency table: where to write it (default latency-SPACE-ENGINE.json)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("train", help="train a network fully, with checkpoints that resume")
    p.add_argument("--arch", required=True, help="config name, spec YAML, or STUDY:TRIAL from a search")
    p.add_argument("--data", help="data set (see `lwnas search --help`); default: the study's for STUDY:TRIAL, "
                                  "else the built-in synthetic set")
    p.add_argument("--output", help="run folder (default RUNS_DIR/<spec name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--init", help="start from the weights of this run folder or checkpoint (e.g. a network taken "
                                  "out of a supernet by `lwnas supernet extract`); same architecture as --arch")
    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help=f"a paper's training recipe ({', '.join(sorted(RECIPES))}); --config and flags override it, "
                        f"and --batch-size alone scales its learning rate")
    _add_training_options(p, epochs=100)
    p.add_argument("--storage", help="storage of STUDY:TRIAL (default sqlite:///RUNS_DIR/lwnas.db)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("supernet", help="train a weight-sharing supernet of a space, or take a network out of one")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("train", help="sandwich-rule training with in-place distillation")
    q.add_argument("--space", required=True, help="search space name or YAML file")
    q.add_argument("--budget", help="MAdds: random subnets are drawn under it (e.g. 12M)")
    q.add_argument("--data", default="synthetic", help="data set (see `lwnas search --help`)")
    q.add_argument("--output", help="run folder (default RUNS_DIR/supernet-SPACE[-BUDGET])")
    q.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    q.add_argument("--random-subnets", type=_positive_int, default=2,
                   help="random subnets per batch besides the largest and smallest (default 2)")
    q.add_argument("--distill", action=argparse.BooleanOptionalAction, default=None,
                   help="subnets learn the largest subnet's predictions (default with the sandwich rule) or the labels")
    q.add_argument("--sandwich", action=argparse.BooleanOptionalAction, default=True,
                   help="train the largest and smallest subnets at every step too (default), or only the random ones "
                        "(SPOS's uniform single path; implies --no-distill)")
    _add_training_options(q, epochs=20)
    q.set_defaults(func=cmd_supernet)
    q = actions.add_parser("extract", help="write one network with its inherited weights as a run folder")
    q.add_argument("checkpoint", help="supernet run folder or checkpoint")
    q.add_argument("--arch", required=True, help="config name, spec YAML, or STUDY:TRIAL of a search")
    q.add_argument("--data", required=True, help="the data the supernet was trained on (batch-norm statistics)")
    q.add_argument("--output", required=True, help="run folder to write")
    q.add_argument("--bn-batches", type=_positive_int, help="batches that re-estimate batch-norm statistics "
                                                             "(default: the supernet's bn_recalibration)")
    q.add_argument("--storage", help="storage of STUDY:TRIAL (default sqlite:///RUNS_DIR/lwnas.db)")
    q.add_argument("--runs-dir", default="runs")
    q.add_argument("--device", default="cpu")
    q.add_argument("--skip-bad-images", action="store_true")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_supernet)

    p = sub.add_parser("eval", help="top-1/top-5 of a trained checkpoint on a data set's validation or test split")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--data", help="data set (default: the one the checkpoint was trained on)")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="val: the held-out images selection used (default); test: the data set's test split, "
                        "for a final report only")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-bad-images", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes of images")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=_positive_int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="re-parameterize and export for deployment")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--output", required=True, help="folder for the exported model")
    p.add_argument("--format", choices=("paddle", "onnx"), default="paddle")
    p.add_argument("--resolution", type=_positive_int,
                   help="input resolution (default: the one it was trained and evaluated at)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --output folder")
    p.set_defaults(func=cmd_export)
    for command in [*sub.choices.values(), *actions.choices.values()]:
        command.add_argument("--verbose", action="store_true",
                             help="also show third-party output (paddle2onnx, Polygraphy, Optuna); Paddle's C++ "
                                  "log needs GLOG_minloglevel=0")
    return parser


def _resume_hint(command: str, argv: list[str]) -> str:
    """How to go on after Ctrl-C: a search resumes with the same command, a training run with --resume."""
    import shlex

    import os

    where = f"cd {shlex.quote(os.getcwd())} && "  # the command's relative paths are relative to here
    if command == "search":
        return f"; the study keeps every finished trial, and this resumes it: {where}lwnas {shlex.join(argv)}"
    if command == "train":
        again = argv if "--resume" in argv else [*argv, "--resume"]
        return f"; the last finished epoch is kept, and this resumes it: {where}lwnas {shlex.join(again)}"
    return ""


def _command_parser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The innermost subcommand's parser of parsed `args` (`lwnas supernet train` -> its parser)."""
    while True:
        commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, commands[0].dest, None) if commands else None
        if chosen not in (commands[0].choices if commands else {}):
            return parser
        parser = commands[0].choices[chosen]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = make_parser()
    _Parser.argv = argv
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the (sub)command that was given, which knows the options a typo was meant for
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    from .quiet import configure

    configure(args.verbose)
    args.argv = argv  # --workers hands its own command line to the workers
    if getattr(args, "action", None) == "show" and not args.study:
        print("lwnas: error: runs show needs a study name (see `lwnas runs`)", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except LwnasError as err:
        print(f"lwnas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lwnas: interrupted{_resume_hint(args.command, argv)}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left early (`lwnas runs --json | head`): stop quietly, as `cat` would
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's final flush cannot fail
        return 141  # 128 + SIGPIPE, the shell's code for a writer whose pipe closed
    return 0


if __name__ == "__main__":
    sys.exit(main())
