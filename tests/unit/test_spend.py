"""Spend is exact: increments in the study shared by every driver, charged while trials run, from
their actual start; `tune start` again does not add to a budget."""

from __future__ import annotations

import os

import pytest

from tests.clock import Clock
from tuner.config.block import load_block
from tuner.config.space import build_space
from tuner.study.budget import Budget, Ledger
from tuner.study.session import StudySession
from tuner.study.shape import RunShape
from tuner.study.store import StudyStore


@pytest.fixture()
def drivers(make_block, tmp_path):
    """Sessions (drivers) of one study, sharing a GPU-hour budget and one clock."""
    block = load_block(make_block())
    clock = Clock(1_000_000.0)
    url = f"sqlite:///{tmp_path / 'tuner.db'}"

    def make(gpus: int = 2) -> StudySession:
        store = StudyStore.open(url, "s")
        ledger = Ledger(Budget("gpu", 3600.0))
        return StudySession(
            store,
            block,
            build_space(block),
            ledger,
            tmp_path / "trials",
            shape=RunShape(gpus_per_trial=gpus),
            clock=clock,
        )

    return make, clock


def _start(session, clock, *, queued_s: float = 0.0):
    ticket = session.next_trial()
    clock.now += queued_s  # waiting for resources: no GPU time
    ticket.paths.placement.write_text("{}")
    os.utime(ticket.paths.placement, (clock.now, clock.now))  # the worker started the trial now
    return ticket


def test_running_trials_are_charged_at_each_heartbeat_from_their_actual_start(drivers):
    make, clock = drivers
    session = make(gpus=2)
    ticket = _start(session, clock, queued_s=100.0)
    clock.now += 30
    session.budget_exhausted()  # the heartbeat
    spent = session.store.attrs()["spent"]
    assert spent["gpu_s"] == pytest.approx(30 * 2)  # 30 s on 2 GPUs; the 100 s queued are not charged
    # A driver killed now has lost nothing charged: the study holds it.
    assert StudyStore.open(session.store.url, "s", create=False).attrs()["spent"]["gpu_s"] == pytest.approx(60)
    clock.now += 5
    session.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": 1.0, "wall_s": 35.0})
    assert session.store.attrs()["spent"]["gpu_s"] == pytest.approx(35 * 2)
    assert session.store.attrs()["spent"]["durations"] == [35.0]


def test_two_drivers_add_to_one_spend_instead_of_overwriting_it(drivers):
    make, clock = drivers
    first, second = make(gpus=1), make(gpus=1)
    a, b = _start(first, clock), _start(second, clock)
    clock.now += 40
    first.on_complete(a.number, {"final": True, "exit_class": "ok", "value": 1.0, "wall_s": 40.0})
    clock.now += 20
    second.on_complete(b.number, {"final": True, "exit_class": "ok", "value": 2.0, "wall_s": 60.0})
    spent = first.store.attrs()["spent"]
    assert spent["gpu_s"] == pytest.approx(40 + 60)  # not the last writer's 60
    assert sorted(spent["durations"]) == [40.0, 60.0]
    assert second.ledger.gpu_s == pytest.approx(100) and second.gate.spent() == pytest.approx(100)


def test_the_budget_stops_a_driver_that_sees_another_drivers_spend(drivers):
    make, clock = drivers
    first, second = make(gpus=1), make(gpus=1)
    ticket = _start(first, clock)
    clock.now += 3500
    first.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": 1.0, "wall_s": 3500.0})
    second.gate.tick(force=True)  # its heartbeat reads the study's spend
    assert not second.gate.can_start()  # 3500 of 3600 GPU-s spent, a trial is expected to take 3500


def test_tune_start_again_does_not_add_to_the_budget_and_resume_does(make_block, tmp_path):
    from tuner.errors import ConfigError
    from tuner.orchestrate.options import StartOptions
    from tuner.orchestrate.prepare import prepare_study

    block = load_block(make_block())
    options = StartOptions(budget="3", study="b", storage=f"sqlite:///{tmp_path / 'tuner.db'}", trials_dir=tmp_path)

    def budget_after(o: StartOptions, *, resume: bool = False) -> Budget:
        prepared = prepare_study(None if resume else block, o, must_exist=resume)
        prepared.lease.release()
        return prepared.budget

    assert budget_after(options) == Budget("trials", 3)
    assert budget_after(options) == Budget("trials", 3)  # the same command again: not 6
    with pytest.raises(ConfigError, match=r"already has a budget of 3 trials; `tune start` does not change it"):
        budget_after(StartOptions(**{**vars(options), "budget": "5"}))
    assert budget_after(StartOptions(**{**vars(options), "budget": "2"}), resume=True) == Budget("trials", 5)
