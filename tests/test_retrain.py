"""Full training: kill -9 after epoch 1 and --resume reaches the same weights as an uninterrupted run;
corrupt checkpoints fall back or fail clearly; export round trip; eval and predict."""
import json
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml
from conftest import kill_after_first_checkpoint, tiny_spec
from PIL import Image

from lwnas.errors import LwnasError
from lwnas.train import checkpoint
from lwnas.train.checkpoint import load_trained

ARGS = ["--epochs", "3", "--train-subset", "640", "--val-subset", "64", "--batch-size", "16", "--seed", "1"]


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lwnas.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def arch(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(tiny_spec([
        {"type": "mobileone_block", "out": 32, "stride": 2, "branches": 2},
        {"type": "micro_block", "out": 32, "expand": [1, 2], "pw1_groups": [4, 4], "pw2_groups": [4, 4],
         "dy": [2, 2, 1]}])))
    return str(path)


def weights(folder):
    state = checkpoint.load(folder / checkpoint.LAST)
    return state["epoch"], {k: np.asarray(v) for k, v in state["model"].items()}


def _image_folder(root, images=640):
    """An ImageFolder tree of small images of varied sizes in four classes."""
    rng = np.random.default_rng(0)
    for split, count in (("train", images), ("val", 64)):
        for i in range(count):
            label = i % 4
            path = root / split / f"c{label}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(rng.normal(60 * label, 30, (30 + i % 7, 36 + i % 5, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path)
    return root


