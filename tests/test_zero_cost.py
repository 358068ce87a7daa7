"""Zero-cost scores against values worked out by hand or in closed form on tiny networks, and on real specs:
finite, repeatable under a seed."""
import numpy as np
import paddle
import pytest
from conftest import tiny_spec

import lwnas
from lwnas import zero_cost
from lwnas.train import data


def _linear(*shapes, relu=False):
    layers = []
    for n_in, n_out in shapes:
        layers += [paddle.nn.Linear(n_in, n_out, bias_attr=False)] + ([paddle.nn.ReLU()] if relu else [])
    return paddle.nn.Sequential(*layers)


def test_synflow_of_a_two_layer_linear_network_is_twice_its_path_sum():
    """y = x W1 W2 with an all-ones input: R = 1^T |W1| |W2| 1, and both layers' |w * dR/dw| sum to R."""
    model = _linear((3, 4), (4, 2))
    w1, w2 = (np.abs(model[i].weight.numpy().astype(np.float64)) for i in (0, 1))
    expected = 2 * np.ones(3) @ w1 @ w2 @ np.ones(2)
    assert zero_cost.synflow(model, paddle.zeros([5, 3]), None) == pytest.approx(expected, rel=1e-12)


def _cross_entropy_gradient(x, w, labels):
    logits = x @ w
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1
    return x.T @ p / len(labels)  # d mean-CE / dW for logits = x W


def test_snip_and_grad_norm_of_one_linear_layer():
    model = _linear((4, 3))
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((6, 4)).astype(np.float32), np.array([0, 1, 2, 0, 1, 2])
    w = model[0].weight.numpy().astype(np.float64)
    g = _cross_entropy_gradient(x.astype(np.float64), w, labels)
    args = (paddle.to_tensor(x), paddle.to_tensor(labels))
    assert zero_cost.snip(model, *args) == pytest.approx(np.abs(w * g).sum(), rel=1e-5)
    assert zero_cost.grad_norm(model, *args) == pytest.approx(np.linalg.norm(g), rel=1e-5)


def test_naswot_counts_agreeing_activations():
    """Three images that switch on one ReLU unit each: K = [[3,1,1],[1,3,1],[1,1,3]], det 20."""
    model = _linear((3, 3), relu=True)
    model[0].weight.set_value(paddle.eye(3))
    images = paddle.to_tensor(np.eye(3, dtype=np.float32) - 0.5 * (1 - np.eye(3, dtype=np.float32)))
    assert zero_cost.naswot(model, images, None) == pytest.approx(np.log(20.0), rel=1e-12)


def test_jacob_cov_of_a_linear_network():
    """A linear map has the same Jacobian for every image: the correlation matrix is all ones, with
    eigenvalues B (once) and 0 (B - 1 times)."""
    model = _linear((4, 3))
    b, k = 5, 1e-5
    expected = -(np.log(b + k) + 1 / (b + k) + (b - 1) * (np.log(k) + 1 / k))
    got = zero_cost.jacob_cov(model, paddle.randn([b, 4]), None)
    assert got == pytest.approx(expected, rel=1e-6)


def test_every_score_of_a_real_spec_is_finite_and_repeats_under_a_seed():
    spec = lwnas.ArchSpec.from_dict(tiny_spec([
        {"type": "micro_block", "out": 32, "expand": [1, 2], "pw1_groups": [4, 4], "pw2_groups": [4, 4],
         "dy": [2, 2, 1]},
        {"type": "inverted_residual", "out": 32, "expand": 64, "act": "hswish", "se": True}]))
    batch = data.synthetic(16, 32, seed=0)
    images = np.stack([data.Augmented(batch, 32, train=False)[i][0] for i in range(16)])
    first = zero_cost.scores(spec, images, batch.labels, seed=3)
    assert set(first) == {"params", "madds", *zero_cost.SCORES}
    assert all(np.isfinite(v) for v in first.values()), first
    assert first == zero_cost.scores(spec, images, batch.labels, seed=3)
    assert first["params"] == lwnas.count(spec).params


def test_score_command_prints_every_score():
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "lwnas.cli", "score", "micronet_m0", "--batch-size", "16",
                             "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 16 and set(report["scores"]) == {"params", "madds", *zero_cost.SCORES}
    assert report["scores"]["madds"] == lwnas.count(lwnas.get_config("micronet_m0").replace(num_classes=10)).macs
    bad = subprocess.run([sys.executable, "-m", "lwnas.cli", "score", "micronet_m9"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown config 'micronet_m9'" in bad.stderr


def test_zen_score_of_a_linear_network_with_batch_norm():
    """Redrawn weight W, Gaussian x and noise e, gamma 0.01: log(mean_b sum_j |BN(xW) - BN((x + gamma e)W)|)
    + log sqrt(mean_c var_b(xW)) (the scale of the unperturbed pass), worked out in NumPy. Without an lwnas
    head the features are the output."""
    model = paddle.nn.Sequential(paddle.nn.Linear(4, 3, bias_attr=False), paddle.nn.BatchNorm1D(3))
    images = paddle.zeros([8, 4])
    paddle.seed(5)
    got = zero_cost.zen(model, images, None)
    paddle.seed(5)
    w, x, e = (paddle.randn(shape).numpy().astype(np.float64) for shape in ([4, 3], [8, 4], [8, 4]))

    def batch_norm(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)

    clean, perturbed = x @ w, (x + 0.01 * e) @ w
    expected = np.log(np.abs(batch_norm(clean) - batch_norm(perturbed)).sum(1).mean()) \
        + np.log(np.sqrt(clean.var(0).mean()))
    assert got == pytest.approx(expected, rel=1e-4)
