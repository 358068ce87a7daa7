"""The shared trainer: it learns the built-in data set, a diverging loss fails cleanly, and seeded runs
repeat exactly; latency reports a median and a spread."""
import numpy as np
import pytest

import lwnas
from lwnas import data
from lwnas.latency import deployable, measure
from lwnas.train import TrainConfig, TrainingDiverged, seed_everything, train

from conftest import tiny_spec

SPEC = tiny_spec([{"type": "inverted_residual", "out": 24, "expand": 48, "stride": 2},
                  {"type": "inverted_residual", "out": 24, "expand": 72}])


def _run(config):
    seed_everything(config.seed)  # the weights' initialisation is part of the seeded run
    model = lwnas.build(lwnas.ArchSpec.from_dict(SPEC))
    return model, train(model, data.synthetic(256, 32, seed=0), data.synthetic(128, 32, seed=1), config)


def test_learns_the_synthetic_set():
    _, history = _run(TrainConfig(epochs=3, batch_size=32, lr=0.1))
    assert history[-1].top1 > 40  # 10 classes: chance is 10%
    assert history[-1].loss < history[0].loss


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
    with pytest.raises(lwnas.LwnasError, match="optimizer"):
        TrainConfig.from_dict({"optimizer": "lion"})


def test_latency_median_and_spread():
    model = deployable(lwnas.build("mobileone_s0"))
    result = measure(model, 64, batch_size=1, warmup=2, runs=8)
    assert result.median_ms > 0 and result.iqr_ms >= 0 and result.runs == 8
    assert 0 <= result.spread < 5


def test_latency_through_paddle_inference():
    model = deployable(lwnas.build("shufflenet_v2_x0_5"))
    result = measure(model, 64, warmup=1, runs=3, engine="inference")
    assert result.median_ms > 0 and result.device.endswith("/inference")


def test_batch_norm_recalibration_uses_exact_statistics_of_the_current_weights():
    """After a short run the running variance still remembers its initial 1.0; recalibration replaces it by the
    mean of the batch statistics, computed with dropout off, and leaves momentum and mode as they were."""
    import paddle

    from lwnas.train import recalibrate_batch_norm

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
