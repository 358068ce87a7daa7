"""One encoding: a trained trial's Optuna parameters name exactly its network (channel repairs are part of the
decoding). With --shrink, an over-budget draft is rejected and its shrunk network queued as a trial of its own."""
import optuna
import pytest

from lwnas.errors import SpecError
from lwnas.model.cost import count
from lwnas.search.settings import SearchSettings
from lwnas.search.space_files import get_space
from lwnas.search.study import Search
from lwnas.train.settings import TrainConfig


def _draw_many(tmp_path, budget, samples, sampler, shrink=False):
    """`samples` asks of the search's own sampling step on a real SQLite study; trials that pass it are told a
    value that depends on the network (as training would), the rest are pruned as the search prunes them."""
    settings = SearchSettings(space="micro", budget=budget, runs_dir=str(tmp_path / "runs"), study=f"enc{budget}",
                              sampler=sampler, shrink=shrink, proxy=TrainConfig(train_subset=32, val_subset=16))
    search = Search(settings)
    search.load_data()
    study = search.open_study()
    drawn = {}
    for _ in range(samples):
        trial = study.ask()
        try:
            spec = search.draw(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        drawn[trial.number] = spec
        study.tell(trial, float(spec.stages[-1].blocks[0].kwargs.get("out", 0)))
    return search, study, drawn


@pytest.mark.parametrize("budget, samples", [(6_000_000, 300), (12_000_000, 200), (24_000_000, 120)])
def test_every_accepted_trials_parameters_build_exactly_its_network(tmp_path, budget, samples):
    """Samples per budget: enough for two of the sampler's own drafts that needed a channel repair (at 6M nearly
    every draft is over the budget, and a shrunk network's queued parameters need none)."""
    search, study, drawn = _draw_many(tmp_path, budget, samples, "random", shrink=True)
    trials = {t.number: t for t in study.get_trials()}
    assert len(drawn) >= 20 and search.stats["shrunk"] >= 20  # queued shrunk networks, and the sampler's own
    space, classes = search.space, len(search.train_set.classes)
    repaired = 0
    for number, spec in drawn.items():
        trial = trials[number]
        rebuilt = space.spec_from_params(trial.params, classes)
        assert rebuilt.arch_hash == spec.arch_hash == trial.user_attrs["arch_hash"]
        assert count(rebuilt).macs == trial.user_attrs["madds"] <= budget  # recounted, not copied
        repaired += space.materialize(space.suggest(trial), classes).repaired > 0
    assert repaired >= 2  # decoding repaired channels for these, and the parameters still name the network
    for trial in trials.values():  # a shrunk draft is infeasible for the sampler and its network is queued
        if "shrunk to" in trial.user_attrs.get("rejected", ""):
            assert trial.state == optuna.trial.TrialState.PRUNED and trial.constraints["over_budget"] > 0


def test_tpe_search_trains_its_own_samples(tmp_path):
    search, study, drawn = _draw_many(tmp_path, 12_000_000, 60, "tpe")
    assert len(drawn) >= 15 and search.stats["shrunk"] == 0  # TPE learns the budget: no pile of rejections
    space, repaired = search.space, 0
    for number, spec in drawn.items():
        trial = study.trials[number]
        assert "shrunk_from" not in trial.user_attrs  # the sampler's own parameters, trained as drawn
        assert space.spec_from_params(trial.params, 10).arch_hash == spec.arch_hash
        repaired += space.materialize(space.suggest(trial), 10).repaired > 0
    assert repaired >= 5


def test_parameters_that_are_not_a_point_of_the_space_are_refused():
    space = get_space("micro")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    sample = space.sample(study.ask(), 12_000_000, num_classes=10)
    params = sample.params
    assert space.spec_from_params(params, 10).arch_hash == sample.spec.arch_hash
    with pytest.raises(SpecError, match="s3.depth: missing"):
        space.spec_from_params({k: v for k, v in params.items() if k != "s3.depth"}, 10)
    with pytest.raises(SpecError, match="not among"):
        space.spec_from_params({**params, "s1.depth": 7}, 10)
    with pytest.raises(SpecError, match="not a parameter"):
        space.spec_from_params({**params, "s9.depth": 1}, 10)
    while True:  # a draft whose channel settings do not fit decodes to the repaired network
        trial = study.ask()
        sample = space.sample(trial, None, num_classes=10)
        if sample.repaired:
            break
    assert sample.params != trial.params
    assert space.spec_from_params(trial.params, 10).arch_hash == space.spec_from_params(sample.params, 10).arch_hash \
        == sample.spec.arch_hash
