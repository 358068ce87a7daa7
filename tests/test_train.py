"""The shared trainer: it learns the built-in data set, a diverging loss fails cleanly, and seeded runs
repeat exactly; latency reports a median and a spread."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_spec

import lwnas
from lwnas.deploy.export import deployable
from lwnas.deploy.latency import measure
from lwnas.train import data
from lwnas.train.devices import check_device, seed_everything
from lwnas.train.loop import TrainingDiverged, _EpochOrder, make_optimizer, train
from lwnas.train.settings import TrainConfig

SPEC = tiny_spec([{"type": "inverted_residual", "out": 24, "expand": 48, "stride": 2},
                  {"type": "inverted_residual", "out": 24, "expand": 72}])


def _run(config, **options):
    """Build SPEC under the config's seed and train it; `options` go to train() (save, resume)."""
    seed_everything(config.seed)  # the weights' initialisation is part of the seeded run
    model = lwnas.build(lwnas.ArchSpec.from_dict(SPEC))
    return model, train(model, data.synthetic(256, 32, seed=0), data.synthetic(128, 32, seed=1), config, **options)


def test_learns_the_synthetic_set():
    _, history = _run(TrainConfig(epochs=3, batch_size=32, lr=0.1))
    assert history[-1].top1 > 40  # 10 classes: chance is 10%
    assert history[-1].loss < history[0].loss


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_amp_training_step_with_parameter_groups_clipping_and_ema(dtype):
    """The step a GPU runs (autocast, GradScaler scale/step/update with parameter groups, clipping, EMA), run on
    CPU where Paddle turns autocast and scaling into no-ops. `scaler.minimize` with parameter groups failed here."""
    config = TrainConfig(epochs=3, batch_size=32, lr=0.1, amp=True, amp_dtype=dtype, grad_clip=1.0, ema_decay=0.9)
    _, history = _run(config)
    assert history[-1].top1 > 40 and history[-1].loss < history[0].loss


def test_loss_is_read_on_the_host_once_per_log_interval():
    calls = []
    seed_everything(0)
    model = lwnas.build(lwnas.ArchSpec.from_dict(SPEC))
    train(model, data.synthetic(256, 32, seed=0), data.synthetic(64, 32, seed=1), TrainConfig(epochs=1, batch_size=8),
          on_step=lambda step, steps, loss: calls.append((step, steps, loss)), log_every=10)
    assert [c[0] for c in calls] == [10, 20, 30, 32] and all(c[1] == 32 for c in calls)
    assert all(np.isfinite(c[2]) and c[2] > 0 for c in calls)


@pytest.mark.parametrize("key, value, expected", [
    ("lr", "fast", "a number > 0"), ("epochs", "two", "an integer >= 1"), ("epochs", True, "an integer >= 1"),
    ("epochs", 2.5, "an integer >= 1"), ("momentum", 1.5, r"a number in \[0, 1\)"), ("amp", "yes", "true or false"),
    ("amp_dtype", "fp8", "float16 or bfloat16"), ("train_subset", 0, "an integer >= 1, or null"), ("seed", None, "an integer"),
])
def test_every_setting_is_type_and_range_checked(key, value, expected):
    with pytest.raises(lwnas.LwnasError, match=f"^proxy.yaml: {key}: .* is not valid; expected {expected}"):
        TrainConfig.from_dict({key: value}, "proxy.yaml")


def test_integers_are_valid_floats_and_subsets_may_be_null():
    config = TrainConfig.from_dict({"lr": 1, "train_subset": None, "amp": True})
    assert config.lr == 1.0 and type(config.lr) is float and config.train_subset is None and config.amp is True


@pytest.mark.parametrize("device, cuda_build, gpus, message", [
    ("gpu", False, 0, "no CUDA support"),
    ("gpu", True, 0, "no GPU is visible"),
    ("gpu:3", True, 2, r"only 2 GPU\(s\) are visible \(gpu:0 to gpu:1\)"),
    ("gpu:x", True, 2, "unknown device 'gpu:x'"),
    ("cuda", True, 2, "expected cpu, gpu or gpu:N"),
])
def test_device_requests_that_cannot_be_met_are_refused(device, cuda_build, gpus, message):
    with pytest.raises(lwnas.LwnasError, match=message):
        check_device(device, cuda_build, gpus)


def test_device_requests_that_can_be_met_pass():
    assert check_device("cpu", False, 0) == "cpu"
    assert check_device("gpu", True, 1) == "gpu" and check_device("gpu:1", True, 2) == "gpu:1"


