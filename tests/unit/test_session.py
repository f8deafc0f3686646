"""The study's state rules and budget accounting, driven directly (no Ray, no training)."""

from __future__ import annotations

import json

import pytest

from tests.clock import Clock
from tuner.config.block import load_block
from tuner.config.space import build_space
from tuner.study.budget import Budget, Ledger
from tuner.study.session import StudySession
from tuner.study.store import StudyStore


@pytest.fixture()
def make_session(make_block, tmp_path):
    def make(budget=None, changes=None, secrets=()):
        budget = budget or Budget("trials", 10)
        block = load_block(make_block(changes))
        clock = Clock()
        store = StudyStore.open(f"sqlite:///{tmp_path / 'tuner.db'}", "s", secrets=secrets)
        session = StudySession(store, block, build_space(block), Ledger(budget), tmp_path / "trials", clock=clock)
        return session, clock

    return make


def _trial(session, number):
    return next(t for t in session.store.trials() if t.number == number)


def test_complete_trial_gets_its_final_value_and_attrs(make_session):
    session, clock = make_session()
    ticket = session.next_trial()
    assert ticket.paths.root.is_dir() and ticket.paths.root.name == "0000"
    session.on_eval(ticket.number, 3.0, samples=64)
    clock.now += 42
    outcome = session.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": 1.5, "wall_s": 41.0})
    t = _trial(session, ticket.number)
    assert (outcome.state, t.state.name, t.value) == ("COMPLETE", "COMPLETE", 1.5)
    assert t.intermediate_values == {64: 3.0}
    assert t.user_attrs["exit_class"] == "ok" and t.user_attrs["trial_dir"] == str(ticket.paths.root)
    assert t.user_attrs["global_batch_size"] == ticket.global_batch_size
    assert session.store.attrs()["spent"]["trials_used"] == 1


@pytest.mark.parametrize(
    ("final", "state", "exit_class"),
    [
        ({"final": True, "exit_class": "diverged", "reason": "loss became nan"}, "PRUNED", "diverged"),
        ({"final": True, "exit_class": "crashed", "reason": "OSError: x"}, "FAIL", "crashed"),
        ({"final": True, "exit_class": "timeout", "reason": "exceeded"}, "FAIL", "timeout"),
        (None, "PRUNED", "pruned"),  # Ray stopped it (the scheduler): never COMPLETE with a partial value
    ],
)
def test_state_rules(make_session, final, state, exit_class):
    session, _ = make_session()
    ticket = session.next_trial()
    session.on_eval(ticket.number, 4.0, samples=10)
    session.on_complete(ticket.number, final)
    t = _trial(session, ticket.number)
    assert (t.state.name, t.user_attrs["exit_class"]) == (state, exit_class)
    # Optuna's convention: a PRUNED trial shows its last intermediate value; a FAIL has none.
    assert t.value == (4.0 if state == "PRUNED" else None)


def test_worker_error_is_fail_crashed(make_session):
    session, _ = make_session()
    ticket = session.next_trial()
    session.on_complete(ticket.number, None, error="Traceback...\nValueError: boom")
    t = _trial(session, ticket.number)
    assert (t.state.name, t.user_attrs["exit_class"], t.user_attrs["reason"]) == ("FAIL", "crashed", "ValueError: boom")


def test_failed_trial_keeps_its_log_tail(make_session):
    session, _ = make_session()
    ticket = session.next_trial()
    ticket.paths.result.write_text(json.dumps({"log_tail": ["a", "OSError: no model"], "wall_s": 3}))
    session.on_complete(ticket.number, {"final": True, "exit_class": "crashed", "reason": "OSError: no model"})
    assert "OSError: no model" in _trial(session, ticket.number).user_attrs["log_tail"]


def test_oom_is_fail_plus_an_infeasible_marker_for_the_sampler(make_session):
    session, _ = make_session()
    ticket = session.next_trial()
    session.on_complete(ticket.number, {"final": True, "exit_class": "oom", "reason": "CUDA out of memory"})
    trials = session.store.trials()
    assert _trial(session, ticket.number).state.name == "FAIL"
    marker = trials[-1]
    assert marker.number != ticket.number and marker.state.name == "PRUNED"
    assert marker.params == ticket.params and marker.constraints == {"memory": 1.0}
    assert session.ledger.trials_used == 1  # the marker costs nothing


def test_budget_stop_is_pruned_budget(make_session):
    session, clock = make_session(Budget("wall", 60))
    ticket = session.next_trial()
    clock.now += 61
    assert session.budget_exhausted()
    session.on_complete(ticket.number, None)
    t = _trial(session, ticket.number)
    assert (t.state.name, t.user_attrs["exit_class"]) == ("PRUNED", "budget")
    assert session.next_trial() is None


def test_trial_budget_stops_handing_out_trials(make_session):
    session, _ = make_session(Budget("trials", 2))
    first, second = session.next_trial(), session.next_trial()
    assert first.number != second.number and session.next_trial() is None
    session.on_complete(first.number, {"final": True, "exit_class": "ok", "value": 1.0})
    assert session.next_trial() is None  # 2 of 2 spent (one still running)


