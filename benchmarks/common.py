"""What the benchmark scripts share: where the real data and results live, and the one results-file protocol
(a JSON document read and written under a file lock, written atomically, with jobs claimed by live processes)."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FASHION = ROOT.parent / "shared" / "data" / "fashion_mnist" / "fashion-mnist-python.tar.gz"
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs"


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
