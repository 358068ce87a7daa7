"""Commands of the search: search, runs."""
from __future__ import annotations

import argparse

from ..search.pruning import PRUNERS
from ..search.settings import DEFAULT_TRIALS, SCHEDULE_EPOCHS
from ..zero_cost import SCORES
from .options import add_amp_options, latency_engine, positive_int, with_amp_default


def _proxy_settings(args):
    from ..train.settings import TrainConfig

    data = {}
    if args.proxy_config:
        from ..model.spec import read_yaml_mapping

        data = read_yaml_mapping(args.proxy_config).get("proxy", {})
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "resolution": args.proxy_resolution,
                 "train_subset": args.train_subset, "val_subset": args.val_subset, "lr": args.lr,
                 "workers": args.loader_workers, "seed": args.seed, "amp": args.amp, "amp_dtype": args.amp_dtype}
    data.update({k: v for k, v in overrides.items() if v is not None})
    data.setdefault("epochs", SCHEDULE_EPOCHS)
    return TrainConfig.from_dict(with_amp_default(data, args.device), args.proxy_config or "proxy settings")


def cmd_search(args):
    from ..budget import parse_count, parse_duration
    from ..search.settings import SearchSettings
    from ..search.study import Search
    from ..search.workers import run_workers
    from ..train.devices import set_device

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


def cmd_runs(args):
    from ..search.results import list_studies, show_study

    if args.study:
        show_study(args.study, args.storage, args.runs_dir, as_json=args.json, top=args.top)
    else:
        list_studies(args.storage, args.runs_dir, as_json=args.json)


def add_commands(sub):
    """Add search and runs."""
    p = sub.add_parser("search", help="search a space for the best networks under a MAdds budget")
    p.add_argument("--flops-budget", required=True, help="MAdds budget at the space's resolution: 12M, 12e6, 0.3G")
    p.add_argument("--space", default="micro", help="search space name (search_spaces/) or YAML path; default micro")
    p.add_argument("--trials", type=positive_int,
                   help=f"new architectures to train, to the end or until the pruner stops them (default "
                        f"{DEFAULT_TRIALS} when no --max-epochs or --time-limit is given, else no limit)")
    p.add_argument("--max-epochs", type=positive_int, metavar="N",
                   help="compute budget: the study ends once its trials have trained N epochs in all (counted over "
                        "the whole study, so the same command resumes it to the same budget)")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="stop this run after DURATION (e.g. 45m, 2h); a trial cut short continues from its last epoch "
                        "when the same command runs again")
    p.add_argument("--pruner", choices=PRUNERS, default="sha",
                   help="sha: successive halving on validation top-1 (default); hyperband; median: below the median "
                        "of earlier trials; none: every trial trains to the end")
    p.add_argument("--min-epochs", type=positive_int, default=2,
                   help="sha/hyperband: epochs before the first rung (default 2)")
    p.add_argument("--reduction-factor", type=positive_int, default=3,
                   help="sha/hyperband: keep the best 1/N at each rung (default 3)")
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (built-in, default), a CIFAR tarball, an ImageFolder root or a list-file root")
    p.add_argument("--objective", choices=("accuracy", "accuracy-latency"), default="accuracy",
                   help="maximize proxy accuracy, or accuracy and latency together (Pareto front)")
    p.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default="random",
                   help="default: random (networks drawn under the budget); with successive halving it led TPE "
                        "at 12-24 trainings per study (docs/benchmarks.md)")
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
    p.add_argument("--prescreen", type=positive_int, default=1, metavar="N",
                   help="draw N feasible candidates per trained trial and train the best by --prescreen-score "
                        "(default 1: off)")
    p.add_argument("--prescreen-score", choices=("params", "madds", *SCORES), default="params",
                   help="zero-cost score that ranks the candidates (default params; see `lwnas score`)")
    p.add_argument("--proxy-config", help="YAML file with a 'proxy:' section of training settings")
    p.add_argument("--epochs", type=positive_int,
                   help=f"epochs of the schedule every trial trains on, the one its network would finally be trained "
                        f"with (default {SCHEDULE_EPOCHS}); the pruner stops the weaker trials early")
    p.add_argument("--batch-size", type=positive_int, help="proxy batch size (default 64)")
    p.add_argument("--proxy-resolution", type=positive_int, help="proxy training resolution (default 32)")
    p.add_argument("--train-subset", type=positive_int, help="use at most this many training images")
    p.add_argument("--val-subset", type=positive_int, help="use at most this many validation images")
    p.add_argument("--lr", type=float, help="proxy learning rate (default 0.1)")
    p.add_argument("--loader-workers", type=int, help="DataLoader worker processes (default 0: in the main process)")
    add_amp_options(p)
    p.add_argument("--latency-runs", type=positive_int, default=30, help="timed runs per latency measurement")
    p.add_argument("--latency-threads", type=positive_int, default=1, help="CPU math threads when timing (default 1)")
    p.add_argument("--latency-engine", type=latency_engine, default="auto",
                   help="auto (default): inference when a trial trains on 40,000 images or more (its epochs times "
                        "its training set), where timing as deployed costs about 5%% of it or less, eager below; "
                        "eager: time each trial's network as a dynamic graph; inference: in a Paddle Inference "
                        "predictor, as deployed; onnxruntime: its ONNX export in ONNX Runtime; "
                        "predict:TABLE: predict it from a latency table built on the target device (`lwnas latency "
                        "table`), and time the final front for real")
    p.add_argument("--skip-bad-images", action="store_true", help="skip (and count) unreadable images")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes on this machine sharing the study (one GPU each with --device gpu)")
    p.add_argument("--heartbeat-grace", type=positive_int, default=60,
                   help="seconds without a heartbeat before a worker's running trial is failed and retried")
    p.add_argument("--until-total", type=positive_int, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("runs", help="list studies, or show one study's best trials / Pareto front")
    p.add_argument("action", nargs="?", choices=("show",), help="show one study")
    p.add_argument("study", nargs="?", help="study name (with show)")
    p.add_argument("--storage", help="SQLAlchemy URL (default sqlite:///RUNS_DIR/lwnas.db)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--top", type=positive_int, default=10, help="best trials shown for one objective")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_runs)
