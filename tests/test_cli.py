"""The command line, run as a user runs it: a real subprocess, exit codes, one-line errors."""
import json
import subprocess
import sys

import lwnas


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lwnas.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_configs_json_lists_every_config_with_costs():
    result = run("configs", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == set(lwnas.config_names())
    assert len(rows) == 32
    assert rows["mobileone_s0"]["madds"] == lwnas.count("mobileone_s0").macs
    assert rows["micronet_m1"]["published_top1"] == 51.4


def test_configs_table():
    result = run("configs")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].split() == ["name", "family", "resolution", "madds", "params",
                                                     "published_top1"]


def test_count_file_and_resolution(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(lwnas.get_config("shufflenet_v2_x0_5").to_yaml())
    result = run("count", str(path), "--resolution", "160", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["madds"] == lwnas.count("shufflenet_v2_x0_5", 160).macs and data["resolution"] == 160


def test_show_prints_spec_and_per_layer_breakdown():
    result = run("show", "micronet_m0")
    assert result.returncode == 0
    assert "micro_block" in result.stdout and "stages[3].blocks[2]" in result.stdout
    data = json.loads(run("show", "micronet_m0", "--json").stdout)
    assert sum(layer["madds"] for layer in data["layers"]) == lwnas.count("micronet_m0").macs


def _assert_user_error(result, *fragments):
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_config(tmp_path):
    _assert_user_error(run("count", "mobileone_s9"), "unknown config 'mobileone_s9'", "did you mean")


def test_bad_spec_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nresolution: 32\nstem: []\nstages: [{blocks: [{type: nope}]}]\nhead: {type: classifier}\n")
    _assert_user_error(run("show", str(path)), "bad.yaml: stages[0].blocks[0].type", "unknown block type")
    path.write_text("name: [unclosed\n")
    _assert_user_error(run("count", str(path)), "malformed YAML")
    _assert_user_error(run("count", str(tmp_path / "missing.yaml")), "cannot read spec file")


def test_bad_resolution():
    result = run("count", "micronet_m0", "--resolution", "-3")
    assert result.returncode == 2 and "positive integer" in result.stderr


def test_latency_command_reports_median_and_spread():
    result = run("latency", "shufflenet_v2_x0_5", "--resolution", "64", "--runs", "5", "--repeat", "2", "--json")
    assert result.returncode == 0, result.stderr
    measurements = json.loads(result.stdout)["measurements"]
    assert len(measurements) == 2
    assert all(m["median_ms"] > 0 and m["iqr_ms"] >= 0 and m["runs"] == 5 for m in measurements)
    bad = run("latency", "shufflenet_v2_x0_5", "--device", "tpu")
    assert bad.returncode == 2 and "unknown device 'tpu'" in bad.stderr


HOSTILE = "name: !!python/object/apply:os.system ['touch pwned']\nresolution: 224\n"


def _bad_inputs(tmp_path):
    (tmp_path / "hostile.yaml").write_text(HOSTILE)
    (tmp_path / "broken.yaml").write_text("proxy: [\n")
    (tmp_path / "typed.yaml").write_text("proxy: {lr: fast}\ntrain: {epochs: two}\n")
    (tmp_path / "a_file").write_text("")
    base = ["search", "--epochs", "1", "--train-subset", "64", "--val-subset", "32", "--latency-runs", "2"]
    return [
        (base + ["--flops-budget", "12X"], "invalid --flops-budget '12X'"),
        (base + ["--flops-budget=-5M"], "invalid --flops-budget"),
        (base + ["--flops-budget", "0"], "invalid --flops-budget"),
        (base + ["--flops-budget", ""], "invalid --flops-budget"),
        (base + ["--flops-budget", "12 M"], "invalid --flops-budget '12 M'"),
        (base + ["--flops-budget", "12M", "--space", "nano"], "unknown search space 'nano'"),
        (base + ["--flops-budget", "12M", "--space", "hostile.yaml"], "hostile.yaml"),
        (base + ["--flops-budget", "12M", "--proxy-config", "broken.yaml"], "broken.yaml: malformed YAML"),
        (base + ["--flops-budget", "12M", "--proxy-config", "typed.yaml"],
         "typed.yaml: lr: 'fast' is not valid; expected a number > 0"),
        (["train", "--arch", "micronet_m0", "--config", "typed.yaml"],
         "typed.yaml: epochs: 'two' is not valid; expected an integer >= 1"),
        (base + ["--flops-budget", "12M", "--data", "missing/"], "data set not found: missing/"),
        (base + ["--flops-budget", "12M", "--runs-dir", "a_file/runs"], "is not writable"),
        (base + ["--flops-budget", "12M", "--storage", "postgresql+psycopg2://u:pw@127.0.0.1:1/db"],
         "cannot open storage"),
        (base + ["--flops-budget", "12M", "--storage", "nosuchdb://x"], "cannot open storage"),
        (base + ["--flops-budget", "12M", "--study", "../../etc"], "invalid study name"),
        (base + ["--flops-budget", "20M"], "created with other settings"),  # same study name, other budget
        (base + ["--flops-budget", "12M", "--device", "gpu"], "no CUDA support"),  # this machine has no GPU
        (base + ["--flops-budget", "12M", "--device", "gpu:x"], "unknown device 'gpu:x'"),
        (base + ["--flops-budget", "12M", "--device", "gpu", "--workers", "2"], "no CUDA support"),
        (base + ["--flops-budget", "12M", "--work", "2"], "unrecognized arguments: --work 2"),
        (base + ["--flops-budget", "12M", "--amp-dtype", "fp8"], "invalid choice: 'fp8'"),
        (["train", "--arch", "micronet_m0", "--device", "gpu:3"], "no CUDA support"),
        (["count", "micronet_m9"], "unknown config 'micronet_m9'; did you mean"),
        (["count", "hostile.yaml"], "hostile.yaml"),
        (["runs", "show", "../x"], "invalid study name"),
        (["runs", "show", "nosuchstudy"], "no study 'nosuchstudy'"),
        (["train", "--arch", "nosuchstudy:3"], "no study 'nosuchstudy'"),
        (["train", "--arch", "keep:99"], "study 'keep': no trial 99; trained trials: "),
        (["eval", "--checkpoint", "nowhere.pdckpt"], "checkpoint not found"),
    ]


def test_bad_input_table_leaves_the_study_untouched(tmp_path):
    import optuna

    made = run("search", "--flops-budget", "12M", "--trials", "1", "--study", "keep", "--epochs", "1",
               "--train-subset", "64", "--val-subset", "32", "--latency-runs", "2", cwd=tmp_path)
    assert made.returncode == 0, made.stderr

    def snapshot():
        study = optuna.load_study(study_name="keep", storage=f"sqlite:///{tmp_path}/runs/lwnas.db")
        return [(t.number, t.state, t.values, t.user_attrs) for t in study.get_trials()]

    before = snapshot()
    for args, message in _bad_inputs(tmp_path):
        if args[0] == "search" and "--study" not in args:
            args = args + ["--study", "keep"]
        result = run(*args, cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr and "pw@" not in result.stderr
    assert snapshot() == before
    assert not (tmp_path / "pwned").exists()


def test_a_pipe_closed_early_ends_quietly():
    reader_gone = subprocess.Popen([sys.executable, "-m", "lwnas.cli", "configs", "--json"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    reader_gone.stdout.close()  # before lwnas writes anything, as `| head -0` would
    err = reader_gone.stderr.read()
    assert reader_gone.wait() == 141 and err == "", err


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"lwnas {lwnas.__version__}"
