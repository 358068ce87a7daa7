"""Where studies live: Optuna's RDB storage (SQLite under runs/ by default, PostgreSQL for many machines),
study names that are safe as folder names, URLs with their passwords hidden, opening with retries, and
failing the trials of workers that died."""
from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

from ..errors import LwnasError

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_study_name(name: str) -> str:
    """Study names become folder names under runs/: letters, digits, '_', '-', '.' only, no leading dot."""
    if not STUDY_NAME.match(name):
        raise LwnasError(f"invalid study name {name!r}: use letters, digits, '_', '-' or '.', starting with a "
                         f"letter or digit (it becomes a folder under runs/)")
    return name


def storage_url(storage: str | None, runs_dir: str) -> str:
    """The --storage URL, else SQLite in the runs folder (which must be writable)."""
    if storage:
        return storage
    runs = Path(runs_dir)
    try:
        runs.mkdir(parents=True, exist_ok=True)
        probe = runs / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise LwnasError(f"runs folder {runs} is not writable ({err.strerror}); pass --runs-dir or --storage")
    return f"sqlite:///{runs / 'lwnas.db'}"


def open_storage(url: str, grace: int = 60, attempts: int = 8):
    """Optuna RDB storage with heartbeats (a dead worker's RUNNING trial is failed and retried).

    Workers started together on a fresh database race to create its tables; the losers' errors ("table
    already exists", a duplicate schema-version row) are retried, since the winner's tables are then there."""
    import optuna
    import sqlalchemy
    import sqlalchemy.exc

    from .claims import lost_creation_race

    kwargs = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():  # Optuna marks heartbeats experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=max(1, grace // 4), grace_period=grace,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
            if url.startswith("sqlite"):  # WAL (persistent in the file): readers do not block the writing worker
                sqlalchemy.event.listen(storage.engine, "connect", _write_ahead_log)
                storage.engine.dispose()
            return storage
        except sqlalchemy.exc.SQLAlchemyError as err:
            if attempt < attempts and lost_creation_race(err):
                time.sleep(0.2 * attempt)
                continue
            raise LwnasError(f"cannot open storage {redact(url)}: {_first_line(err)}") from None
        except (ValueError, ImportError) as err:
            raise LwnasError(f"cannot open storage {redact(url)}: {_first_line(err)}") from None


def _write_ahead_log(connection, _record, wait: float = 60.0):
    """Switch a SQLite file to WAL unless it is already. The switch needs the file to itself, and SQLite answers
    "database is locked" at once, without waiting, when another worker holds it (creating the tables, or
    switching too); retried until `wait` seconds have passed, as the connection's own timeout would."""
    import sqlite3

    deadline = time.monotonic() + wait
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def fail_stale(study):
    """Mark trials of dead workers (no heartbeat within the grace period) failed; Optuna calls this experimental."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def load_study(name: str, storage: str | None, runs_dir: str):
    """An existing study by name from --storage or the runs folder's SQLite file; a clear error if absent."""
    import optuna

    check_study_name(name)
    url = storage_url(storage, runs_dir)
    opened = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=opened)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)]
        raise LwnasError(f"no study {name!r} in {redact(url)}; known: {', '.join(known) or 'none'}") from None


def redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def is_trained(trial) -> bool:
    """A completed trial that trained its architecture (studies of older lwnas versions completed repeats too)."""
    import optuna

    return trial.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in trial.user_attrs


def ran_training(trial) -> bool:
    """The trial trained its network: to the end (is_trained), or until the pruner or the compute budget stopped
    it (PRUNED with a `pruned` reason; drafts rejected before training are PRUNED without one)."""
    import optuna

    return is_trained(trial) or (trial.state == optuna.trial.TrialState.PRUNED and "pruned" in trial.user_attrs)


def trained_trials(study) -> list:
    """Completed trials that trained their architecture, from every worker."""
    import optuna

    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if is_trained(t)]