def test_uneven_shards_give_every_process_the_same_number_of_images():
    orders = [_EpochOrder(131, seed=0, rank=r, world=2) for r in range(2)]
    shards = [list(o) for o in orders]
    assert [len(s) for s in shards] == [66, 66] == [len(o) for o in orders]
    assert set(shards[0]) | set(shards[1]) == set(range(131))  # every image; one seen twice (the padding)


def test_two_process_data_parallel_with_an_odd_image_count_ends_with_identical_weights(tmp_path):
    """131 images over 2 processes at batch 13: without padding rank 1 has one batch fewer and its partner waits
    in the gradient all-reduce for ever (here: until the timeout)."""
    tests = Path(__file__).parent
    result = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                             "--log_dir", str(tmp_path / "logs"), str(tests / "data_parallel_worker.py"),
                             str(tmp_path), "131"], cwd=tests, capture_output=True, text=True, timeout=240)
    logs = "".join(p.read_text() for p in sorted((tmp_path / "logs").glob("*")) if p.is_file())
    assert result.returncode == 0, result.stderr[-2000:] + logs[-3000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    assert int(ranks[0]["epochs"]) == int(ranks[1]["epochs"]) == 2
    trained = sorted(n for n in ranks[0].files if n.startswith("trained"))
    assert len(trained) > 10 and trained == sorted(n for n in ranks[1].files if n.startswith("trained"))
    for name in trained:
        assert np.array_equal(ranks[0][name], ranks[1][name]), name
    assert not all(np.array_equal(ranks[0][n], ranks[0][n.replace("trained", "initial")]) for n in trained)


def test_seeded_runs_repeat_exactly():
    config = TrainConfig(epochs=1, batch_size=64, seed=3)
    a, ha = _run(config)
    b, hb = _run(config)
    assert ha[0].loss == hb[0].loss
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(pa.numpy(), pb.numpy()), name


def test_nan_loss_raises_training_diverged():
    with pytest.raises(TrainingDiverged, match="loss became"):
        _run(TrainConfig(epochs=2, batch_size=32, lr=1e12, grad_clip=0, warmup_epochs=0))


def test_bad_settings_are_named():
    with pytest.raises(lwnas.LwnasError, match="unknown setting"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(lwnas.LwnasError, match="optimizer: 'lion' is not valid; expected sgd or adamw"):
        TrainConfig.from_dict({"optimizer": "lion"})


def test_latency_median_and_spread():
    model = deployable(lwnas.build("mobileone_s0"))
    result = measure(model, 64, batch_size=1, warmup=2, runs=8)
    assert result.median_ms > 0 and result.iqr_ms >= 0 and result.runs == 8
    assert 0 <= result.spread < 5


@pytest.mark.parametrize("engine", ["inference", "onnxruntime"])
def test_latency_through_a_deployment_engine_leaves_no_temporary_folder(engine):
    """Through the command line, one engine per process: paddle2onnx aborts the process when it exports after a
    Paddle Inference predictor was created in it (Paddle 3.3.1; see the README)."""
    import glob
    import json
    import subprocess
    import sys
    import tempfile

    before = set(glob.glob(f"{tempfile.gettempdir()}/lwnas-latency-*"))
    result = subprocess.run([sys.executable, "-m", "lwnas.cli", "latency", "shufflenet_v2_x0_5", "--resolution", "64",
                             "--warmup", "1", "--runs", "3", "--engine", engine, "--threads", "2", "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)["measurements"][0]
    assert measured["median_ms"] > 0 and measured["device"].startswith(f"cpu/{engine}") and measured["threads"] == 2
    if engine == "inference":  # the faster of the two CPU backends, named
        assert measured["device"] in ("cpu/inference (oneDNN)", "cpu/inference (native kernels)")
    assert set(glob.glob(f"{tempfile.gettempdir()}/lwnas-latency-*")) == before


def test_batch_norm_recalibration_uses_exact_statistics_of_the_current_weights():
    """After a short run the running variance still remembers its initial 1.0; recalibration replaces it by the
    mean of the batch statistics, computed with dropout off, and leaves momentum and mode as they were."""
    import paddle

    from lwnas.train.loop import recalibrate_batch_norm

    conv, norm = paddle.nn.Conv2D(3, 4, 1), paddle.nn.BatchNorm2D(4)
    model = paddle.nn.Sequential(paddle.nn.Dropout(0.5), conv, norm)
    batches = [(paddle.randn([8, 3, 4, 4]) * 0.01, paddle.zeros([8], "int64")) for _ in range(4)]
    model.train()
    model(batches[0][0])  # one ordinary training step: running variance 0.9 * 1.0 + 0.1 * tiny
    assert float(norm._variance.mean()) > 0.8
    recalibrate_batch_norm(model, batches, 3)
    with paddle.no_grad():
        outputs = [conv(images).numpy() for images, _ in batches[:3]]  # dropout off: the raw inputs
    means = np.mean([o.mean(axis=(0, 2, 3)) for o in outputs], axis=0)
    variances = np.stack([o.var(axis=(0, 2, 3)) for o in outputs])
    assert np.allclose(norm._mean.numpy(), means, atol=1e-7)
    assert np.allclose(norm._variance.numpy(), variances.mean(axis=0), rtol=1e-4)  # Paddle keeps the biased one
    assert norm._momentum == 0.9 and model.training


def test_short_runs_leave_the_warm_up():
    """The training default warms up for 3 epochs; a 2-epoch run would end at lr 0.067 without ever reaching
    0.1. Capped at a quarter of the run, it peaks after half an epoch."""
    import paddle

    from lwnas.train.loop import make_optimizer
    from lwnas.train.settings import warmup_epochs

    config = TrainConfig(epochs=2, warmup_epochs=3.0, lr=0.1)
    assert warmup_epochs(config) == 0.5 and warmup_epochs(TrainConfig(epochs=100, warmup_epochs=3.0)) == 3.0
    _, schedule = make_optimizer(paddle.nn.Linear(2, 2), config, steps_per_epoch=10)
    rates = []
    for _ in range(20):
        rates.append(schedule())
        schedule.step()
    assert max(rates) == pytest.approx(0.1) and rates.index(max(rates)) == 5


def test_an_extended_run_whose_warm_up_appears_resumes():
    """2 epochs of one step: the warm-up (a quarter of the run, 0.5 steps) rounds to none; extended to 3 epochs it
    is one step. The resumed run replays the new schedule instead of loading the old one (which Paddle refused)."""
    import paddle

    sets = data.synthetic(16, 32, seed=0), data.synthetic(16, 32, seed=1)
    saved = {}
    short = TrainConfig(epochs=2, batch_size=16, warmup_epochs=3.0, optimizer="adamw", lr=0.001)
    with paddle.utils.unique_name.guard():  # the optimizer state is keyed by weight names, as in a new process
        train(lwnas.build("micronet_m0", 10), *sets, short, save=lambda state, best: saved.update(state))
    longer = TrainConfig(**{**short.to_dict(), "epochs": 3})
    with paddle.utils.unique_name.guard():
        history = train(lwnas.build("micronet_m0", 10), *sets, longer, resume=saved)
    assert [h.epoch for h in history] == [1, 2, 3]
    _, fresh = make_optimizer(lwnas.build("micronet_m0", 10), longer, steps_per_epoch=1)
    lrs = [fresh.last_lr] + [fresh.step() or fresh.last_lr for _ in range(3)]  # at steps 0 (warm-up), 1, 2, 3
    assert lrs[1] == pytest.approx(0.001) and history[2].lr == pytest.approx(lrs[3])  # the new schedule's value
    assert history[1].lr != pytest.approx(lrs[2])  # the old run's epoch 2 ran on its own (shorter) schedule


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_state_resumes_exactly_in_a_process_that_built_other_layers_first(optimizer, tmp_path):
    """Paddle names weights by a per-process counter, so a state keyed by those names loaded the momentum of
    another weight (or failed on its shape) once the resuming process had built anything else first, as a
    benchmark that trains several networks in turn does. Stopped after epoch 1 and resumed after building an
    unrelated network, the run must end with the weights of an uninterrupted one."""
    import paddle

    config = TrainConfig(epochs=2, batch_size=64, seed=3, optimizer=optimizer, lr=0.01)
    straight, _ = _run(config)
    saved = tmp_path / "epoch1.pdparams"  # on disk: the state's tensors are the live weights until saved
    _run(config, save=lambda state, best: paddle.save(state, str(saved)) if state["epoch"] == 1 else None)
    lwnas.build("micronet_m0", 10)  # shifts every later weight's Paddle name
    resumed, _ = _run(config, resume=paddle.load(str(saved)))
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), name
