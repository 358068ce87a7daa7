"""The spec: lossless YAML round trip, a stable hash, and errors that name the offending field."""
import subprocess
import sys

import pytest
from conftest import tiny_spec

import lwnas
from lwnas import ArchSpec, SpecError


@pytest.mark.parametrize("name", lwnas.config_names())
def test_yaml_round_trip_is_lossless(name):
    spec = lwnas.get_config(name)
    again = ArchSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert hash(again) == hash(spec)
    assert again.arch_hash == spec.arch_hash


def test_defaults_are_filled_so_equal_networks_hash_equal():
    short = ArchSpec.from_dict(tiny_spec([{"type": "fasternet_block"}]))
    explicit = ArchSpec.from_dict(tiny_spec([{"type": "fasternet_block", "n_div": 4, "mlp_ratio": 2,
                                              "act": "relu", "drop_path": 0.0}]))
    assert short == explicit and short.arch_hash == explicit.arch_hash


def test_hash_ignores_names_but_not_structure():
    spec = lwnas.get_config("micronet_m1")
    assert spec.replace(name="renamed", family="other").arch_hash == spec.arch_hash
    assert spec.replace(resolution=160).arch_hash != spec.arch_hash
    wider = spec.to_dict()
    wider["head"]["hidden"] = 1024
    assert ArchSpec.from_dict(wider).arch_hash != spec.arch_hash


def test_hash_is_stable_across_processes():
    code = "import lwnas; print(lwnas.get_config('shufflenet_v2_x1_0').arch_hash)"
    hashes = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout.strip() for seed in ("1", "2")}
    assert hashes == {lwnas.get_config("shufflenet_v2_x1_0").arch_hash}


BAD_SPECS = [
    ("unknown block type", {"stages": [{"blocks": [{"type": "resnet_block"}]}]}, "stages[0].blocks[0].type",
     "unknown block type"),
    ("groups do not divide channels", {"stages": [{"blocks": [{"type": "conv_bn_act", "out": 30, "groups": 4}]}]},
     "stages[0].blocks[0]", "not divisible by groups"),
    ("negative width", {"stages": [{"blocks": [{"type": "conv_bn_act", "out": -8}]}]}, "stages[0].blocks[0].out",
     ">= 1"),
    ("negative resolution", {"resolution": -32}, "resolution", ">= 8"),
    ("unknown block key", {"stages": [{"blocks": [{"type": "fasternet_block", "ratio": 2}]}]},
     "stages[0].blocks[0].ratio", "unknown parameter"),
    ("unknown top-level key", {"depth": 3}, "depth", "unknown key"),
    ("wrong type", {"stages": [{"blocks": [{"type": "conv_bn_act", "out": "wide"}]}]}, "stages[0].blocks[0].out",
     "must be an integer"),
    ("bad choice", {"stages": [{"blocks": [{"type": "conv_bn_act", "out": 8, "act": "tanh"}]}]},
     "stages[0].blocks[0].act", "must be one of"),
    ("head in the body", {"stages": [{"blocks": [{"type": "classifier"}]}]}, "stages[0].blocks[0].type",
     "can only be used as 'head'"),
    ("body block as head", {"head": {"type": "fasternet_block"}}, "head.type", "not a head"),
    ("too much downsampling", {"resolution": 8, "stages": [{"blocks": [
        {"type": "conv_bn_act", "out": 16, "kernel": 4, "stride": 4},
        {"type": "conv_bn_act", "out": 16, "kernel": 4, "stride": 4}]}]}, "stages[0].blocks[1]", "shrinks"),
    ("stride-1 shuffle unit changing width", {"stages": [{"blocks": [{"type": "shufflenet_v2_unit", "out": 32}]}]},
     "stages[0].blocks[0]", "stride-1 unit"),
    ("tuple of wrong length", {"stages": [{"blocks": [dict(type="micro_block", out=16, expand=[2, 2, 2],
                                                          pw1_groups=[0, 4], pw2_groups=[2, 2], dy=[2, 2, 1])]}]},
     "stages[0].blocks[0].expand", "must have 2 items"),
]


@pytest.mark.parametrize("case,change,path,message", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_specs_name_the_field(case, change, path, message):
    data = tiny_spec([{"type": "fasternet_block"}])
    data.update(change)
    with pytest.raises(SpecError) as err:
        ArchSpec.from_dict(data, "net.yaml")
    assert err.value.path == f"net.yaml: {path}"
    assert message in str(err.value)


def test_malformed_yaml_gives_line_and_file():
    with pytest.raises(SpecError, match=r"spec.yaml: malformed YAML \(line \d+, column \d+\)"):
        ArchSpec.from_yaml("name: x\nstages: [unclosed\n", "spec.yaml")


def test_python_object_tags_are_refused():
    hostile = "!!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(SpecError, match="malformed YAML"):
        ArchSpec.from_yaml(hostile, "evil.yaml")


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec file"):
        lwnas.load_spec(tmp_path / "absent.yaml")


def test_unknown_config_suggests_close_names():
    with pytest.raises(lwnas.LwnasError, match="did you mean micronet_m1"):
        lwnas.get_config("micronet-m1")
