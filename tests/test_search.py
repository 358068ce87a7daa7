"""`lwnas search` end to end on the built-in data set, with the real trainer, latency and SQLite:
budget respected, results stored, kill -9 and resume, duplicate architectures, failing trials."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import optuna
import pytest
from conftest import checkpoint_top1

from lwnas.errors import LwnasError
from lwnas.search.settings import SearchSettings
from lwnas.search.slots import claim_architecture
from lwnas.search.storage import trained_trials
from lwnas.search.study import Search
from lwnas.search.trial_latency import auto_latency_engine
from lwnas.train.settings import TrainConfig

FAST = ["--epochs", "1", "--train-subset", "160", "--val-subset", "80", "--latency-runs", "3",
        "--heartbeat-grace", "8"]


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lwnas.cli", *args], capture_output=True, text=True, cwd=cwd)


def trials(runs_dir, study):
    storage = f"sqlite:///{runs_dir}/lwnas.db"
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def completed(runs_dir, study):
    return [t for t in trials(runs_dir, study) if t.state == optuna.trial.TrialState.COMPLETE]


def test_search_stays_under_budget_and_stores_everything(tmp_path):
    result = run("search", "--flops-budget", "12M", "--trials", "2", "--seed", "0", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "micro-12M-synthetic-acc" in result.stdout and "top-1" in result.stdout
    done = completed(tmp_path / "runs", "micro-12M-synthetic-acc")
    assert len(done) == 2
    for t in done:
        assert t.user_attrs["madds"] <= 12_000_000
        assert {"arch_hash", "spec", "params", "top1", "latency_ms", "history", "train_seconds"} <= set(t.user_attrs)
        assert t.values[0] == pytest.approx(checkpoint_top1(tmp_path / t.user_attrs["checkpoint"]), abs=1e-9)
        folder = tmp_path / "runs" / "micro-12M-synthetic-acc" / f"trial_{t.number:04d}"
        assert json.loads((folder / "metrics.json").read_text())["arch_hash"] == t.user_attrs["arch_hash"]

    shown = run("runs", "show", "micro-12M-synthetic-acc", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert len(report["best"]) == 2 and report["best"][0]["top1"] >= report["best"][1]["top1"]
    assert all(os.path.exists(tmp_path / p) for p in report["spec_files"])
    blocks = report["block_types"]  # per block type: trials using it, best top-1 among them, best first
    assert blocks[0]["best_top1"] == max(t.values[0] for t in done) and all(1 <= b["trials"] <= 2 for b in blocks)
    assert [b["best_top1"] for b in blocks] == sorted((b["best_top1"] for b in blocks), reverse=True)
    use = report["budget_use"]  # MAdds/budget of all trained networks and of the best quarter (here: the best one)
    best = max(done, key=lambda t: t.values[0])
    assert sorted(use["all"]) == sorted(round(t.user_attrs["madds"] / 12e6, 3) for t in done)
    assert use["best"] == [round(best.user_attrs["madds"] / 12e6, 3)]
    assert report["trials_stored"] == len(trials(tmp_path / "runs", "micro-12M-synthetic-acc")) >= len(done)
    assert sorted(os.path.basename(p) for p in report["optuna_plots"]) == ["history.html", "importances.html"]
    assert all("plotly" in (tmp_path / p).read_text() for p in report["optuna_plots"])
    plain = subprocess.run([sys.executable, "-c", "import sys; sys.modules['plotly'] = None; from lwnas.cli import "
                            "main; sys.exit(main(['runs', 'show', 'micro-12M-synthetic-acc', '--json']))"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert plain.returncode == 0 and json.loads(plain.stdout)["optuna_plots"] == []  # the table is enough
    assert json.loads(plain.stdout)["plot"] is None
    stale = tmp_path / "runs" / "micro-12M-synthetic-acc" / "front" / "trial_9999_000000000000.yaml"
    stale.write_text("left by an earlier call")
    again = json.loads(run("runs", "show", "micro-12M-synthetic-acc", "--json", cwd=tmp_path).stdout)
    assert not stale.exists() and sorted(again["spec_files"]) == sorted(report["spec_files"])
    front = (tmp_path / report["plot"]).read_text()
    assert "Plotly.newPlot" in front and all(f"trial {t.number}" in front for t in done)
    listed = run("runs", "--json", cwd=tmp_path)
    assert json.loads(listed.stdout)[0]["completed"] == 2
    import sqlite3

    with sqlite3.connect(tmp_path / "runs" / "lwnas.db") as db:  # two local workers must not lock each other out
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_killed_search_resumes_with_finished_trials_intact(tmp_path):
    args = [sys.executable, "-m", "lwnas.cli", "search", "--flops-budget", "12M", "--trials", "40", "--seed", "0",
            "--study", "resume", *FAST]  # more trials than the seconds before the kill can finish
    worker = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Watch the artifacts, not the database: opening the storage from here while the worker creates
    # its tables would race the worker's schema creation.
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs" / "resume").glob("trial_*/metrics.json")):
        assert worker.poll() is None, "the search exited before finishing a trial"
        time.sleep(0.5)
    time.sleep(3)  # the trial's result is committed right after its artifacts are written
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = {t.number: (t.values, t.user_attrs) for t in completed(tmp_path / "runs", "resume")}
    assert 1 <= len(before) < 40

    result = run(*args[3:-len(FAST) - 6], "--trials", "1", "--seed", "0", "--study", "resume", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{len(before)} completed trial(s) so far" in result.stdout
    after = {t.number: (t.values, t.user_attrs) for t in completed(tmp_path / "runs", "resume")}
    for number, record in before.items():
        assert after[number] == record
    trained_after = [n for n, (_, attrs) in after.items() if "duplicate_of" not in attrs]
    assert len(trained_after) >= len([n for n, (_, a) in before.items() if "duplicate_of" not in a]) + 1


def test_ctrl_c_fails_the_trial_cleanly_and_the_printed_command_finishes_the_search(tmp_path):
    """SIGINT in the second of two trials: exit 130, one line with the command that resumes (from this folder,
    asking for the one trial still owed, not two more), no traceback; that command then trains the interrupted
    trial's architecture first, continuing from its checkpoint."""
    args = ["search", "--flops-budget", "12M", "--trials", "2", "--seed", "0", "--study", "ctrl-c", *FAST,
            "--epochs", "3", "--train-subset", "640", "--pruner", "none"]  # epochs of a second or two
    # As a terminal's Ctrl-C: SIGINT handled by default, even where this test runs as a background job (whose
    # children inherit SIGINT ignored, and Python then installs no KeyboardInterrupt handler).
    worker = subprocess.Popen([sys.executable, "-m", "lwnas.cli", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    for line in worker.stdout:  # the first epoch of the second trial is done: that trial is in its second
        if line.startswith("[2/2]") and "epoch 1/3" in line or time.time() > deadline:
            break
    worker.send_signal(signal.SIGINT)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 130, err
    assert "Traceback" not in err + out and "parameters" not in err
    ours = [line for line in err.splitlines() if line.startswith("lwnas:")]
    owed = [a if a != "2" else "1" for a in args]  # --trials 2 -> 1: one trial finished before Ctrl-C
    assert ours == [f"lwnas: interrupted; the study keeps every finished trial, and this resumes it: "
                    f"cd {tmp_path} && lwnas {' '.join(owed)}"]
    interrupted = [t for t in trials(tmp_path / "runs", "ctrl-c") if t.state == optuna.trial.TrialState.FAIL]
    assert len(interrupted) == 1 and "interrupted" in interrupted[0].user_attrs["error"]
    refused = run("train", "--arch", f"ctrl-c:{interrupted[0].number}", cwd=tmp_path)
    assert refused.returncode == 2 and f"trial {interrupted[0].number} is failed, not trained" in refused.stderr

    resumed = run(*owed, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing {interrupted[0].user_attrs['arch_hash']} after epoch 1" in resumed.stdout
    done = completed(tmp_path / "runs", "ctrl-c")
    retried = [t for t in done if t.user_attrs.get("retry_of") == interrupted[0].number]
    assert len(done) == 2 and len(retried) == 1
    assert retried[0].user_attrs["arch_hash"] == interrupted[0].user_attrs["arch_hash"]


def _settings(tmp_path, space, **proxy):
    config = TrainConfig(**{"epochs": 1, "batch_size": 32, "train_subset": 64, "val_subset": 32, **proxy})
    return SearchSettings(space=str(space), budget=50_000_000, trials=2, runs_dir=str(tmp_path / "runs"),
                          study="t", latency_runs=2, proxy=config)


ONE_POINT = """
name: one
resolution: 32
stem: [{name: stem, stride: 2, blocks: [{type: conv_bn_act, out: 8, kernel: 3}]}]
stages: [{name: s, depth: 1, stride: 2, blocks: [{type: inverted_residual, out: 16, expand: 32}]}]
head: [{type: classifier}]
"""


def test_an_architecture_is_never_trained_twice(tmp_path):
    space = tmp_path / "one.yaml"
    space.write_text(ONE_POINT)
    search = Search(_settings(tmp_path, space))
    study = search.run()  # asked for 2, the space holds 1: it stops after 50 repeats in a row, not 1,000 draws
    assert search.stats["trained"] == 1 and search.stats["duplicates"] == 50
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 1 and "duplicate_of" not in done[0].user_attrs  # the samplers see the network once
    repeats = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(repeats) == search.stats["duplicates"]
    assert all(t.state == optuna.trial.TrialState.FAIL and t.user_attrs["duplicate_of"] == done[0].number and
               t.user_attrs["arch_hash"] == done[0].user_attrs["arch_hash"] and not t.intermediate_values
               for t in repeats)
    from lwnas.search.results import resolve_arch

    again = resolve_arch(f"t:{repeats[0].number}", runs_dir=str(tmp_path / "runs"))  # a repeat names its original
    assert again.arch_hash == done[0].user_attrs["arch_hash"]
    assert len(list((tmp_path / "runs" / "t").glob("trial_*"))) == 1


def test_a_diverging_trial_fails_and_the_search_goes_on(tmp_path):
    space = tmp_path / "one.yaml"
    space.write_text(ONE_POINT)
    search = Search(_settings(tmp_path, space, lr=1e12, grad_clip=0, warmup_epochs=0, batch_size=8))
    study = search.run()  # returns normally
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == search.stats["failed"] >= 3
    assert all("loss became" in t.user_attrs["error"] for t in failed)


def test_resuming_with_other_settings_is_refused(tmp_path):
    """The refusal names every differing setting with its stored and asked value."""
    space = tmp_path / "one.yaml"
    space.write_text(ONE_POINT)
    Search(_settings(tmp_path, space)).open_study()
    changed = _settings(tmp_path, space)
    changed.budget = 20_000_000
    with pytest.raises(LwnasError, match=r"created with other settings \(budget: 50000000 -> 20000000\); resume"):
        Search(changed).open_study()
    study = Search(_settings(tmp_path, space)).open_study()  # a study made before a proxy setting existed
    older = study.user_attrs["settings"]
    study.set_user_attr("settings", {**older, "proxy": {k: v for k, v in older["proxy"].items() if k != "crop_scale"}})
    Search(_settings(tmp_path, space)).open_study()  # resumes: the new setting is at its default
    with pytest.raises(LwnasError, match=r"\(proxy.crop_scale: 0.25 -> 0.5\)"):  # but not with another value of it
        Search(_settings(tmp_path, space, crop_scale=0.5)).open_study()
    for field, value in (("device", "gpu"), ("shrink", True), ("sampler", "tpe"),
                         ("latency_engine", "inference"), ("latency_threads", 2), ("pruner", "median")):
        other = _settings(tmp_path, space)
        setattr(other, field, value)
        with pytest.raises(LwnasError, match=rf"created with other settings \((.*; )?{field}: \S+ -> {value}(;|\))"):
            Search(other).open_study()
    with pytest.raises(LwnasError, match=r"\(proxy.amp: False -> True\)"):  # fp16 and fp32 accuracies never mix
        Search(_settings(tmp_path, space, amp=True)).open_study()
    with pytest.raises(LwnasError, match=r"\(proxy.val_split: 0.1 -> 0.2\)"):  # nor validation splits
        Search(_settings(tmp_path, space, val_split=0.2)).open_study()
    space.write_text(ONE_POINT.replace("out: 16", "out: 24"))  # the same file name, another space
    with pytest.raises(LwnasError, match=r"\(space_file_sha256: changed\)"):
        Search(_settings(tmp_path, space)).open_study()


def test_auto_times_as_deployed_where_that_is_cheap_beside_training_and_fixes_the_engine_in_the_identity(tmp_path):
    space = tmp_path / "one.yaml"
    space.write_text(ONE_POINT)
    study = Search(_settings(tmp_path, space)).open_study()  # 64 training images, 1 epoch: a quick look
    assert study.user_attrs["settings"]["latency_engine"] == "eager"
    Search(_settings(tmp_path, space)).open_study()  # auto again resolves alike: the study resumes
    assert auto_latency_engine("auto", 4_000, 10) == "inference"
    assert auto_latency_engine("auto", 3_999, 10) == "eager"
    assert auto_latency_engine("eager", 60_000, 15) == "eager"  # an engine the user names is kept
    larger = _settings(tmp_path, space, train_subset=None)
    larger.proxy = replace(larger.proxy, epochs=50)  # the synthetic set's ~1,000 training images x 50 epochs
    with pytest.raises(LwnasError, match=r"latency_engine: eager -> inference"):
        Search(larger).open_study()


def test_a_study_scored_on_the_test_split_by_an_older_lwnas_is_refused_not_misread(tmp_path):
    space = tmp_path / "one.yaml"
    space.write_text(ONE_POINT)
    study = Search(_settings(tmp_path, space)).open_study()
    stored = study.user_attrs["settings"]
    old_proxy = {k: v for k, v in stored["proxy"].items() if k not in ("val_split", "split_seed")}
    study.set_user_attr("settings", {**{k: v for k, v in stored.items() if k != "pruner"}, "encoding": 3,
                                     "proxy": old_proxy})
    with pytest.raises(LwnasError, match=r"encoding: 3 -> 4; .*pruner: unset -> sha; .*its trials were scored on "
                                         r"the test split, which lwnas no longer selects on\); resume it with the"):
        Search(_settings(tmp_path, space)).open_study()


@pytest.mark.parametrize("args, message", [
    (["--flops-budget", "1M"], "below the smallest network of space 'micro'"),
    (["--flops-budget", "12X"], "invalid --flops-budget '12X'"),
    (["--flops-budget=-5M"], "invalid --flops-budget '-5M'"),
    (["--flops-budget", "-5M"], "invalid --flops-budget '-5M': expected a positive number"),
    (["--flops-budget", "0"], "invalid --flops-budget"),
    (["--flops-budget", ""], "invalid --flops-budget"),
    (["--flops-budget", "12M", "--space", "mikro"], "unknown search space 'mikro'; did you mean micro"),
    (["--flops-budget", "12M", "--study", "../escape"], "invalid study name '../escape'"),
    (["--flops-budget", "12M", "--data", "/no/such/data"], "data set not found: /no/such/data"),
    (["--flops-budget", "12M", "--storage", "postgresql+psycopg2://u:secret@127.0.0.1:1/x"], "cannot open storage"),
    (["--flops-budget", "12M", "--baseline", "micronet_m9"], "unknown config 'micronet_m9'; did you mean"),
    (["--flops-budget", "12M", "--baseline", "micronet_m3"], "baseline micronet_m3 has 19.79M MAdds at 224px, over"),
])
def test_bad_search_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run("search", *args, *FAST, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "secret" not in result.stderr
    assert not (tmp_path / "runs" / "lwnas.db").exists()  # no study was created


def test_baselines_are_trained_once_with_the_same_proxy_and_compared(tmp_path):
    import lwnas

    args = ["search", "--flops-budget", "12M", "--trials", "1", "--baseline", "micronet_m0", "--study", "b", *FAST]
    first = run(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "[baseline] micronet_m0" in first.stdout and "baseline micronet_m0: top-1" in first.stdout
    storage = f"sqlite:///{tmp_path}/runs/lwnas.db"
    recorded = optuna.load_study(study_name="b", storage=storage).user_attrs["baselines"]["micronet_m0"]
    expected = lwnas.count(lwnas.get_config("micronet_m0").replace(num_classes=10), 224)  # the synthetic set's 10
    assert (recorded["madds"], recorded["params"]) == (expected.macs, expected.params)
    assert 0 <= recorded["top1"] <= 100 and len(recorded["history"]) == 1 and recorded["latency_ms"] > 0
    metrics = json.loads((tmp_path / "runs" / "b" / "baseline_micronet_m0" / "metrics.json").read_text())
    assert metrics["top1"] == recorded["top1"]
    assert len(completed(tmp_path / "runs", "b")) == 1  # the baseline is not a trial: the sampler never sees it

    again = run(*args, cwd=tmp_path)  # resumed: the recorded baseline is not trained again
    assert again.returncode == 0, again.stderr
    assert "[baseline]" not in again.stdout and "baseline micronet_m0: top-1" in again.stdout
    assert optuna.load_study(study_name="b", storage=storage).user_attrs["baselines"]["micronet_m0"] == recorded
    shown = json.loads(run("runs", "show", "b", "--json", cwd=tmp_path).stdout)
    assert [b["baseline"] for b in shown["baselines"]] == ["micronet_m0"]
    assert "micronet_m0" in (tmp_path / shown["plot"]).read_text()


def test_seeded_searches_repeat(tmp_path):
    outcomes = []
    for study in ("first", "second"):
        result = run("search", "--flops-budget", "12M", "--trials", "2", "--seed", "2", "--study", study, *FAST,
                     cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outcomes.append([(t.user_attrs["arch_hash"], t.values[0]) for t in completed(tmp_path / "runs", study)])
    assert outcomes[0] == outcomes[1] and len(outcomes[0]) == 2


def test_workers_get_the_kth_visible_gpu_and_never_more_workers_than_gpus():
    from lwnas.search.workers import gpu_masks

    assert gpu_masks(2, "gpu", {"CUDA_VISIBLE_DEVICES": "3,5,6"}, visible=3) == ["3", "5"]  # not physical 0 and 1
    assert gpu_masks(3, "gpu", {}, visible=4) == ["0", "1", "2"]
    with pytest.raises(LwnasError, match=r"--workers 3 with --device gpu needs 3 GPUs, 2 visible \(CUDA_VISIBLE_DEVICES=4,7\)"):
        gpu_masks(3, "gpu", {"CUDA_VISIBLE_DEVICES": "4,7"}, visible=2)
    with pytest.raises(LwnasError, match="takes --device gpu, not gpu:1"):
        gpu_masks(2, "gpu:1", {}, visible=2)


def test_worker_command_lines_drop_the_parents_options_and_give_baselines_to_worker_0():
    from lwnas.search.workers import worker_argv

    argv = ["search", "--flops-budget", "12M", "--workers", "3", "--baseline", "micronet_m0", "--baseline=micronet_m1",
            "--workers=3", "--seed", "1"]
    assert worker_argv(argv, 1, ("micronet_m0", "micronet_m1"), 9) == \
        ["search", "--flops-budget", "12M", "--seed", "1", "--until-total", "9", "--worker-index", "1"]
    assert worker_argv(argv, 0, ("micronet_m0", "micronet_m1"), 9) == \
        ["search", "--flops-budget", "12M", "--seed", "1", "--baseline", "micronet_m0", "--baseline", "micronet_m1",
         "--until-total", "9", "--worker-index", "0"]


def test_eta_is_known_during_the_first_trial_and_from_the_study_when_resuming():
    import io

    from lwnas.search.progress import Progress

    fresh = Progress(3, stream=io.StringIO())
    fresh.begin(0, "abc", 1_000_000)
    fresh.trial_start -= 10  # 10 s into the first trial, half of it done: 20 s a trial, 50 s left in all
    fresh.epoch(1, 2, 50.0, 1.0)
    assert "ETA 00:50" in fresh.stream.getvalue()
    resumed = Progress(2, stream=io.StringIO())
    resumed.trial_times = [30.0, 30.0]  # what the study's earlier trials took
    resumed.begin(5, "def", 1_000_000)
    resumed.trial_start -= 10  # 2 trials of 30 s, 10 s into the first: 50 s left
    resumed.epoch(1, 3, 50.0, 1.0)
    assert "ETA 00:50" in resumed.stream.getvalue()


def test_workers_sample_with_distinct_seeds():
    from lwnas.search.samplers import make_sampler, sampler_seed

    seeds = [sampler_seed(0, k) for k in range(4)]
    assert seeds[0] == 0 and len(set(seeds)) == 4 and sampler_seed(0, 2) == seeds[2]  # distinct and repeatable
    draws = []
    for worker in range(3):
        study = optuna.create_study(sampler=make_sampler(SearchSettings(sampler="random", worker=worker)))
        draws.append(study.ask().suggest_int("width", 0, 10**9))
    assert len(set(draws)) == 3


def test_random_search_draws_feasible_networks_in_memory_from_the_same_distribution():
    """One stored trial per network, its parameters naming it, rejections counted but never stored; and the
    networks are distributed as Optuna's RandomSampler with rejection would draw them (mean MAdds, fixed seeds)."""
    import numpy as np

    from lwnas.search.samplers import make_sampler
    from lwnas.search.space_files import get_space

    space, budget = get_space("micro"), 24_000_000
    sampler = make_sampler(SearchSettings(sampler="random", budget=budget, seed=0), space, 10)
    study = optuna.create_study(sampler=sampler)
    drawn = []
    for _ in range(120):
        trial = study.ask()
        sample = space.sample(trial, budget, num_classes=10)
        assert sample.spec is not None and sample.macs <= budget and not sample.shrunk
        assert space.spec_from_params(trial.params, 10).arch_hash == sample.spec.arch_hash
        study.tell(trial, 0.0)
        drawn.append(sample.macs)
    assert len(study.trials) == 120 and sampler.rejected > 60  # about two over-budget draws per network here
    rejecting = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kept = []
    while len(kept) < 120:
        trial = rejecting.ask()
        sample = space.sample(trial, budget, num_classes=10)
        if sample.spec is not None and sample.macs <= budget:
            kept.append(sample.macs)
        rejecting.tell(trial, 0.0)
    standard_error = np.sqrt(np.var(drawn) / len(drawn) + np.var(kept) / len(kept))
    assert abs(np.mean(drawn) - np.mean(kept)) < 3 * standard_error


def _pruned_study(settings, histories, directions=("maximize",)):
    """A study with the search's own pruner and finished trials of the given top-1 histories ({epoch: top1})."""
    from lwnas.search.pruning import make_pruner

    study = optuna.create_study(directions=list(directions), pruner=make_pruner(settings))
    for history in histories:
        trial = study.ask()
        for epoch, top1 in history.items():
            if len(directions) == 1:
                trial.report(top1, epoch)
                trial.should_prune()  # successive halving records the rung values as it decides
            trial.set_user_attr("history", [{"epoch": e, "top1": v} for e, v in history.items() if e <= epoch])
        last = history[max(history)]
        study.tell(trial, last if len(directions) == 1 else [last, 5.0])
    return study


def test_the_last_epoch_is_never_pruned():
    """Successive halving (the default pruner) stops a weak trial at its first rung, but never after the last
    epoch: the network is trained by then."""
    from lwnas.search.pruning import prune_now

    settings = SearchSettings(min_epochs=1, proxy=TrainConfig(epochs=2))
    study = _pruned_study(settings, [{1: 90.0, 2: 95.0}] * 3)
    weak = study.ask()
    weak.report(10.0, 1)
    assert prune_now(weak, 1, 10.0, settings)
    weak.report(12.0, 2)
    assert not prune_now(weak, 2, 12.0, settings)


@pytest.mark.parametrize("objectives", [1, 2])
def test_successive_halving_keeps_the_best_third_at_each_rung(objectives):
    """Rungs at 2 and 6 of 15 epochs (min 2, factor 3): at a rung a trial goes on only if its top-1 is within the
    best third of all trials at that rung, itself included; between rungs it is never stopped. With two objectives
    the same rule applies to top-1."""
    from lwnas.search.pruning import prune_now, rungs

    settings = SearchSettings(objective="accuracy" if objectives == 1 else "accuracy-latency",
                              proxy=TrainConfig(epochs=15))
    assert rungs(settings) == [2, 6]
    earlier = [{2: 50.0 + i, 6: 70.0 + i} for i in range(5)]  # top-1 at epoch 2: 50..54, at 6: 70..74
    study = _pruned_study(settings, earlier, ("maximize",) if objectives == 1 else ("maximize", "minimize"))

    def verdict(history):
        trial = study.ask()
        decisions = []
        for epoch, top1 in history.items():
            if objectives == 1:
                trial.report(top1, epoch)
            trial.set_user_attr("history", [{"epoch": e, "top1": v} for e, v in history.items() if e <= epoch])
            decisions.append(prune_now(trial, epoch, top1, settings))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return decisions

    # 6 trials at rung 2 (five earlier, this one): the best 6 // 3 = 2 go on, i.e. top-1 >= 53
    assert verdict({1: 10.0, 2: 52.5}) == [False, True]
    assert verdict({1: 10.0, 2: 60.0, 3: 1.0, 6: 80.0, 7: 1.0}) == [False, False, False, False, False]
    assert verdict({2: 59.0, 6: 71.0}) == [False, True]  # passed rung 2, not rung 6 (best 2 of 7: >= 74)


def test_a_study_created_again_under_the_same_name_does_not_trip_over_old_claims(tmp_path):
    space = tmp_path / "one.yaml"
    space.write_text(ONE_POINT)
    search = Search(_settings(tmp_path, space))
    search.open_study()
    assert search.claims.claim("0123456789ab", 5) is None  # trial 5 of the study about to be deleted
    optuna.delete_study(study_name="t", storage=search.url)
    study = search.open_study()
    first, second = study.ask(), study.ask()
    for trial in (first, second):
        trial.set_user_attr("arch_hash", "0123456789ab")
    assert claim_architecture(search.claims, first, "0123456789ab") is None  # the old claim is taken over
    assert claim_architecture(search.claims, second, "0123456789ab").number == first.number  # and then holds as usual


def test_the_budget_floor_counts_with_the_datas_classes(tmp_path):
    """micro's smallest network is 2.07M MAdds with 10 classes and 2.71M with ImageNet's 1000: a 2.5M budget
    fits the built-in 10-class data, and a 2M one does not, with the class count in the message."""
    settings = SearchSettings(budget=2_500_000, runs_dir=str(tmp_path / "runs"),
                              proxy=TrainConfig(train_subset=64, val_subset=32))
    Search(settings).load_data()
    settings.budget = 2_000_000
    with pytest.raises(LwnasError, match=r"below the smallest network of space 'micro' \(2.07M MAdds at 224px "
                                         r"with 10 classes\)"):
        Search(settings).load_data()


def test_nsga2_generations_fit_the_number_of_trials():
    from lwnas.search.samplers import make_sampler

    for trials, population in ((6, 6), (50, 8)):
        settings = SearchSettings(objective="accuracy-latency", sampler="nsga2", trials=trials)
        assert make_sampler(settings)._population_size == population
    assert isinstance(make_sampler(SearchSettings(objective="accuracy-latency", sampler="tpe")),
                      optuna.samplers.TPESampler)


def test_two_objective_search_end_to_end(tmp_path):
    """accuracy-latency: the study's Pareto front is exactly the trained trials that no other trained trial
    dominates, and each trial's objectives are the network's stored top-1 (evaluated afresh from its checkpoint)
    and its measured latency."""
    settings = SearchSettings(budget=12_000_000, trials=3, objective="accuracy-latency", study="two",
                              runs_dir=str(tmp_path / "runs"), latency_runs=2,
                              proxy=TrainConfig(epochs=1, batch_size=32, train_subset=64, val_subset=32))
    study = Search(settings).run()
    front = {t.number for t in study.best_trials if "duplicate_of" not in t.user_attrs}
    trained = trained_trials(study)
    assert len(trained) == 3 and front

    def dominates(a, b):
        return a.values[0] >= b.values[0] and a.values[1] <= b.values[1] and a.values != b.values

    assert front == {t.number for t in trained if not any(dominates(o, t) for o in trained)}
    for t in trained:
        assert t.values[0] == pytest.approx(checkpoint_top1(tmp_path / "runs" / "two" /
                                                           f"arch_{t.user_attrs['arch_hash']}"), abs=1e-9)
        assert t.values[1] == t.user_attrs["latency_ms"] > 0


def test_a_dead_workers_training_slot_waits_for_its_retry(tmp_path):
    """Training slots are claimed in the database. A dead worker's slot goes to the retry Optuna queued for its
    trial, not to a later trial: that one steps aside so its worker runs the retry; a pruned or failed trial
    gives its slot back."""
    space = tmp_path / "one.yaml"
    space.write_text(ONE_POINT)
    search = Search(_settings(tmp_path, space))
    study = search.open_study()
    search.target = 2
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"training": True}))
    study.add_trial(optuna.create_trial(value=50.0, user_attrs={"arch_hash": "a"}))  # trained: one slot left
    assert search.claims.claim("#slot0", 0) is None and search.claims.claim("#slot1", 1) is None
    later = study.ask()  # trial 2, sampled after the dead worker's trial 0
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.WAITING, user_attrs={"training": True},
                                        system_attrs={"failed_trial": 0}))  # what a heartbeat retry looks like
    assert search.claims.claim("b", later.number) is None
    with pytest.raises(optuna.TrialPruned):
        search.slots.reserve(later, "b", search.target)
    assert later.user_attrs.get("stepped_aside")
    assert search.claims.claim("b", 99) is None  # its architecture claim was released
    retry = study.ask()  # the queued retry comes first
    assert retry.number == 3
    search.slots.reserve(retry, "c", search.target)  # takes over the dead trial's slot at once
    assert retry.user_attrs["training"] and search.claims.holders("#slot") == {"#slot0": 3, "#slot1": 1}
    search.slots.give_back(retry)  # e.g. pruned
    assert search.claims.holders("#slot") == {"#slot1": 1}
    other = study.ask()
    search.slots.reserve(other, "d", search.target)
    assert search.claims.holders("#slot") == {"#slot0": other.number, "#slot1": 1}


def test_two_objective_studies_prune_on_top1_by_the_median_rule():
    from lwnas.search.pruning import prune_now

    settings = SearchSettings(objective="accuracy-latency", pruner="median", proxy=TrainConfig(epochs=3))
    study = _pruned_study(settings, [{e: 80.0 + e for e in (1, 2, 3)}] * 3, ("maximize", "minimize"))
    weak = study.ask()
    assert not prune_now(weak, 1, 10.0, settings)  # epoch 1: too noisy to judge
    assert prune_now(weak, 2, 10.0, settings)
    assert not prune_now(weak, 2, 82.5, settings)  # above the median (82)
    assert not prune_now(weak, 3, 10.0, settings)  # the last epoch: trained by then


def test_prescreening_trains_the_best_scored_of_every_n_candidates(tmp_path):
    settings = SearchSettings(budget=12_000_000, trials=2, study="pre", runs_dir=str(tmp_path / "runs"),
                              latency_runs=2, prescreen=3, prescreen_score="params",
                              proxy=TrainConfig(epochs=1, batch_size=32, train_subset=64, val_subset=32))
    study = Search(settings).run()
    candidates = [t for t in study.get_trials() if "prescreen_score" in t.user_attrs]
    trained = trained_trials(study)
    assert len(candidates) == 6 and len(trained) == 2
    for group in (candidates[:3], candidates[3:]):
        best = max(group, key=lambda t: t.user_attrs["prescreen_score"])
        assert any(t.params == best.params for t in trained)  # trained by its own trial or the queued one
        assert all(t.state == optuna.trial.TrialState.PRUNED and "prescreened" in t.user_attrs
                   for t in group if t.params != best.params)
        assert best.user_attrs["prescreen_score"] == max(t.user_attrs["params"] for t in trained
                                                         if t.params == best.params)
