"""The multi-fidelity search on a CIFAR-layout tarball: trials train on the final schedule and are stopped at rungs
or finished with a checkpoint, scored on a validation split held out of the training images (never the test
split), within a compute budget; a killed trial continues from its checkpoint."""
import io
import pickle
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import optuna
import paddle

from lwnas.search.settings import SearchSettings
from lwnas.search.study import Search
from lwnas.train import checkpoint
from lwnas.train.settings import TrainConfig

SCHEDULE = TrainConfig(epochs=3, batch_size=20, val_split=0.2)


def _tarball(path, test_labels=None):
    """A small CIFAR-10 layout: 5 x 20 training images, 20 test images; each class a brightness band."""
    rng = np.random.default_rng(0)

    def batch(labels):
        labels = np.asarray(labels)
        pixels = rng.integers(0, 40, (len(labels), 3072)) + 20 * labels[:, None]
        return {b"data": pixels.astype(np.uint8), b"labels": labels.tolist()}

    with tarfile.open(path, "w:gz") as tar:
        def add(name, obj):
            raw = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))

        add("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
        for i in range(1, 6):
            add(f"data_batch_{i}", batch(np.arange(20) % 10))
        test = batch(np.arange(20) % 10)
        if test_labels is not None:
            test[b"labels"] = list(test_labels)
        add("test_batch", test)
    return path


def _search(tmp_path, data, study="s", **options):
    settings = SearchSettings(budget=12_000_000, data=str(data), runs_dir=str(tmp_path / "runs"), study=study,
                              latency_runs=2, min_epochs=1, **{"trials": 4, "proxy": SCHEDULE, **options})
    return Search(settings).run()


def _finished(study):
    return [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]


def _stopped(study):
    return [t for t in study.get_trials(deepcopy=False) if "pruned" in t.user_attrs]


def test_scrambled_test_labels_change_no_choice_and_no_checkpoint(tmp_path):
    """Everything a search selects reads the validation split: with the test split's labels scrambled, the same
    trials are trained, stopped and scored alike, and the finished networks' best checkpoints are identical."""
    outcomes = []
    for name, labels in (("clean", None), ("scrambled", np.random.default_rng(1).permutation(np.arange(20) % 10))):
        folder = tmp_path / name
        folder.mkdir()
        data = _tarball(folder / "data.tar.gz", labels)
        study = _search(folder, data)
        rows = [(t.params, t.state, [h["top1"] for h in t.user_attrs.get("history", [])])
                for t in study.get_trials(deepcopy=False)]
        weights = {t.user_attrs["arch_hash"]: paddle.load(f"{t.user_attrs['checkpoint']}/{checkpoint.BEST}")["model"]
                   for t in _finished(study)}
        outcomes.append((rows, weights))
    (rows, weights), (rows_scrambled, weights_scrambled) = outcomes
    assert rows == rows_scrambled and len(weights) >= 1 and weights.keys() == weights_scrambled.keys()
    for arch, state in weights.items():
        for key, value in state.items():
            np.testing.assert_array_equal(value.numpy(), weights_scrambled[arch][key].numpy())


def test_trials_are_stopped_at_rungs_or_finished_with_a_checkpoint_within_the_compute_budget(tmp_path):
    data = _tarball(tmp_path / "data.tar.gz")
    study = _search(tmp_path, data, trials=None, max_epochs=12)
    finished, stopped = _finished(study), _stopped(study)
    assert finished and stopped
    for t in finished:  # the whole schedule, its checkpoint kept: a trained network
        assert [h["epoch"] for h in t.user_attrs["history"]] == [1, 2, 3]
        state = checkpoint.load(tmp_path / "runs" / "s" / f"arch_{t.user_attrs['arch_hash']}" / checkpoint.LAST)
        assert state["epoch"] == 3 and state["arch_hash"] == t.user_attrs["arch_hash"]
    rung_stops = [t for t in stopped if "successive halving" in t.user_attrs["pruned"]]
    assert rung_stops
    for t in stopped:  # at the rung at epoch 1 (min_epochs) or by the budget, checkpoints removed
        assert len(t.user_attrs["history"]) < 3
        assert not (tmp_path / "runs" / "s" / f"arch_{t.user_attrs['arch_hash']}").exists()
    for t in rung_stops:
        assert len(t.user_attrs["history"]) == 1
    spent = sum(len(t.user_attrs["history"]) for t in finished + stopped)
    assert 12 <= spent < 12 + 3  # the budget ends the study at the epoch it is reached
    trials_before = len(study.get_trials(deepcopy=False))
    again = _search(tmp_path, data, trials=None, max_epochs=12)  # the same command: the budget is spent
    assert len(again.get_trials(deepcopy=False)) == trials_before


def test_a_killed_trial_continues_from_its_last_checkpoint(tmp_path):
    """kill -9 after a trial's second epoch, in its third (or, on a fast machine, its fourth): the same command
    retries the trial, which continues from the killed run's last checkpoint (the history of those epochs is the
    killed run's) and finishes."""
    data = _tarball(tmp_path / "data.tar.gz")
    args = [sys.executable, "-m", "lwnas.cli", "search", "--flops-budget", "12M", "--trials", "1", "--data", str(data),
            "--epochs", "4", "--batch-size", "20", "--pruner", "none", "--latency-runs", "2", "--heartbeat-grace", "4",
            "--study", "k"]
    worker = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in worker.stdout:
        if "epoch 2/4" in line:
            break
    time.sleep(0.3)  # in epoch 3, or on a fast machine after it: the checkpoint on disk says which
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed = optuna.load_study(study_name="k", storage=f"sqlite:///{tmp_path}/runs/lwnas.db").trials[-1]
    state = checkpoint.load_latest(tmp_path / "runs" / "k" / f"arch_{killed.user_attrs['arch_hash']}")
    reached, early = state["epoch"], state["history"]
    assert 2 <= reached < 4
    time.sleep(5)  # past the heartbeat grace: the killed trial is dead
    resumed = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing {killed.user_attrs['arch_hash']} after epoch {reached}" in resumed.stdout
    study = optuna.load_study(study_name="k", storage=f"sqlite:///{tmp_path}/runs/lwnas.db")
    retry = [t for t in _finished(study) if t.user_attrs["arch_hash"] == killed.user_attrs["arch_hash"]]
    assert len(retry) == 1 and retry[0].number != killed.number
    history = retry[0].user_attrs["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and history[:reached] == early
    assert "epoch 1/4" not in resumed.stdout  # no epoch was trained twice


def test_the_time_limit_stops_a_trial_that_the_same_command_continues(tmp_path):
    """A trial still training at the time limit is stopped at the end of an epoch and queued; the same command
    then continues it from that epoch's checkpoint. The first trial is queued (a network under the budget), so the
    limit falls inside its training, however slow the machine."""
    from lwnas.search.space_files import get_space

    data = _tarball(tmp_path / "data.tar.gz")
    schedule = TrainConfig(epochs=60, batch_size=20, val_split=0.2)
    settings = SearchSettings(budget=12_000_000, data=str(data), runs_dir=str(tmp_path / "runs"), study="s",
                              latency_runs=2, trials=1, pruner="none", time_limit=3, proxy=schedule)
    search = Search(settings)
    search.load_data()
    first = get_space("micro").random_sample(np.random.default_rng(0), 10, settings.budget)
    search.open_study().enqueue_trial(first.params)
    study = search.run()
    cut = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.FAIL]
    assert len(cut) == 1 and "time limit" in cut[0].user_attrs["error"] and not _finished(study)
    assert cut[0].user_attrs["arch_hash"] == first.spec.replace(num_classes=10).arch_hash
    reached = len(cut[0].user_attrs["history"])
    assert 1 <= reached < 60
    study = _search(tmp_path, data, trials=1, pruner="none", proxy=schedule)
    (done,) = _finished(study)
    assert done.user_attrs["arch_hash"] == cut[0].user_attrs["arch_hash"] and done.user_attrs["retry_of"] == \
        cut[0].number
    assert len(done.user_attrs["history"]) == 60 and done.user_attrs["history"][:reached] == \
        cut[0].user_attrs["history"]
