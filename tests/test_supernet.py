"""The weight-sharing supernet: every sampled subnet of micro and mobile runs on the shared banks and extracts to a
normal checkpoint with equal outputs; the sandwich rule trains the windows it used; a killed supernet run resumes
to bit-identical weights; extraction feeds `lwnas train --init`."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
from conftest import kill_after_first_checkpoint

import lwnas
from lwnas.deploy.predictor import sample_specs
from lwnas.model.blocks.common import shuffle_channels, shuffle_order
from lwnas.search.space_files import get_space
from lwnas.supernet import Supernet, SupernetError
from lwnas.supernet.extract import load_supernet
from lwnas.supernet.train import Sandwich, sandwich_loss
from lwnas.train import checkpoint

TINY_SPACE = """
name: tiny
resolution: 32
stem:
  - name: stem
    stride: 2
    blocks:
      - {type: conv_bn_act, out: [8, 16], kernel: 3}
stages:
  - name: s1
    depth: [1, 2]
    stride: 2
    blocks:
      - {type: micro_block, out: [16, 24], kernel: [3, 5], expand: [[1, 2]], pw1_groups: [[2, 2], [4, 4]],
         pw2_groups: [[2, 2]], dy: [[2, 2, 1], [0, 2, 0]]}
      - {type: inverted_residual, out: [16, 24], kernel: [3], expand: [32, 48], se: [false, true]}
head:
  - {type: classifier, hidden: [0, 32], dropout: [0.0, 0.1]}
