"""What a new user hit in a first hour on an image folder: commands that continue from a study or a checkpoint
take its data set, training takes the study's schedule, refusals and mistakes get one line that says what would
be right, nothing is overwritten silently."""
import json
import subprocess
import sys

import numpy as np
import optuna
import pytest
from PIL import Image

from lwnas.cli import main


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lwnas.cli", *args], capture_output=True, text=True, cwd=cwd)


def _digits(root, per_class=24):
    """A folder of three class folders (no train/ or val/ split: lwnas holds the validation images out)."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("one", "two", "three")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(70 * label + 40, 25, (28, 28, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_study_trial_is_trained_on_the_studys_data_and_schedule_and_evaluated_on_it(tmp_path):
    data = _digits(tmp_path / "digits")
    searched = run("search", "--flops-budget", "12M", "--trials", "1", "--data", str(data), "--epochs", "2",
                   "--batch-size", "16", "--latency-runs", "2", "--study", "d", cwd=tmp_path)
    assert searched.returncode == 0, searched.stderr
    trial = optuna.load_study(study_name="d", storage=f"sqlite:///{tmp_path}/runs/lwnas.db").best_trial.number
    trained = run("train", "--arch", f"d:{trial}", "--output", "net", "--batch-size", "16", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "net" / "classes.json").read_text()) == ["one", "three", "two"]  # not class0..
    config = json.loads((tmp_path / "net" / "config.json").read_text())
    assert (config["epochs"], config["resolution"]) == (2, 32)  # the study's schedule, not 100 epochs at 224 px
    evaluated = run("eval", "--checkpoint", "net", "--json", cwd=tmp_path)  # no --data: the checkpoint's
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["data"] == str(data) and result["split"] == "val" and result["images"] == 6  # 2 of 24 per class
    no_test = run("eval", "--checkpoint", "net", "--split", "test", cwd=tmp_path)
    assert no_test.returncode == 2 and "has no test split" in no_test.stderr
    shown = run("runs", "show", "d", cwd=tmp_path)
    assert f"data {data}; 2 epochs at 32 px, batch 16" in shown.stdout and "pruner sha" in shown.stdout


def test_training_on_small_images_defaults_to_their_resolution_not_224(tmp_path):
    data = _digits(tmp_path / "digits", per_class=4)  # 28 x 28 images
    trained = run("train", "--arch", "micronet_m0", "--data", str(data), "--epochs", "1", "--batch-size", "8",
                  "--output", "net", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "net" / "config.json").read_text())["resolution"] == 32
    assert "epoch 1/1: loss" in trained.stdout and "left" in trained.stdout  # each epoch says how long is left


def test_mistyped_flags_get_the_option_meant(capsys):
    for argv, hint in ((["search", "--flops-budget", "12M", "--trails", "3"], "did you mean --trials?"),
                       (["search", "--flop-budget", "12M"], "--flop-budget is not an option; did you mean "
                                                            "--flops-budget?"),
                       (["train", "--arch", "micronet_m0", "--epoch", "3"], "did you mean --epochs?")):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit.value.code == 2 and len(err) == 1 and hint in err[0], err


def test_a_negative_budget_is_a_budget_error(tmp_path):
    result = run("search", "--flops-budget", "-5M", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["lwnas: error: invalid --flops-budget '-5M': expected a positive "
                                                  "number with an optional K/M/G suffix and no space between them, "
                                                  "e.g. 12M, 12e6, 0.3G"]


def test_spaces_are_listed_with_their_madds_range(capsys):
    assert main(["spaces", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"micro", "mobile", "shuffle", "fast", "mobileone"} <= set(rows)
    assert rows["micro"]["smallest_madds"] < 12e6 < rows["micro"]["largest_madds"]


def test_train_help_names_every_recipe(capsys):
    from lwnas.train.recipes import RECIPES

    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert len(RECIPES) >= 3 and all(name in text for name in RECIPES)


def test_export_refuses_to_overwrite_and_names_its_files(tmp_path):
    trained = run("train", "--arch", "micronet_m0", "--output", "net", "--epochs", "1", "--train-subset", "64",
                  "--val-subset", "32", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    refused = run("export", "--checkpoint", "net", "--output", "out", cwd=tmp_path)
    assert refused.returncode == 2 and "pass --force" in refused.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mine.txt"]
    forced = run("export", "--checkpoint", "net", "--output", "out", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "model.pdiparams" in forced.stdout and "preprocess.json" in forced.stdout


def test_help_and_usage_errors_do_not_load_paddle():
    """`lwnas --help`, a command's help and a usage error answer without importing Paddle (2.5 s of the 2.5 s
    `lwnas --help` used to take)."""
    code = ("import sys\nfrom lwnas.cli import main\n"
            "for argv in (['--help'], ['search', '--help'], ['search', '--trails', '3']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('paddle' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr
