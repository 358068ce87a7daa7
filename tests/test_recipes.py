"""Papers' recipes by name: their settings, per named config, overridden by flags, with the learning rate scaled
to another batch size; and the two settings they need that lwnas' own defaults do not use."""
import json
import subprocess
import sys

import numpy as np
import pytest

import lwnas
from lwnas.errors import LwnasError
from lwnas.train.data import Augmented, ImageSet
from lwnas.train.loop import _param_groups
from lwnas.train.recipes import recipe_settings
from lwnas.train.settings import TrainConfig


def test_the_micronet_recipe_follows_the_official_scripts():
    m0, m3 = recipe_settings("micronet", "micronet_m0"), recipe_settings("micronet", "micronet_m3")
    assert (m0["epochs"], m0["lr"], m0["batch_size"], m0["weight_decay"], m0["warmup_epochs"]) == \
        (600, 0.1, 256, 3e-5, 0.0)
    assert (m3["lr"], m3["batch_size"], m3["weight_decay"], m3["warmup_epochs"]) == (0.2, 512, 4e-5, 5.0)
    assert m0["label_smoothing"] == 0.0 and m0["decay_norm_and_bias"] and m0["crop_scale"] == 0.08
    assert recipe_settings("micronet", "micronet_m2", batch_size=64)["lr"] == pytest.approx(0.2 * 64 / 512)
    assert recipe_settings("micronet", "micronet_m2", batch_size=64, lr=0.05)["lr"] == 0.2  # --lr wins later
    TrainConfig.from_dict(m3)  # every value passes the settings' own checks
    with pytest.raises(LwnasError, match="unknown recipe 'paper'; known: fasternet, micronet, mobileone"):
        recipe_settings("paper", "micronet_m0")


def test_the_mobileone_and_fasternet_recipes_follow_their_sources():
    s0 = recipe_settings("mobileone", "mobileone_s0")
    assert (s0["epochs"], s0["lr"], s0["batch_size"], s0["weight_decay"], s0["weight_decay_end"]) == \
        (300, 0.1, 256, 1e-4, 1e-5)
    assert (s0["warmup_epochs"], s0["label_smoothing"], s0["ema_decay"]) == (5.0, 0.1, 0.9995)
    t0, t1, m, big = (recipe_settings("fasternet", f"fasternet_{n}") for n in ("t0", "t1", "m", "l"))
    assert (t0["optimizer"], t0["lr"], t0["batch_size"], t0["warmup_epochs"], t0["epochs"]) == \
        ("adamw", 0.004, 4096, 20.0, 300)
    assert (t0["weight_decay"], t0["mixup"], t0["cutmix"], t0.get("rand_augment", 0.0)) == (0.005, 0.05, 1.0, 0.0)
    assert (t1["weight_decay"], t1["mixup"], t1["rand_augment"]) == (0.01, 0.1, 3.0)
    assert (m["lr"], m["batch_size"], m["grad_clip"], m["mixup"]) == (0.002, 2048, 1.0, 0.5)
    assert (big["weight_decay"], big["mixup"], big["rand_augment"], big["grad_clip"]) == (0.05, 0.7, 7.0, 0.01)
    for settings in (s0, t0, t1, m, big):
        TrainConfig.from_dict(settings)
    with pytest.raises(LwnasError, match="weight_decay_end anneals SGD's weight decay"):
        TrainConfig.from_dict({**s0, "optimizer": "adamw"})


def test_weight_decay_follows_a_cosine_and_the_optimizer_applies_it():
    import paddle

    from lwnas.train.loop import _anneal_weight_decay

    config = TrainConfig(weight_decay=1e-2, weight_decay_end=1e-3, lr=1.0, momentum=0.0)
    weight = paddle.create_parameter([1], "float32", default_initializer=paddle.nn.initializer.Constant(1.0))
    bias = paddle.create_parameter([1], "float32", default_initializer=paddle.nn.initializer.Constant(1.0))
    optimizer = paddle.optimizer.Momentum(1.0, 0.0, parameters=[{"params": [weight], "weight_decay": 1e-2},
                                                                {"params": [bias], "weight_decay": 0.0}])
    coeffs = []
    for progress in (0.0, 0.5, 1.0):
        _anneal_weight_decay(optimizer, config, progress)
        coeffs.append([g["regularization_coeff"] for g in optimizer._param_groups])
    assert coeffs[0] == [pytest.approx(1e-2), 0.0] and coeffs[1] == [pytest.approx(5.5e-3), 0.0]
    assert coeffs[2] == [pytest.approx(1e-3), 0.0]
    (0.0 * (weight + bias)).sum().backward()  # zero gradients: the step is the decay alone
    optimizer.step()
    assert float(weight.numpy()[0]) == pytest.approx(1.0 - 1e-3) and float(bias.numpy()[0]) == 1.0