"""
ARGS = ["--epochs", "3", "--train-subset", "96", "--val-subset", "32", "--batch-size", "16", "--seed", "1"]


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lwnas.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module", params=["micro", "mobile"])
def supernet(request):
    paddle.seed(0)  # the banks' initial draw, whichever tests ran before
    return Supernet(get_space(request.param), 10)


def test_every_sampled_subnet_runs_and_extracts_to_equal_outputs(supernet):
    space = supernet.space
    named = [lwnas.get_config(n) for n in lwnas.config_names() if space.contains(lwnas.get_config(n))]
    specs = [supernet.largest, supernet.smallest, *named, *sample_specs(space, 8, seed=3, num_classes=10)]
    assert len(named) >= 3  # MicroNet M0-M3 / MobileNetV3, AsymmNet, ShuffleNet v2, MobileOne S0
    x = paddle.randn([2, 3, 32, 32])
    for spec in specs:
        subnet = supernet.subnet(spec)
        subnet.eval()
        shared = subnet(x).numpy()
        static = lwnas.build(spec, 10)
        static.set_state_dict(subnet.weights())
        static.eval()
        alone = static(x).numpy()
        assert np.abs(shared - alone).max() <= 1e-5 * max(np.abs(alone).max(), 1e-6), spec.name


def _training_losses(model, images, labels, steps=40, batch=32):
    """Loss per SGD step (momentum 0.9, lr 0.05) over fixed batches: the same data and order for every model."""
    import paddle.nn.functional as F

    paddle.seed(0)
    optimizer = paddle.optimizer.Momentum(0.05, 0.9, parameters=model.parameters())
    losses = []
    for step in range(steps):
        start = step * batch % len(images)
        loss = F.cross_entropy(model(paddle.to_tensor(images[start:start + batch])),
                               paddle.to_tensor(labels[start:start + batch]))
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    return np.array(losses)


# per space: the named network trained through its supernet, and how far above the standalone network's loss its
# loss may end. MobileNetV3-Small's standalone runs alone end 0.47 / 1.38 / 0.63 over seeds 0-2 here, MicroNet-M0's
# 1.48 / 1.95 / 1.17: the tolerances sit inside that spread.
NAMED_SUBNET = {"micro": ("micronet_m0", 0.25), "mobile": ("mobilenetv3_small_x1_0", 0.5)}


def test_a_subnet_learns_through_the_supernet_as_the_same_network_alone(supernet):
    """MicroNet-M0 (Dynamic Shift-Max) and MobileNetV3-Small, trained through the supernet's banks, learn as well
    as built alone: same batches, steps and seed; over the last 10 of 40 steps the loss ends at most the
    tolerance above the standalone network's. The banks start as the standalone layers do (He on all input
    channels x kernel for convolutions, Xavier for linear layers). With every 2-D bank He-initialised on its
    fan-in instead, Dynamic Shift-Max's coefficients saturate and M0's loss stays at 2.13 / 2.23 (bank seeds 0 / 1)
    against 1.48 alone; MobileNetV3, with Dynamic Shift-Max nowhere, learnt either way."""
    from lwnas.train import data

    name, tolerance = NAMED_SUBNET[supernet.space.name]
    spec = lwnas.get_config(name).replace(num_classes=10)  # fed 32 px images
    images = data.synthetic(640, 32, seed=0)
    view = data.Augmented(images, 32, train=False)
    pixels = np.stack([view[i][0] for i in range(len(view))])
    paddle.seed(0)
    alone = _training_losses(lwnas.build(spec), pixels, images.labels)
    supernet.activate(spec)
    shared = _training_losses(supernet, pixels, images.labels)
    assert alone[-10:].mean() < alone[:5].mean() - 0.5  # the data is learnable in these steps
    assert shared[-10:].mean() <= alone[-10:].mean() + tolerance


def test_sandwich_steps_under_a_tight_budget_draw_networks_that_fit(supernet):
    """A budget of three times the smallest network (6.2M MAdds in `micro`, where 0.04% of uniform draws fit):
    every step draws its random subnets under it, shrunk toward it (uniform redraws gave up within the first
    steps)."""
    from lwnas.model.cost import count
    from lwnas.supernet.train import _check_budget

    budget = 3 * count(supernet.smallest).macs
    sandwich = Sandwich(random_subnets=2, budget=budget, distill=False)
    _check_budget(supernet, sandwich)
    loss_fn = sandwich_loss(supernet, sandwich, seed=0, label_smoothing=0.0)
    images, labels = paddle.randn([2, 3, 32, 32]), paddle.to_tensor([0, 1])
    drawn = []
    for step in range(6):
        loss_fn(supernet, images, labels, 0, step)
        drawn.append(count(supernet._active.spec).macs)  # the last subnet of the step is a random one
    assert all(macs <= budget for macs in drawn) and len(set(drawn)) > 1


def test_largest_and_smallest_are_the_extremes_of_the_space(supernet):
    space = supernet.space
    largest, smallest = lwnas.count(supernet.largest).macs, lwnas.count(supernet.smallest).macs
    for spec in sample_specs(space, 40, seed=5, num_classes=10):
        assert smallest <= lwnas.count(spec).macs <= largest
    depths = {}
    for position in space.positions(supernet.largest)[:-1]:  # the head last
        slot, _, k = position.rpartition(".")
        depths[slot] = max(depths.get(slot, 0), int(k) + 1)
    for slot in list(space.stem) + list(space.stages):
        assert depths[slot.name] == max(slot.depths)


def test_a_network_outside_the_space_is_refused(supernet):
    outside = lwnas.get_config("fasternet_t0")
    with pytest.raises(SupernetError, match="not a network of space"):
        supernet.subnet(outside)


def test_a_sandwich_step_reaches_exactly_the_banks_it_used(tmp_path):
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(TINY_SPACE)
    supernet = Supernet(get_space(space_file), 4)
    loss = sandwich_loss(supernet, Sandwich(random_subnets=1), seed=0, label_smoothing=0.0)(
        supernet, paddle.randn([8, 3, 32, 32]), paddle.to_tensor(np.arange(8) % 4), 0, 0)
    loss.backward()
    reached = {name for name, p in supernet.named_parameters()
               if p.grad is not None and float(p.grad.abs().sum()) > 0}
    drawn = supernet.space.random_sample(np.random.default_rng((0, 0, 0)), 4).spec  # the step's random subnet
    used = {id(binding[2]) for spec in (supernet.largest, supernet.smallest, drawn)
            for binding in supernet.subnet(spec).bindings}
    assert reached == {name for name, p in supernet.named_parameters() if id(p) in used}
    assert len(reached) < len(list(supernet.parameters()))  # some banks belong to layouts none of the three used
    smallest = supernet.subnet(supernet.smallest)
    _, _, stem, cut, take = smallest.bindings[0]
    outside = ~cut.used(stem.shape, take(stem).shape)
    assert outside.any() and stem.grad.numpy()[outside].any()  # the largest subnet trains the rest of the stem


def test_killed_supernet_training_resumes_to_identical_weights(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    args = ["supernet", "train", "--space", "tiny.yaml", *ARGS]
    straight = run(*args, "--output", "straight", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    assert "(smallest " in straight.stdout
    kill_after_first_checkpoint([*args, "--output", "killed"], tmp_path, tmp_path / "killed")
    assert checkpoint.load(tmp_path / "killed" / checkpoint.LAST)["epoch"] < 3
    resumed = run(*args, "--output", "killed", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a = checkpoint.load(tmp_path / "straight" / checkpoint.LAST)
    b = checkpoint.load(tmp_path / "killed" / checkpoint.LAST)
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        assert np.array_equal(np.asarray(a["model"][key]), np.asarray(b["model"][key])), key

    other = run("supernet", "train", "--space", "tiny.yaml", "--random-subnets", "1", *ARGS, "--output", "killed",
                "--resume", cwd=tmp_path)
    assert other.returncode == 2 and "holds another run" in other.stderr


def test_two_process_data_parallel_supernet_training_keeps_the_banks_identical(tmp_path):
    """paddle.distributed.launch with 2 CPU processes: each trains on its own images, so the banks stay equal only
    if the gradients of the banks each step used are averaged (DataParallel's reducer refuses a supernet step)."""
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    tests = Path(__file__).parent
    result = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                             "--log_dir", str(tmp_path / "logs"), str(tests / "supernet_parallel_worker.py"),
                             str(tmp_path)], cwd=tests, capture_output=True, text=True, timeout=240)
    logs = "".join(p.read_text() for p in sorted((tmp_path / "logs").glob("*")) if p.is_file())
    assert result.returncode == 0, result.stderr[-2000:] + logs[-3000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    trained = [n for n in ranks[0].files if n.startswith("trained ")]
    assert len(trained) > 20 and sorted(trained) == sorted(n for n in ranks[1].files if n.startswith("trained "))
    for name in trained:
        assert np.array_equal(ranks[0][name], ranks[1][name]), name
    moved = [n for n in trained if not np.array_equal(ranks[0][n], ranks[0][n.replace("trained", "initial")])]
    assert 0 < len(moved) < len(trained)  # the banks the drawn subnets used, not the others


def _tiny_supernet(folder):
    """A one-epoch supernet of the tiny space in folder/sn (the space file in folder/tiny.yaml)."""
    (folder / "tiny.yaml").write_text(TINY_SPACE)
    trained = run("supernet", "train", "--space", "tiny.yaml", "--epochs", "1", "--train-subset", "64",
                  "--val-subset", "32", "--output", "sn", cwd=folder)
    assert trained.returncode == 0, trained.stderr


def _with_groups(spec, groups):
    """`spec` with every MicroNet block's `pw1_groups` set to `groups`."""
    data = spec.to_dict()
    for stage in data["stages"]:
        for block in stage["blocks"]:
            if block["type"] == "micro_block":
                block["pw1_groups"] = list(groups)
    return lwnas.ArchSpec.from_dict(data)


def test_a_separate_parameter_gives_each_value_its_own_banks_and_survives_the_checkpoint(tmp_path):
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(TINY_SPACE)
    space = get_space(space_file)
    spec = next(s for s in sample_specs(space, 20, seed=0, num_classes=4)
                if any(block.type == "micro_block" for _, block in s.blocks()))
    pair = [_with_groups(spec, groups) for groups in ((2, 2), (4, 4))]
    assert all(space.contains(s) for s in pair)

    def banks(supernet, s):
        return {id(binding[2]) for binding in supernet.subnet(s).bindings}

    shared, apart = Supernet(space, 4), Supernet(space, 4, ["micro_block.pw1_groups"])
    assert banks(shared, pair[0]) == banks(shared, pair[1])
    assert banks(apart, pair[0]) != banks(apart, pair[1]) and len(apart.banks) > len(shared.banks)
    apart.subnet(pair[1])(paddle.randn([2, 3, 32, 32]))  # every value has banks that fit it

    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    trained = run("supernet", "train", "--space", "tiny.yaml", "--epochs", "1", "--train-subset", "32",
                  "--val-subset", "16", "--output", "sn", "--separate", "micro_block.pw1_groups", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    loaded, state = load_supernet(tmp_path / "sn")
    assert loaded.separate == {"micro_block.pw1_groups"} and "separate micro_block.pw1_groups" in state["supernet"]
    assert set(loaded.state_dict()) == set(state["model"])
    wrong = run("supernet", "train", "--space", "tiny.yaml", "--separate", "micro_block.act", cwd=tmp_path)
    assert wrong.returncode == 2 and "micro_block.pw1_groups" in wrong.stderr and "Traceback" not in wrong.stderr


def test_a_split_starts_from_the_one_shot_weights_and_draws_only_its_sub_space(tmp_path):
    """Few-shot NAS's split: a supernet restricted to a sub-space, initialised from a trained one."""
    from lwnas.search.space_files import space_from_text
    from lwnas.supernet.train import train_supernet
    from lwnas.train.settings import TrainConfig

    _tiny_supernet(tmp_path)
    space = get_space(tmp_path / "tiny.yaml")
    sub = space_from_text(TINY_SPACE.replace("name: tiny", "name: tiny_8").replace("out: [8, 16]", "out: [8]"), "sub")
    config = TrainConfig(epochs=1, lr=1e-9, warmup_epochs=0, train_subset=32, val_subset=16, batch_size=16,
                         resolution=32)
    train_supernet(space, "synthetic", tmp_path / "split", config, Sandwich(random_subnets=1), within=sub,
                   init=tmp_path / "sn")
    (base, _), (split, state) = load_supernet(tmp_path / "sn"), load_supernet(tmp_path / "split")
    assert split.space.name == "tiny_8" and split.largest == sub.largest(10).spec
    assert "within tiny_8" in state["supernet"]
    assert all(s.blocks().__next__()[1].kwargs["out"] == 8 for s in (split.largest, split.smallest))
    for (name, trained), (_, started) in zip(split.state_dict().items(), base.state_dict().items()):
        assert np.allclose(trained.numpy(), started.numpy(), atol=1e-6), name  # lr ~0: still the one-shot weights
    other = space_from_text(TINY_SPACE.replace("out: [8, 16]", "out: [12]"), "not a sub-space")
    with pytest.raises(SupernetError, match="not a sub-space"):
        Supernet(space, 10).restrict(other)


def test_extract_writes_a_run_that_eval_and_train_init_take(tmp_path):
    _tiny_supernet(tmp_path)
    spec = get_space(tmp_path / "tiny.yaml").smallest(10).spec
    (tmp_path / "small.yaml").write_text(spec.to_yaml())
    extracted = run("supernet", "extract", "sn", "--arch", "small.yaml", "--data", "synthetic", "--output", "net",
                    cwd=tmp_path)
    assert extracted.returncode == 0, extracted.stderr
    assert "inherited top-1" in extracted.stdout

    from lwnas.train.checkpoint import load_trained

    supernet, _ = load_supernet(tmp_path / "sn")
    model, _, _ = load_trained(tmp_path / "net")
    subnet, written = supernet.subnet(spec), model.state_dict()
    statistics = [n for n in written if n.endswith(("_mean", "_variance"))]
    assert statistics and not any(np.array_equal(written[n].numpy(), np.ones(written[n].shape))
                                  for n in statistics if n.endswith("_variance"))  # recalibrated on the data
    subnet.net.set_state_dict({n: written[n] for n in statistics})  # the banks' weights, the extracted statistics
    subnet.eval()
    x = paddle.randn([4, 3, 32, 32])
    np.testing.assert_allclose(model(x).numpy(), subnet(x).numpy(), rtol=1e-5, atol=1e-5)  # the same network

    evaluated = run("eval", "--checkpoint", "net", "--data", "synthetic", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    started = run("train", "--arch", "small.yaml", "--init", "net", "--epochs", "1", "--train-subset", "32",
                  "--val-subset", "32", "--output", "retrained", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    wrong = run("train", "--arch", "micronet_m0", "--init", "net", "--epochs", "1", "--output", "x", cwd=tmp_path)
    assert wrong.returncode == 2 and "another architecture" in wrong.stderr and "Traceback" not in wrong.stderr
    refused = run("eval", "--checkpoint", "sn", "--data", "synthetic", cwd=tmp_path)
    assert refused.returncode == 2 and "supernet extract" in refused.stderr


def test_search_over_a_supernet_stores_trials_like_a_search_and_resumes(tmp_path):
    import optuna

    from lwnas.search.storage import trained_trials

    _tiny_supernet(tmp_path)
    search = ["search", "--space", "tiny.yaml", "--flops-budget", "1M", "--supernet", "sn", "--study", "s"]
    first = run(*search, "--trials", "5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run(*search, "--trials", "3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/runs/lwnas.db")
    done = trained_trials(study)
    assert len(done) == 8 and study.user_attrs["settings"]["supernet_epoch"] == 1
    space = get_space(tmp_path / "tiny.yaml")
    for trial in done:
        assert trial.user_attrs["latency_ms"] > 0
        assert space.spec_from_params(trial.params, 10).arch_hash == trial.user_attrs["arch_hash"]
    best = max(done, key=lambda t: t.user_attrs["top1"])  # its score is its inherited-weight top-1, as extracted
    extracted = run("supernet", "extract", "sn", "--arch", f"s:{best.number}", "--data", "synthetic", "--output",
                    "best", "--json", cwd=tmp_path)
    assert extracted.returncode == 0, extracted.stderr
    assert json.loads(extracted.stdout)["top1"] == pytest.approx(best.user_attrs["top1"], abs=1e-9)

    more = run("supernet", "train", "--space", "tiny.yaml", "--output", "sn", "--resume", "--epochs", "2", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    changed = run(*search, "--trials", "1", cwd=tmp_path)
    assert changed.returncode == 2 and "supernet_epoch" in changed.stderr
    other_space = run("search", "--space", "micro", "--flops-budget", "12M", "--supernet", "sn", cwd=tmp_path)
    assert other_space.returncode == 2 and "another space" in other_space.stderr


SHUFFLED_SPACE = """
name: shuffled
resolution: 32
stem:
  - name: stem
    stride: 2
    blocks:
      - {type: conv_bn_act, out: [8], kernel: 3}
stages:
  - name: s1
    depth: 2
    stride: 2
    blocks:
      - {type: micro_block, out: [16, 24], kernel: [3], expand: [[1, 2]], pw1_groups: [[2, 2]],
         pw2_groups: [[2, 2], [4, 4]], dy: [[0, 0, 0]]}
head:
  - {type: classifier, hidden: [0]}
"""


def test_shuffle_order_is_where_paddle_moves_each_channel():
    for channels, groups in ((12, 3), (16, 4), (24, 2)):
        moved = shuffle_channels(paddle.arange(channels, dtype="float32").reshape([1, channels, 1, 1]), groups)
        assert np.array_equal(moved.flatten().numpy().astype(int), shuffle_order(channels, groups))


def test_a_channel_reaches_the_next_block_at_the_bank_column_of_the_filter_that_made_it(tmp_path):
    """Zero every input column of the second block's first conv but one: only the first block's filter of that
    identity may then reach its output, whatever the first block's width and shuffle groups (with leading windows
    the shuffle between them hands that column another filter in every subnet but the largest)."""
    (tmp_path / "shuffled.yaml").write_text(SHUFFLED_SPACE)
    supernet = Supernet(get_space(tmp_path / "shuffled.yaml"), 4)
    x = paddle.randn([2, 3, 32, 32])
    for spec in sample_specs(supernet.space, 12, seed=0, num_classes=4):
        subnet = supernet.subnet(spec)
        subnet.eval()
        first, second = subnet.net.layers[1], subnet.net.layers[2]
        producer = [step for step in first.body.steps if isinstance(step, paddle.nn.Conv2D)][-1]
        consumer = second.body.steps[0]
        (_, _, made, made_cut, _), = [b for b in subnet.bindings if b[0] is producer and b[1] == "weight"]
        (_, _, read, read_cut, _), = [b for b in subnet.bindings if b[0] is consumer and b[1] == "weight"]
        identity = int(made_cut.rows[len(made_cut.rows) // 2])
        saved = read.numpy()
        only = np.zeros_like(saved)
        only[:, identity] = saved[:, identity]
        read.set_value(only)
        seen = []
        hook = consumer.register_forward_post_hook(lambda layer, inputs, output: seen.append(output))
        subnet(x)
        hook.remove()
        made.clear_gradient()
        seen[0].sum().backward()
        rows = np.flatnonzero(np.abs(made.grad.numpy()).reshape(made.shape[0], -1).sum(axis=1))
        read.set_value(saved)
        made.clear_gradient()
        assert rows.tolist() == [identity], spec.name
