"""What the benchmark scripts share: where the real data and results live, the one results-file protocol (a JSON
document read and written under a file lock, written atomically, with jobs claimed by live processes), the
reference ranking's schedule, rank agreement, and the authors' PyTorch MicroNet built from a checkout of their
code."""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

from lwnas.train.settings import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
FASHION = ROOT.parent / "shared" / "data" / "fashion_mnist" / "fashion-mnist-python.tar.gz"
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs"
REFERENCE_FILE = RESULTS / "rank_reference_fashion.json"
# The reference ranking's schedule (rank_reference.py): 15 epochs on 12,000 training images (a fifth of the
# official 60,000, drawn by seed 0), evaluated on the official 10,000 test images.
REFERENCE = TrainConfig(epochs=15, batch_size=64, lr=0.1, warmup_epochs=0.5, resolution=32, train_subset=12_000,
                        seed=0, bn_recalibration=16)
# The 3-epoch proxy of search_quality.py, the unit supernet_ranking.py states its cost in.
PROXY = TrainConfig(epochs=3, train_subset=2000, val_subset=2000)


@contextlib.contextmanager
def locked(path: Path):
    """The results file's current content (None if there is none yet), for this process alone until the block
    ends (other processes wait)."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield json.loads(path.read_text()) if path.exists() else None


def write(path: Path, document: dict):
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=1))
    os.replace(temporary, path)  # a kill never leaves a half-written file


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def claim(path: Path, jobs: list[str], done: set[str]) -> str | None:
    """The first of `jobs` that is neither `done` nor claimed by another live process, now claimed by this one
    (claims live beside the results file: {job: pid}); None when nothing is left."""
    claims_path = path.with_name(path.stem + ".claims.json")
    with locked(path):
        claims = json.loads(claims_path.read_text()) if claims_path.exists() else {}
        live = {job: pid for job, pid in claims.items() if job not in done and alive(pid)}
        job = next((j for j in jobs if j not in done and j not in live), None)
        if job is not None:
            live[job] = os.getpid()
        write(claims_path, live)
    return job


# scripts/eval_micronet_m{0..3}.sh: net config, stem channels and groups, head width, dropout, Shift-Max init.
EVAL_SETTINGS = {
    "micronet_m0": ("msnx_dy6_exp4_4M_221", 4, (2, 2), 640, 0.05, (1.0, 1.0), (0.0, 0.0)),
    "micronet_m1": ("msnx_dy6_exp6_6M_221", 6, (3, 2), 960, 0.05, (1.0, 1.0), (0.0, 0.0)),
    "micronet_m2": ("msnx_dy9_exp6_12M_221", 8, (4, 2), 1024, 0.1, (1.0, 1.0), (0.0, 0.0)),
    "micronet_m3": ("msnx_dy12_exp6_20M_020", 12, (4, 3), 1024, 0.1, (1.0, 0.5), (0.0, 0.5)),
}


def official_modules(checkout: str):
    """The official `backbone.micronet` and `backbone.activation` modules of a checkout of
    github.com/liyunsheng13/micronet (needs PyTorch)."""
    import importlib
    import sys

    sys.path.insert(0, checkout)
    return SimpleNamespace(micronet=importlib.import_module("backbone.micronet"),
                           activation=importlib.import_module("backbone.activation"))


def official_model(modules, settings):
    """The official MicroNet of `settings` (an EVAL_SETTINGS row), in eval mode."""
    net, stem, groups, head, dropout, init_a, init_b = settings
    ns = SimpleNamespace
    cfg = ns(MODEL=ns(
        MICRONETS=ns(BLOCK="DYMicroBlock", NET_CONFIG=net, STEM_CH=stem, STEM_GROUPS=list(groups), STEM_DILATION=1,
                     STEM_MODE="spatialsepsf", OUT_CH=head, DEPTHSEP=True, POINTWISE="group", DROPOUT=dropout,
                     SHUFFLE=True),
        ACTIVATION=ns(MODULE="DYShiftMax", ACT_MAX=2.0, LINEARSE_BIAS=False, INIT_A_BLOCK3=[1.0, 0.0],
                      INIT_A=list(init_a), INIT_B=list(init_b), REDUCTION=8)))
    with contextlib.redirect_stdout(io.StringIO()):  # the official constructors print per layer
        return modules.micronet.MicroNet(cfg).eval()


def append(path: Path, key: str, entry: dict, fresh: dict) -> dict:
    """Append `entry` to the file's list `key` under the lock (re-read first: another process may have appended
    meanwhile); `fresh` is the document to start from when there is no file yet. Returns the new document."""
    with locked(path) as document:
        document = document or fresh
        document.setdefault(key, []).append(entry)
        write(path, document)
    return document


def fidelity(proxy: list[float], truth: list[float], top: int) -> dict:
    """Rank agreement of `proxy` with `truth` (higher is better for both): Kendall tau, Spearman rho (scipy),
    top-k overlap."""
    import numpy as np
    from scipy import stats

    tau = stats.kendalltau(proxy, truth).statistic
    rho = stats.spearmanr(proxy, truth).statistic
    best_by_proxy = set(np.argsort(proxy)[-top:])
    best = set(np.argsort(truth)[-top:])
    return {"kendall_tau": float(tau), "spearman_rho": float(rho), f"top{top}_overlap": len(best_by_proxy & best) / top}
