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


def kill_after_first_checkpoint(argv: list[str], cwd, folder, timeout: float = 120):
    """Run `lwnas ARGV` in `cwd` and kill -9 it as soon as `folder` holds a last checkpoint (it is then inside a
    later epoch, or past the last)."""
    import signal
    import subprocess
    import sys
    import time

    from lwnas.train import checkpoint

    worker = subprocess.Popen([sys.executable, "-m", "lwnas.cli", *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not (folder / checkpoint.LAST).exists() and time.time() < deadline:
        assert worker.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()


def checkpoint_top1(folder) -> float:
    """Validation top-1 of the network stored in folder/last.pdckpt, evaluated afresh on the validation images its
    training used (the data set and settings the checkpoint records): what a trial's score must equal."""
    import lwnas
    from lwnas.train import checkpoint
    from lwnas.train.loop import evaluate, loaders
    from lwnas.train.settings import TrainConfig
    from lwnas.train.splits import load_data

    state = checkpoint.load(folder / checkpoint.LAST)
    config = TrainConfig.from_dict(state["config"])
    val = load_data(state["data"], config)[1]
    model = lwnas.build(lwnas.ArchSpec.from_yaml(state["spec"]), len(state["classes"]))
    model.set_state_dict(state["model"])
    return evaluate(model, loaders(val, val, config)[3])[1]
