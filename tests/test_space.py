"""Search spaces: every named config is a point of a space; sampled specs are points of their space,
fit their budget and count the same as the analytic counter; bad space files name the field."""
import optuna
import pytest

import lwnas
from lwnas.budget import parse_count
from lwnas.errors import LwnasError, SpecError
from lwnas.search.space_files import get_space, space_from_dict, space_names

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_every_named_config_is_a_point_of_a_space():
    spaces = [get_space(name) for name in space_names()]
    homeless = [name for name in lwnas.config_names()
                if not any(space.contains(lwnas.get_config(name)) for space in spaces)]
    assert homeless == []


@pytest.mark.parametrize("space, configs", [
    ("micro", ["micronet_m0", "micronet_m1", "micronet_m2", "micronet_m3"]),
    ("mobile", ["shufflenet_v2_x1_0", "mobilenetv3_large_x1_0", "mobilenetv3_small_x1_0", "asymmnet_large_x1_0",
                "asymmnet_small_x1_0", "mobileone_s0"]),
    ("fast", ["fasternet_t0", "fasternet_t1", "fasternet_t2", "fasternet_s", "fasternet_m", "fasternet_l"]),
])
def test_issue_spaces_contain_their_paper_points(space, configs):
    space = get_space(space)
    for name in configs:
        assert space.why_not(lwnas.get_config(name)) is None, name


def test_contains_rejects_a_changed_config():
    space = get_space("micro")
    m1 = lwnas.get_config("micronet_m1").to_dict()
    m1["stages"][0]["blocks"][0]["out"] = 10  # 10 is not an allowed width of slot s1
    assert not space.contains(lwnas.ArchSpec.from_dict(m1))
    assert "out=10" in space.why_not(lwnas.ArchSpec.from_dict(m1))
    assert not get_space("fast").contains(lwnas.get_config("micronet_m1"))


@pytest.mark.parametrize("space_name, budget", [("micro", 6e6), ("micro", 12e6), ("mobile", 300e6),
                                                ("fast", 1e9), ("shuffle", 150e6), ("mobileone", 1e9)])
def test_sample_round_trip(space_name, budget):
    space = get_space(space_name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    feasible = 0
    for _ in range(40):
        sample = space.sample(study.ask(), budget=int(budget), shrink=True)
        assert sample.spec is not None, sample.reason
        assert space.why_not(sample.spec) is None
        assert lwnas.count(sample.spec).macs == sample.macs
        again = lwnas.ArchSpec.from_yaml(sample.spec.to_yaml())
        assert again == sample.spec and again.arch_hash == sample.spec.arch_hash
        feasible += sample.macs <= budget
    assert feasible >= 20  # the shrinker brings most samples under budget


def test_sampling_is_reproducible_with_a_seed():
    space = get_space("micro")

    def hashes(seed):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        return [space.sample(study.ask(), 12_000_000).spec.arch_hash for _ in range(5)]

    assert hashes(3) == hashes(3)
    assert hashes(3) != hashes(4)


def test_shrink_brings_over_budget_samples_down():
    space = get_space("micro")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    plain = [space.sample(study.ask(), 8_000_000, shrink=False).macs for _ in range(30)]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    shrunk = [space.sample(study.ask(), 8_000_000, shrink=True).macs for _ in range(30)]
    assert sum(m <= 8e6 for m in shrunk) > sum(m <= 8e6 for m in plain)
    assert all(s <= p for s, p in zip(shrunk, plain))


def test_smallest_network_is_below_the_smallest_paper_point():
    assert get_space("micro").smallest().macs < lwnas.count("micronet_m0").macs


@pytest.mark.parametrize("text, value", [("12M", 12_000_000), ("12e6", 12_000_000), ("0.3G", 300_000_000),
                                         ("300M", 300_000_000), ("300m", 300_000_000), ("1500K", 1_500_000),
                                         (" 4M ", 4_000_000), ("12000000", 12_000_000)])
def test_budget_strings(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["12X", "-5M", "0", "", "M", "1e400", "twelve", "12MM", "nan", "0.0000001M",
                                  "12 M", "1 2M"])
def test_bad_budget_strings(text):
    with pytest.raises(LwnasError, match="budget"):
        parse_count(text)


BASE = {"name": "t", "resolution": 32,
        "stages": [{"name": "s", "depth": [1, 2], "stride": 2,
                    "blocks": [{"type": "inverted_residual", "out": [16, 24], "expand": [32]}]}],
        "head": [{"type": "classifier"}]}


@pytest.mark.parametrize("change, field", [
    (lambda d: d["stages"][0]["blocks"][0].update(out="wide"), "stages[0].blocks[0].out[0]"),
    (lambda d: d["stages"][0]["blocks"][0].update(colour=[1]), "stages[0].blocks[0].colour"),
    (lambda d: d["stages"][0]["blocks"][0].pop("out"), "stages[0].blocks[0].out"),
    (lambda d: d["stages"][0]["blocks"][0].update(stride=[1, 2]), "stages[0].blocks[0].stride"),
    (lambda d: d["stages"][0].update(depth=[3, 1]), "stages[0].depth"),
    (lambda d: d["stages"][0]["blocks"][0].update(type="warp_block"), "stages[0].blocks[0].type"),
    (lambda d: d.update(head=[{"type": "conv_bn_act", "out": 8}]), "head[0].type"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_bad_space_names_its_field(change, field):
    import copy

    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(SpecError) as err:
        space_from_dict(data, "bad.yaml")
    assert err.value.path == field


def test_space_file_errors_carry_the_path(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nresolution: [\n")
    with pytest.raises(SpecError, match="broken.yaml: malformed YAML"):
        get_space(str(path))
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text("name: !!python/object/apply:os.system ['echo hi']\nresolution: 32\n")
    with pytest.raises(SpecError, match="hostile.yaml"):
        get_space(str(hostile))
    with pytest.raises(LwnasError, match="did you mean micro"):
        get_space("mikro")