def test_train_takes_a_recipe_and_flags_override_it(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lwnas.cli", "train", "--arch", "micronet_m1", "--recipe",
                             "micronet", "--epochs", "1", "--batch-size", "32", "--train-subset", "64",
                             "--val-subset", "32", "--output", str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["epochs"] == 1 and config["batch_size"] == 32 and config["lr"] == pytest.approx(0.1 * 32 / 256)
    assert config["weight_decay"] == 3e-5 and config["decay_norm_and_bias"] and config["crop_scale"] == 0.08
    bad = subprocess.run([sys.executable, "-m", "lwnas.cli", "train", "--arch", "micronet_m1", "--recipe", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--recipe: invalid choice: 'nope' (choose from 'fasternet', 'micronet', " \
        "'mobileone')" in bad.stderr and "Traceback" not in bad.stderr


def test_weight_decay_reaches_norm_and_bias_parameters_only_when_asked():
    model = lwnas.build("micronet_m0")
    trained = [p for p in model.parameters() if not p.stop_gradient]
    default = _param_groups(model, 3e-5)
    assert [g["weight_decay"] for g in default] == [3e-5, 0.0]
    assert all(p.ndim <= 1 for p in default[1]["params"]) and default[1]["params"]
    every = _param_groups(model, 3e-5, decay_norm_and_bias=True)
    assert len(every) == 1 and len(every[0]["params"]) == len(trained) and every[0]["weight_decay"] == 3e-5


def test_the_crop_scale_bounds_the_random_resized_crop():
    """A gradient image: the crop's horizontal span of pixel values shows how much of the image it kept."""
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.float32), (200, 1)).astype(np.uint8)
    images = ImageSet(np.repeat(ramp[None, :, :, None], 3, axis=3).repeat(32, axis=0), np.zeros(32, np.int64), ["a"])

    def spans(scale):
        view = Augmented(images, 32, train=True, crop_scale=scale)
        return [float(np.ptp(view[i][0][0])) for i in range(32)]

    full = 255 / (0.229 * 255)  # the whole ramp, normalized
    assert min(spans(0.9)) > 0.75 * full  # at least 90% of the area: at least ~82% of the width
    assert min(spans(0.08)) < 0.6 * full  # down to 8%: some crops keep little of it
    with pytest.raises(LwnasError, match=r"crop_scale: 0.0 is not valid; expected a number in \(0, 1\]"):
        TrainConfig.from_dict({"crop_scale": 0})


def test_a_resumed_run_anneals_weight_decay_as_the_uninterrupted_one(tmp_path):
    """The coefficient is set before each step, so the first step after a resume uses the annealed value too."""
    import paddle

    from lwnas.train.data import synthetic
    from lwnas.train.loop import train

    sets = synthetic(32, 32, seed=0), synthetic(16, 32, seed=1)
    config = TrainConfig(epochs=3, batch_size=16, weight_decay=0.05, weight_decay_end=1e-4, label_smoothing=0.0)
    def save(state, best):  # a file, as a checkpoint: the live state's tensors keep changing
        paddle.save(state, str(tmp_path / f"epoch{state['epoch']}.pd"))

    def run(resume=None):
        with paddle.utils.unique_name.guard():  # optimizer state is keyed by weight names, as in a new process
            paddle.seed(0)
            model = lwnas.build("micronet_m0", 10)
            train(model, *sets, config, resume=resume, save=save)
        return [p.numpy() for p in model.parameters()]

    straight = run()
    resumed = run(resume=paddle.load(str(tmp_path / "epoch1.pd")))
    assert all(np.array_equal(a, b) for a, b in zip(straight, resumed))
