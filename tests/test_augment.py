"""RandAugment and mixup / cutmix: deterministic under a seed, the right mixtures and targets, and a training run
that uses them end to end."""
import numpy as np
import paddle
import pytest

from lwnas.train.augment import OPERATIONS, mix_batch, rand_augment
from lwnas.train.data import synthetic
from lwnas.train.loop import train
from lwnas.train.settings import TrainConfig


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_rand_augment_is_a_function_of_its_generator():
    img = _image()
    a = rand_augment(img, 9.0, np.random.default_rng((0, 1, 2)))
    b = rand_augment(img, 9.0, np.random.default_rng((0, 1, 2)))
    assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    changed = sum(not np.array_equal(rand_augment(img, 9.0, np.random.default_rng(i)), img) for i in range(20))
    assert changed >= 10  # two operations at probability 0.5 each: about three images in four change
    assert len(OPERATIONS) == 15


def test_every_operation_keeps_the_image_valid():
    from PIL import Image

    from lwnas.train.augment import _operations

    pil = Image.fromarray(_image(1))
    for name, operation in _operations().items():
        out = np.asarray(operation(pil, 1.0, np.random.default_rng(0)))
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8, name


def test_mixup_blends_images_and_targets_with_one_weight():
    images = paddle.to_tensor(np.arange(4 * 3 * 4 * 4, dtype=np.float32).reshape([4, 3, 4, 4]))
    labels = paddle.to_tensor(np.array([0, 1, 2, 3]))
    rng = np.random.default_rng(5)
    lam = np.random.default_rng(5).beta(0.4, 0.4)
    mixed, targets = mix_batch(images, labels, 4, mixup=0.4, cutmix=0.0, smoothing=0.0, rng=rng)
    expected = lam * images.numpy() + (1 - lam) * images.numpy()[::-1]
    assert np.allclose(mixed.numpy(), expected, atol=1e-4)
    assert np.allclose(targets.numpy()[0], [lam, 0, 0, 1 - lam], atol=1e-6)
    assert np.allclose(targets.numpy().sum(1), 1.0)


def test_cutmix_pastes_a_box_and_weights_targets_by_its_area():
    images = paddle.zeros([2, 1, 8, 8])
    images[1] = 1.0
    labels = paddle.to_tensor(np.array([0, 1]))
    mixed, targets = mix_batch(images, labels, 2, mixup=0.0, cutmix=1.0, smoothing=0.1, rng=np.random.default_rng(3))
    pasted = float(mixed.numpy()[0].mean())  # image 0 is zeros with a box of ones from image 1
    assert 0 < pasted < 1 and set(np.unique(mixed.numpy()[0])) == {0.0, 1.0}
    smooth = np.array([0.95, 0.05])
    assert np.allclose(targets.numpy()[0], (1 - pasted) * smooth + pasted * smooth[::-1], atol=1e-6)


def test_training_with_rand_augment_mixup_and_cutmix_runs_and_repeats():
    data = synthetic(64, 32, seed=0), synthetic(32, 32, seed=1)
    config = TrainConfig(epochs=1, batch_size=16, rand_augment=7.0, mixup=0.2, cutmix=1.0)

    def run():
        import lwnas

        paddle.seed(0)
        model = lwnas.build("micronet_m0", 10)
        train(model, *data, config)
        return [p.numpy().copy() for p in model.parameters()]

    first, second = run(), run()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    with pytest.raises(Exception, match="rand_augment"):
        TrainConfig.from_dict({"rand_augment": 11})