def test_constraint_violations_are_not_run(make_session):
    # every batch choice (4 or 8) x accumulation (1 or 2) gives a global batch >= 4
    tunables = {"per_device_train_batch_size": {"choices": [4, 8]}, "gradient_accumulation_steps": {"choices": [1, 2]}}
    session, _ = make_session(changes={"evolving.global_batch_size": [1, 3], "evolving.tunable_params": tunables})
    with pytest.raises(Exception, match="broke the space's constraints"):
        session.next_trial()
    trials = session.store.trials()
    assert trials and all(t.state.name == "PRUNED" and t.user_attrs["exit_class"] == "infeasible" for t in trials)
    assert all(t.constraints == {"global_batch_size": 1.0} for t in trials)
    assert not any((session.trials_dir / "s").glob("0*"))  # no workspace for trials never run


def test_secrets_never_reach_the_study(make_session, monkeypatch):
    session, _ = make_session(secrets=("wandb-key-123456",))
    ticket = session.next_trial()
    ticket.paths.result.write_text(json.dumps({"log_tail": ["token wandb-key-123456"]}))
    session.on_complete(ticket.number, {"final": True, "exit_class": "crashed", "reason": "auth wandb-key-123456"})
    dump = json.dumps([t.user_attrs for t in session.store.trials()]) + json.dumps(session.store.attrs())
    assert "wandb-key-123456" not in dump


def test_study_records_where_each_wandb_run_lives(make_session):
    session, _ = make_session(changes={"experiment.wandb_mode": "offline"})
    ticket = session.next_trial()
    attrs = _trial(session, ticket.number).user_attrs
    assert attrs["wandb_run_id"] == f"s-{ticket.number:04d}" and attrs["wandb_group"] == "s"
    assert attrs["wandb_dir"] == str(ticket.paths.root / "wandb") and attrs["wandb_mode"] == "offline"


def test_grid_exhaustion_ends_the_study_without_running_a_point_twice(make_block, tmp_path):
    """GridSampler stops the study with `study.stop()`, which raises outside optimize(), and then
    re-runs points: tuner ends the study itself when every point has started."""
    from tuner.study.samplers import make_sampler

    block = load_block(make_block({"evolving.tunable_params": {"learning_rate": {}}}))
    space = build_space(block)
    store = StudyStore.open(f"sqlite:///{tmp_path / 'g.db'}", "g", sampler=make_sampler("grid", 0, space))
    session = StudySession(store, block, space, Ledger(Budget("trials", 10)), tmp_path / "trials", clock=Clock())
    ran = []
    while (ticket := session.next_trial()) is not None:
        ran.append(ticket.params["learning_rate"])
        session.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": 1.0})
    assert len(ran) == 4 and len(set(ran)) == 4  # the 4-point grid, each point once
    assert session.space_exhausted and [t.state.name for t in store.trials()] == ["COMPLETE"] * 4


def test_pruning_state_lives_in_the_study_so_a_resumed_or_joined_driver_prunes_alike(make_block, tmp_path):
    """The first driver's trials build the rungs; a second session on the same study (a resume, or
    a joined driver) prunes a clearly bad trial by those rungs, and keeps a good one."""
    from tuner.orchestrate.plan import SchedulerSettings

    block = load_block(make_block())
    space = build_space(block)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    rule = SchedulerSettings.for_study("asha", max_samples=900)  # rungs at 11 and 33 samples (of 900)

    def driver() -> StudySession:
        store = StudyStore.open(url, "p", pruner=rule.pruner())
        return StudySession(store, block, space, Ledger(Budget("trials", 20)), tmp_path / "trials", clock=Clock())

    first = driver()
    for value in (1.2, 1.1, 1.0):  # each the best so far at the first rung: each goes on
        ticket = first.next_trial()
        first.on_eval(ticket.number, value, samples=rule.grace_period)
        assert not first.should_prune(ticket.number)
        first.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": value})
    second = driver()  # a fresh driver: nothing in its memory, the rungs are in the study
    bad, good = second.next_trial(), second.next_trial()
    second.on_eval(bad.number, 50.0, samples=rule.grace_period)
    second.on_eval(good.number, 0.5, samples=rule.grace_period)
    assert second.should_prune(bad.number) and not second.should_prune(good.number)


def test_trials_stopped_early_free_the_budget_they_did_not_spend(make_session):
    """A trial budget counts full-trial equivalents: two trials pruned at a ninth and a third of their
    training leave room for another whole trial under a budget of 2."""
    session, _ = make_session(Budget("trials", 2))
    first = session.next_trial()
    session.on_eval(first.number, 3.0, samples=100, planned=900)
    second = session.next_trial()
    assert session.next_trial() is None  # two running trials are reserved in full
    session.on_complete(first.number, None)  # pruned at 100 of 900 samples
    session.on_eval(second.number, 2.0, samples=300, planned=900)
    session.on_complete(second.number, None)  # pruned at 300 of 900
    assert session.gate.spent() == pytest.approx(400 / 900)
    third = session.next_trial()
    assert third is not None
    assert session.next_trial() is None  # 1.44 with the third running: no whole trial left
    session.on_complete(third.number, {"final": True, "exit_class": "ok", "value": 1.0})
    assert session.store.attrs()["spent"]["trials_used"] == pytest.approx(1 + 400 / 900, abs=1e-3)
