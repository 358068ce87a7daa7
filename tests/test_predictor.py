"""The latency table: blocks timed once, networks predicted as a fitted sum, the file round-trips, and a search
can use it in place of timing every trial."""
import json
import subprocess
import sys

import optuna
import pytest

from lwnas.deploy.predictor import LatencyTable, block_rows, build_table, sample_specs
from lwnas.errors import LwnasError
from lwnas.search.results import show_study
from lwnas.search.settings import SearchSettings
from lwnas.search.space_files import get_space
from lwnas.search.study import Search
from lwnas.train.settings import TrainConfig


@pytest.fixture(scope="module")
def table_and_specs(tmp_path_factory):
    specs = sample_specs(get_space("micro"), 3, seed=0, num_classes=10, budget=6_000_000)
    table = build_table(specs, engine="eager", runs=5, note=lambda line: None)
    path = tmp_path_factory.mktemp("table") / "table.json"
    table.save(path)
    return table, specs, path


def test_the_table_round_trips_and_predicts_the_networks_it_timed(table_and_specs):
    table, specs, path = table_and_specs
    again = LatencyTable.load(path)
    assert len(table.blocks) == len({row.key for spec in specs for row in block_rows(spec)})  # each block once
    for spec, (block_sum, measured) in zip(specs, table.networks):
        assert again.coverage(spec) == 1.0
        assert again.predict(spec) == pytest.approx(table.scale * block_sum + table.overhead, rel=1e-9)
        # Stated tolerance: a two-parameter fit to three networks timed once each on a busy 2-core CPU.
        assert abs(again.predict(spec) - measured) / measured < 0.5


def test_unseen_blocks_are_estimated_from_their_size():
    """Blocks of one type whose time grows linearly with MAdds (and not with the map sizes): an unseen one is
    estimated on that line."""
    spec = sample_specs(get_space("micro"), 1, seed=1, num_classes=10)[0]
    kind = block_rows(spec)[0].type
    table = LatencyTable("eager", 1, 1, "cpu")
    for i, (inputs, outputs) in enumerate([(5, 2), (1, 7), (4, 1), (2, 8), (6, 2), (3, 8)], 1):
        table.blocks[f"k{i}"] = 0.5 + 1e-6 * (i * 1e5)
        table.features[f"k{i}"] = [kind, i * 1e5, inputs * 1e3, outputs * 1e3]
    table.fit()
    rows = [row for row in block_rows(spec) if row.type == kind]
    assert rows and table.coverage(spec) == 0.0
    for row in rows:
        assert table.block_ms(row) == pytest.approx(0.5 + 1e-6 * row.features[0], rel=1e-6)


def test_a_bad_table_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LwnasError, match="not a latency table"):
        LatencyTable.load(bad)
    bad.write_text(json.dumps({"version": 99}))
    with pytest.raises(LwnasError, match="build it with `lwnas latency table`"):
        LatencyTable.load(bad)
    result = subprocess.run([sys.executable, "-m", "lwnas.cli", "search", "--latency-engine", "predict:nowhere.json"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "no latency table at 'nowhere.json'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_search_on_predicted_latency_times_its_front_for_real(tmp_path, table_and_specs, capsys):
    table, _, path = table_and_specs
    settings = SearchSettings(budget=12_000_000, trials=2, objective="accuracy-latency", study="predicted",
                              runs_dir=str(tmp_path / "runs"), latency_runs=3, latency_engine=f"predict:{path}",
                              proxy=TrainConfig(epochs=1, batch_size=32, train_subset=64, val_subset=32))
    search = Search(settings)
    study = search.run()
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trained) == 2
    for trial in trained:
        spec = search.space.spec_from_params(trial.params, 10)
        assert trial.user_attrs["latency_ms"] == pytest.approx(table.predict(spec), rel=1e-9)
    measured = study.user_attrs["front_latency_measured"]
    assert measured and all(ms > 0 for ms in measured.values())
    assert set(measured) == {str(t.number) for t in study.best_trials}
    show_study("predicted", None, str(tmp_path / "runs"))
    header, *rows = capsys.readouterr().out.split("Pareto front (top-1 vs latency):\n")[1].splitlines()[:3]
    assert header.split()[-2:] == ["latency_ms", "measured_ms"]
    assert f"{measured[rows[0].split()[0]]:.2f}" == rows[0].split()[-1]  # predicted beside measured
    other = LatencyTable.load(path)
    other.overhead += 1.0  # another table: the study's latencies would not be comparable
    other_path = tmp_path / "other.json"
    other.save(other_path)
    settings.latency_engine = f"predict:{other_path}"
    with pytest.raises(LwnasError, match="latency_table_sha256: changed"):
        Search(settings).open_study()
