"""The study storage, run against every backend (SQLite and the local PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.storage import BACKENDS, storage_url, unique_name
from tuner.errors import ConfigError, StorageError
from tuner.redact import redact_url
from tuner.study.storage import study_names
from tuner.study.store import StudyStore


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    return storage_url(request.param, tmp_path)


def test_ask_report_tell_and_attrs_round_trip(url):
    from optuna.distributions import FloatDistribution

    name = unique_name("store")
    store = StudyStore.open(url, name, secrets=("top-secret-9",))
    number, params = store.ask({"learning_rate": FloatDistribution(1e-5, 1e-3, log=True)})
    store.report(number, 2.5, step=100)
    store.report(number, 2.1, step=200)
    store.tell(number, "COMPLETE", 2.0, attrs={"exit_class": "ok", "log": "key=top-secret-9"})
    store.set_attrs({"spent": {"finished_trials": 1}, "note": "top-secret-9 leaked?"})

    again = StudyStore.open(url, name, create=False)
    (trial,) = again.trials()
    assert trial.state.name == "COMPLETE" and trial.value == 2.0 and trial.params == params
    assert trial.intermediate_values == {100: 2.5, 200: 2.1}
    assert trial.user_attrs == {"exit_class": "ok", "log": "key=***"}
    assert again.attrs()["note"] == "*** leaked?" and again.best().number == number
    assert name in study_names(url)


def test_pruned_and_failed_states(url):
    from optuna.distributions import IntDistribution

    store = StudyStore.open(url, unique_name("states"))
    dist = {"num_train_epochs": IntDistribution(1, 5)}
    pruned, _ = store.ask(dist)
    failed, _ = store.ask(dist)
    store.tell(pruned, "PRUNED", 9.9)  # a partial value is never recorded as the trial's value
    store.tell(failed, "FAIL", attrs={"exit_class": "oom"})
    by_number = {t.number: t for t in store.trials()}
    assert by_number[pruned].state.name == "PRUNED" and by_number[pruned].value is None
    assert by_number[failed].state.name == "FAIL" and by_number[failed].user_attrs["exit_class"] == "oom"
    assert store.best() is None


def test_infeasible_marker_carries_a_constraint(url):
    from optuna.distributions import CategoricalDistribution

    store = StudyStore.open(url, unique_name("infeasible"))
    dist = {"per_device_train_batch_size": CategoricalDistribution([1, 2, 4, 8])}
    number, params = store.ask(dist)
    store.tell(number, "FAIL", attrs={"exit_class": "oom"})
    store.add_infeasible(params, dist, {"exit_class": "infeasible", "marker_for": number}, constraint="memory")
    marker = store.trials()[-1]
    assert marker.state.name == "PRUNED" and marker.params == params
    assert marker.constraints == {"memory": 1.0} and marker.user_attrs["marker_for"] == number


def test_missing_study_is_a_user_error(url):
    with pytest.raises(ConfigError, match="tune status"):
        StudyStore.open(url, unique_name("absent"), create=False)


def test_unreachable_database_names_url_without_password():
    with pytest.raises(StorageError) as info:
        StudyStore.open("postgresql+psycopg://bob:hunter2@127.0.0.1:1/nope?connect_timeout=2", "x")
    text = str(info.value)
    assert "hunter2" not in text and "bob:***@127.0.0.1:1/nope" in text and "Fix:" in text


def test_redact():
    assert redact_url("postgresql+psycopg://u:pw@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


@pytest.mark.parametrize("sampler", ["tpe", "gp", "random", "grid", "cmaes"])
def test_every_sampler_proposes_points_inside_the_space(make_block, tmp_path, sampler):
    from tuner.config.block import load_block
    from tuner.config.space import build_space
    from tuner.study.samplers import make_sampler

    space = build_space(load_block(make_block()))
    store = StudyStore.open(f"sqlite:///{tmp_path / 's.db'}", "s", sampler=make_sampler(sampler, 3, space))
    for i in range(4):
        number, params = store.ask(space.distributions())
        assert all(space.params[k].contains(v) for k, v in params.items()), params
        store.tell(number, "COMPLETE", float(i))


def test_unknown_sampler_is_a_user_error(make_block):
    from tuner.config.block import load_block
    from tuner.config.space import build_space
    from tuner.study.samplers import make_sampler

    with pytest.raises(ConfigError, match="--sampler"):
        make_sampler("bayes", 0, build_space(load_block(make_block())))


def test_startup_trials_default_to_a_quarter_of_a_trial_budget(make_block):
    from tuner.config.block import load_block
    from tuner.config.space import build_space
    from tuner.study.budget import Budget
    from tuner.study.samplers import default_startup_trials, make_sampler

    assert [default_startup_trials(Budget("trials", n)) for n in (4, 12, 20, 40, 400)] == [3, 3, 5, 10, 10]
    assert default_startup_trials(Budget("wall", 3600)) == 10
    space = build_space(load_block(make_block()))
    assert make_sampler("tpe", 0, space, 4)._n_startup_trials == 4
    assert make_sampler("gp", 0, space, 4)._n_startup_trials == 4
