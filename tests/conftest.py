import warnings

import paddle
import pytest

warnings.filterwarnings("ignore", message="No ccache found")


def tiny_spec(blocks, stem=None, head=None, resolution=32, num_classes=10, name="tiny"):
    """A small network dict: a conv stem to 16 channels, the given blocks in one stage, a linear head."""
    return {
        "name": name, "resolution": resolution, "num_classes": num_classes,
        "stem": stem if stem is not None else [{"type": "conv_bn_act", "out": 16, "kernel": 3, "stride": 2}],
        "stages": [{"name": "s1", "blocks": blocks}],
        "head": head or {"type": "classifier"},
    }


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(0)