@pytest.mark.parametrize("source", ["synthetic", "streamed folder"])
def test_kill_and_resume_gives_the_uninterrupted_weights(tmp_path, arch, source):
    data = ["--data", "synthetic"] if source == "synthetic" else \
        ["--data", str(_image_folder(tmp_path / "images")), "--from-disk", "--resolution", "32"]
    straight = run("train", "--arch", arch, "--output", "straight", *ARGS, *data, cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr

    kill_after_first_checkpoint(["train", "--arch", arch, "--output", "killed", *ARGS, *data], tmp_path,
                                tmp_path / "killed")
    epoch, _ = weights(tmp_path / "killed")
    assert epoch < 3

    again = run("train", "--arch", arch, "--output", "killed", *ARGS, *data, cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr  # never overwrites a run silently
    resumed = run("train", "--arch", arch, "--output", "killed", "--resume", *ARGS, *data, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming killed after epoch {epoch}" in resumed.stdout
    final_epoch, a = weights(tmp_path / "straight")
    _, b = weights(tmp_path / "killed")
    assert final_epoch == 3
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    logged = [json.loads(line)["epoch"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3]  # rewritten from the checkpoint's history on resume: no gap, no repeat
    assert len((tmp_path / "killed" / "metrics.csv").read_text().splitlines()) == 4


@pytest.fixture
def trained(tmp_path, arch):
    result = run("train", "--arch", arch, "--output", "run", "--epochs", "2", "--train-subset", "128",
                 "--val-subset", "32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "run"


def test_corrupt_checkpoint_falls_back_then_fails_clearly(trained):
    last, previous = trained / checkpoint.LAST, trained / checkpoint.PREVIOUS
    last.write_bytes(last.read_bytes()[:100])
    warnings = []
    state = checkpoint.load_latest(trained, warn=warnings.append)
    assert state["epoch"] == 1 and "corrupt or truncated" in warnings[0]
    previous.write_bytes(b"garbage")
    with pytest.raises(LwnasError, match="no readable checkpoint"):
        checkpoint.load_latest(trained)
    result = run("eval", "--checkpoint", str(last), cwd=trained)
    assert result.returncode == 2 and "corrupt or truncated" in result.stderr


def test_checkpoint_alone_is_enough(trained):
    state = checkpoint.load(trained / checkpoint.BEST)
    assert {"spec", "arch_hash", "classes", "config"} <= set(state)
    result = run("eval", "--checkpoint", str(trained), "--json", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert 0 <= json.loads(result.stdout)["top1"] <= 100
    Image.new("RGB", (50, 40), (200, 30, 30)).save(trained / "x.png")
    result = run("predict", "--checkpoint", str(trained), str(trained / "x.png"), "--top-k", "3", "--json",
                 cwd=trained)
    assert result.returncode == 0, result.stderr
    top = json.loads(result.stdout)[0]["top"]
    assert len(top) == 3 and top[0]["class"].startswith("class") and top[0]["probability"] >= top[1]["probability"]
    missing = run("predict", "--checkpoint", str(trained), "nowhere.png", cwd=trained)
    assert missing.returncode == 2 and missing.stderr.strip() == "lwnas: error: nowhere.png: image file not found"


def test_export_round_trip(trained):
    result = run("export", "--checkpoint", str(trained), "--output", "exported", cwd=trained)
    assert result.returncode == 0, result.stderr
    model, _, spec = load_trained(trained)
    from lwnas.deploy.export import deployable

    x = paddle.randn([2, 3, spec.resolution, spec.resolution])
    expected = model(x).numpy()
    exported = paddle.jit.load(str(trained / "exported" / "model"))
    assert np.abs(exported(x).numpy() - expected).max() < 1e-4
    assert np.abs(deployable(model)(x).numpy() - expected).max() < 1e-4  # re-parameterized before export
    result = run("export", "--checkpoint", str(trained), "--output", "o", "--format", "onnx", cwd=trained)
    assert result.returncode == 0, result.stderr
    import onnxruntime

    session = onnxruntime.InferenceSession(str(trained / "o" / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(onnx_out - expected).max() < 1e-4
    assert json.loads((trained / "o" / "classes.json").read_text()) == json.loads(
        (trained / "exported" / "classes.json").read_text())


def test_two_process_data_parallel_training(tmp_path, arch):
    """paddle.distributed.launch with 2 CPU processes (gloo): one writer, one log line per epoch."""
    import shutil

    lwnas_bin = shutil.which("lwnas") or str(__import__("pathlib").Path(sys.executable).parent / "lwnas")
    result = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                             "--log_dir", "launch_logs", lwnas_bin, "train", "--arch", arch, "--output", "dp",
                             "--epochs", "2", "--train-subset", "128", "--val-subset", "32"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = (tmp_path / "dp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert checkpoint.load(tmp_path / "dp" / checkpoint.LAST)["epoch"] == 2


def test_resume_with_more_epochs_extends_a_finished_run(trained, arch):
    shorter = run("train", "--arch", arch, "--output", str(trained), "--resume", "--epochs", "1", cwd=trained)
    assert shorter.returncode == 2 and "has trained 2 epochs already" in shorter.stderr
    longer = run("train", "--arch", arch, "--output", str(trained), "--resume", "--epochs", "3", cwd=trained)
    assert longer.returncode == 0, longer.stderr
    assert "extending" in longer.stdout and "from 2 to 3 epochs" in longer.stdout
    assert checkpoint.load(trained / checkpoint.LAST)["epoch"] == 3
    assert [json.loads(line)["epoch"] for line in (trained / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads((trained / "config.json").read_text())["epochs"] == 3


def test_readme_deployment_example_gives_lwnas_predicts_probabilities(trained):
    """The docs' deploy.py (docs/training.md), run outside lwnas on both export formats, agrees with `lwnas predict`."""
    import re
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "training.md").read_text()
    script = re.search(r"```python\n(# deploy\.py\n.*?)```", page, re.S).group(1)
    (trained / "deploy.py").write_text(script)
    Image.new("RGB", (61, 45), (30, 200, 90)).save(trained / "x.png")
    predicted = run("predict", "--checkpoint", str(trained), str(trained / "x.png"), "--json", cwd=trained)
    assert predicted.returncode == 0, predicted.stderr
    expected = {t["class"]: t["probability"] for t in json.loads(predicted.stdout)[0]["top"]}
    for fmt in ("paddle", "onnx"):
        exported = run("export", "--checkpoint", str(trained), "--output", fmt, "--format", fmt, cwd=trained)
        assert exported.returncode == 0, exported.stderr
        pre = json.loads((trained / fmt / "preprocess.json").read_text())
        assert pre["resolution"] == 32 and pre["classes"] == json.loads((trained / "classes.json").read_text())
        deployed = subprocess.run([sys.executable, "deploy.py", fmt, "x.png"], cwd=trained, capture_output=True,
                                  text=True)
        assert deployed.returncode == 0, deployed.stderr
        assert len(deployed.stdout.strip().splitlines()) == 1 and "pass" not in deployed.stderr  # no Paddle logs
        got = json.loads(deployed.stdout)
        assert list(got) == list(expected)
        assert np.allclose(list(got.values()), list(expected.values()), atol=1e-5), (fmt, got, expected)


def test_onnx_export_without_paddle2onnx_says_how_to_install_it_and_writes_nothing(trained):
    code = ("import sys; sys.modules['paddle2onnx'] = None; from lwnas.cli import main; "
            "sys.exit(main(['export', '--checkpoint', '.', '--output', 'nope', '--format', 'onnx']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=trained, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "lwnas: error: ONNX export needs paddle2onnx: pip install paddle2onnx (from an lwnas checkout: "
        "pip install -e '.[onnx]')"]
    assert not (trained / "nope").exists()


def test_a_model_trained_at_32_px_is_exported_at_32_px_and_predicts_what_eval_measured(tmp_path):
    """MicroNet-M0's spec says 224 px; trained on synthetic data at 32 px, its export takes 32 px images
    (preprocess.json says so) and classifies the validation images exactly as `lwnas eval` scored them."""
    from lwnas.train import data
    from lwnas.train.settings import TrainConfig

    result = run("train", "--arch", "micronet_m0", "--output", "run", "--epochs", "1", "--train-subset", "128",
                 "--val-subset", "64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert run("export", "--checkpoint", "run", "--output", "exported", cwd=tmp_path).returncode == 0
    preprocess = json.loads((tmp_path / "exported" / "preprocess.json").read_text())
    assert preprocess["input_shape"] == [1, 3, 32, 32] and preprocess["resolution"] == 32
    evaluated = run("eval", "--checkpoint", "run", "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    top1 = json.loads(evaluated.stdout)["top1"]

    exported = paddle.jit.load(str(tmp_path / "exported" / "model"))
    exported.eval()
    val = data.load("synthetic", "val", 32, seed=TrainConfig().seed)
    view = data.Augmented(val, 32, train=False)
    images = np.stack([view[i][0] for i in range(len(view))])
    predicted = exported(paddle.to_tensor(images)).numpy().argmax(axis=1)
    assert 100 * np.mean(predicted == val.labels) == pytest.approx(top1, abs=1e-6)
