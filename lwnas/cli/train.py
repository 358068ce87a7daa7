"""Commands of training and deployment: train, supernet, eval, predict, export."""
from __future__ import annotations

import argparse
import json

from ..budget import human
from ..errors import LwnasError
from ..train.recipes import RECIPES
from .options import add_training_options, positive_int, with_amp_default


def cmd_train(args):
    from pathlib import Path

    from ..search.results import resolve_arch, searched_settings
    from ..search.storage import check_study_name
    from ..train.devices import set_device
    from ..train.runs import train_run

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
    from ..train.settings import TrainConfig

    data = {}
    if args.config:
        from ..model.spec import read_yaml_mapping

        data = read_yaml_mapping(args.config).get("train", {})
    from ..train.data import native_resolution

    defaults = {"resolution": native_resolution(args.data, resolution), **defaults}
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "resolution": args.resolution, "lr": args.lr,
                 "optimizer": args.optimizer, "workers": args.loader_workers, "seed": args.seed,
                 "train_subset": args.train_subset, "val_subset": args.val_subset, "amp": args.amp,
                 "amp_dtype": args.amp_dtype}
    recipe = {}
    if getattr(args, "recipe", None):
        from ..train.recipes import RECIPES, recipe_settings

        recipe = recipe_settings(args.recipe, name, args.batch_size, args.lr)
        scaled = f" (lr scaled to --batch-size {args.batch_size})" if args.batch_size and args.lr is None else ""
        print(f"recipe {args.recipe} ({RECIPES[args.recipe].source}): " +
              ", ".join(f"{k} {v}" for k, v in recipe.items()) + scaled)
    settings = {**defaults, **recipe, **data, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig.from_dict(with_amp_default(settings, args.device), args.config or "training settings")


def cmd_supernet(args):
    from pathlib import Path

    from ..search.space_files import get_space
    from ..train.devices import set_device

    set_device(args.device)
    if args.action == "train":
        from ..budget import parse_count
        from ..supernet.train import Sandwich, train_supernet

        space = get_space(args.space)
        budget = parse_count(args.budget, "--budget") if args.budget else None
        distill = args.sandwich if args.distill is None else args.distill
        sandwich = Sandwich(random_subnets=args.random_subnets, distill=distill, budget=budget, sandwich=args.sandwich)
        config = _train_settings(args, space.resolution, {"epochs": 20, "ema_decay": 0.0}, space.name)
        name = f"supernet-{space.name}" + (f"-{human(budget)}" if budget else "")
        output = Path(args.output) if args.output else Path(args.runs_dir) / name
        _, history = train_supernet(space, args.data, output, config, sandwich, resume=args.resume,
                                    skip_bad=args.skip_bad_images, from_disk=args.from_disk,
                                    epochs=args.epochs if args.resume else None,
                                    separate=[n.strip() for n in args.separate.split(",")] if args.separate else ())
        print(f"done: largest subnet top-1 {history[-1].top1:.2f}%; checkpoints and logs in {output}")
        return
    from ..search.results import resolve_arch
    from ..supernet.extract import extract, load_supernet

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

    from ..deploy.predict import evaluate_run
    from ..train.devices import set_device

    set_device(args.device)
    result = evaluate_run(Path(args.checkpoint), args.data, args.skip_bad_images, args.split)
    print(json.dumps(result, indent=2) if args.json else
          f"{result['data']} {result['split']} split, {result['images']} images: top-1 {result['top1']:.2f}%, "
          f"top-5 {result['top5']:.2f}%, loss {result['loss']:.4f}")


def cmd_predict(args):
    from pathlib import Path

    from ..deploy.predict import predict

    results = predict(Path(args.checkpoint), args.images, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(r["image"] + ": " + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in r["top"]))


def cmd_export(args):
    from pathlib import Path

    from ..deploy.export import export

    output = Path(args.output)
    if output.exists() and any(output.iterdir()) and not args.force:
        raise LwnasError(f"{output} exists and is not empty; pass --force to overwrite it, or choose another --output")
    export(Path(args.checkpoint), output, args.format, args.resolution)
    print(f"exported to {output}/: " + ", ".join(sorted(f.name for f in output.iterdir() if f.is_file())))


def add_commands(sub):
    """Add train, supernet, eval, predict and export; returns the supernet actions (each gets --verbose too)."""
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
    add_training_options(p, epochs=100)
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
    q.add_argument("--random-subnets", type=positive_int, default=2,
                   help="random subnets per batch besides the largest and smallest (default 2)")
    q.add_argument("--distill", action=argparse.BooleanOptionalAction, default=None,
                   help="subnets learn the largest subnet's predictions (default with the sandwich rule) or the labels")
    q.add_argument("--sandwich", action=argparse.BooleanOptionalAction, default=True,
                   help="train the largest and smallest subnets at every step too (default), or only the random ones "
                        "(SPOS's uniform single path; implies --no-distill)")
    q.add_argument("--separate", metavar="TYPE.PARAM,...",
                   help="shared block parameters whose every value gets weights of its own, SPOS-style "
                        "(e.g. micro_block.expand; default: none, see docs/supernet.md)")
    add_training_options(q, epochs=20)
    q.set_defaults(func=cmd_supernet)
    q = actions.add_parser("extract", help="write one network with its inherited weights as a run folder")
    q.add_argument("checkpoint", help="supernet run folder or checkpoint")
    q.add_argument("--arch", required=True, help="config name, spec YAML, or STUDY:TRIAL of a search")
    q.add_argument("--data", required=True, help="the data the supernet was trained on (batch-norm statistics)")
    q.add_argument("--output", required=True, help="run folder to write")
    q.add_argument("--bn-batches", type=positive_int, help="batches that re-estimate batch-norm statistics "
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
    p.add_argument("--top-k", type=positive_int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="re-parameterize and export for deployment")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--output", required=True, help="folder for the exported model")
    p.add_argument("--format", choices=("paddle", "onnx"), default="paddle")
    p.add_argument("--resolution", type=positive_int,
                   help="input resolution (default: the one it was trained and evaluated at)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --output folder")
    p.set_defaults(func=cmd_export)
    return actions
