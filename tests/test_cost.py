"""Analytic counting: agrees exactly with hooks on the built network, and with the papers within 3%."""
import paddle
import pytest

import lwnas
from lwnas.model.published import PUBLISHED

TOLERANCE = 0.03

# Documented in the README ("Counting convention"): with the Shift-Max fusions counted, M2 is 6.2% above
# its published "12M" while M0, M1 and M3 are within 2%; without them every MicroNet is 11-14% below.
# benchmarks/micronet_official.py shows the official PyTorch M2 has exactly our count.
KNOWN_DISCREPANCIES = {("micronet_m2", "madds"): 0.07}


@pytest.mark.parametrize("name", lwnas.config_names())
def test_analytic_count_equals_hooks_on_built_network(name):
    spec = lwnas.get_config(name)
    model = lwnas.build(spec)
    analytic = lwnas.count(spec)
    as_trained = lwnas.count_built(model, spec.resolution)
    assert analytic.train_params == as_trained.params
    model.eval()
    deployed = lwnas.count_built(lwnas.reparameterize(model), spec.resolution)
    assert (analytic.macs, analytic.params) == (deployed.macs, deployed.params)
    assert (analytic.kernels, analytic.written) == (deployed.kernels, deployed.written)  # the latency features


def test_every_config_has_a_published_reference():
    assert set(lwnas.config_names()) == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counts_match_published(name):
    published = PUBLISHED[name]
    cost = lwnas.count(name)
    for field, ours, theirs in (("madds", cost.macs, published.madds), ("params", cost.params, published.params)):
        if theirs is None:
            continue
        tolerance = KNOWN_DISCREPANCIES.get((name, field), TOLERANCE)
        assert abs(ours - theirs) / theirs <= tolerance, \
            f"{name} {field}: computed {ours:,} vs published {theirs:,.0f} ({published.source})"


def test_exact_where_official_code_counts():
    # Spark001/AsymmNet checkpoints/macc.txt: "MACs (total): 216.92 million"
    assert round(lwnas.count("asymmnet_large_x1_0").macs / 1e6, 2) == 216.92


def test_asymmnet_parameter_gap_is_the_official_summary_counting_k_not_k_squared():
    """macc.txt lists the 3->16 3x3 stem conv with 144 weights (3*16*3): its tool counts a kxk kernel as k
    weights. Counting our network that way gives its total, 5,991,776, exactly; the true count is ours."""
    model = lwnas.build("asymmnet_large_x1_0")
    overcounted = sum(w.shape[0] * w.shape[1] * (w.shape[2] * w.shape[3] - w.shape[2])
                      for w in (layer.weight for layer in model.sublayers() if isinstance(layer, paddle.nn.Conv2D)))
    assert lwnas.count("asymmnet_large_x1_0").params - overcounted == 5_991_776


def test_resolution_scales_cost():
    full, half = lwnas.count("shufflenet_v2_x1_0"), lwnas.count("shufflenet_v2_x1_0", resolution=112)
    assert half.params == full.params
    assert 0.2 < half.macs / full.macs < 0.3


def test_mobileone_params_before_and_after_reparameterization():
    cost = lwnas.count("mobileone_s0")
    assert cost.train_params > 2 * cost.params  # S0 trains four conv branches per block
