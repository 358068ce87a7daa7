"""`lwnas search --workers K`: K local processes on one study storage, each with its own GPU on --device gpu.

The parent only opens the study and waits: it never trains, so it holds no GPU a worker needs. The named
baselines are trained by worker 0, before its first trial."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from ..errors import LwnasError
from .baselines import compare as compare_with_baselines

# Options the parent consumes: the workers get neither (worker 0 gets the baselines back, one flag each).
PARENT_OPTIONS = ("--workers", "--baseline")


def gpu_masks(workers: int, device: str, environ: Mapping[str, str], visible: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each worker: the k-th GPU this process may use, i.e. the k-th entry of an
    existing CUDA_VISIBLE_DEVICES (not physical GPU k), else GPU k of the `visible` ones."""
    if device != "gpu":
        raise LwnasError(f"--workers {workers} takes --device gpu, not {device}: worker k gets the k-th visible GPU")
    mask = environ.get("CUDA_VISIBLE_DEVICES")
    listed = [d.strip() for d in mask.split(",") if d.strip()] if mask is not None else \
        [str(i) for i in range(visible)]
    if workers > len(listed):
        where = f"CUDA_VISIBLE_DEVICES={mask}" if mask is not None else "on this machine"
        raise LwnasError(f"--workers {workers} with --device gpu needs {workers} GPUs, {len(listed)} visible "
                         f"({where}); use --workers {len(listed) or 1} or --device cpu")
    return listed[:workers]


def worker_argv(argv: list[str], worker: int, baselines: tuple[str, ...], target: int) -> list[str]:
    """The worker's command line: the parent's, less PARENT_OPTIONS, with the study-wide target, its index (its
    sampler's seed derives from it) and, for worker 0, the baselines."""
    child, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token in PARENT_OPTIONS:
            skip = True
        elif not token.startswith(tuple(f"{option}=" for option in PARENT_OPTIONS)):
            child.append(token)
    if worker == 0:
        for name in baselines:
            child += ["--baseline", name]
    return [*child, "--until-total", str(target), "--worker-index", str(worker)]


def run_workers(search, argv: list[str], workers: int, until_total: int | None):
    """Start `workers` copies of this search on its storage; they share one study-wide target of trained
    trials. Returns when all have ended; a failed worker is an error (the study keeps its finished trials)."""
    from ..train.devices import check_device, visible_gpus

    device = search.settings.device
    masks = None
    if device != "cpu":
        import paddle

        visible = visible_gpus()
        check_device(device, paddle.device.is_compiled_with_cuda(), visible)
        masks = gpu_masks(workers, device, os.environ, visible)
    search.load_data()  # here, before any worker starts: a budget or baseline that cannot work fails once
    study = search.open_study()
    target = until_total or search.trained(study) + search.settings.trials
    processes = []
    for k in range(workers):
        env = dict(os.environ)
        if masks is not None:
            env["CUDA_VISIBLE_DEVICES"] = masks[k]
        command = [sys.executable, "-m", "lwnas.cli", *worker_argv(argv, k, tuple(search.baselines), target)]
        processes.append(subprocess.Popen(command, env=env))
    print(f"started {workers} workers on study {search.name} (target {target} trained trials"
          + (f"; GPUs {','.join(masks)}" if masks else "") + ")", flush=True)
    codes = [p.wait() for p in processes]
    if any(codes):
        raise LwnasError(f"worker exit codes {codes}; the study keeps every finished trial, run again to resume")
    compare_with_baselines(search, study)
