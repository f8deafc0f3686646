from __future__ import annotations

import pytest

from tuner.errors import ConfigError
from tuner.study.budget import PLANNED_SAMPLES, Budget, Ledger, parse_budget, trial_share


@pytest.mark.parametrize(
    ("text", "kind", "amount"),
    [
        ("20", "trials", 20),
        ("1", "trials", 1),
        ("90m", "wall", 5400),
        ("8h", "wall", 28800),
        ("1h30m", "wall", 5400),
        ("45s", "wall", 45),
        ("2h5m10s", "wall", 7510),
        ("0.5h", "wall", 1800),
        ("16gpu-h", "gpu", 57600),
        ("0.25gpu-h", "gpu", 900),
        ("4 gpu-hours", "gpu", 14400),
        (" 3 ", "trials", 3),
    ],
)
def test_parse_budget(text, kind, amount):
    assert parse_budget(text) == Budget(kind, float(amount))


@pytest.mark.parametrize("text", ["", "0", "abc", "-5", "10x", "0m", "0gpu-h", "h", "1.5", "5 trials"])
def test_bad_budget_says_how_to_write_one(text):
    with pytest.raises(ConfigError, match="--budget") as info:
        parse_budget(text)
    assert "90m" in str(info.value)


def test_trial_budget_counts_running_trials():
    ledger = Ledger(Budget("trials", 3))
    assert ledger.can_start(session_s=0, running={1: (0, 1), 2: (0, 1)}, processes=1)
    assert not ledger.can_start(session_s=0, running={1: (0, 1), 2: (0, 1), 3: (0, 1)}, processes=1)
    ledger.trials_used = 2  # as the study records them
    assert ledger.can_start(session_s=0, running={}, processes=1)
    ledger.trials_used = 3
    assert not ledger.can_start(session_s=0, running={}, processes=1)
    assert not ledger.exhausted(session_s=1e9, running={})  # trial budgets never cut a trial short


def test_wall_budget_starts_no_trial_it_cannot_pay_for():
    ledger = Ledger(Budget("wall", 100))
    assert ledger.can_start(session_s=0, running={}, processes=1)  # nothing known yet: try one
    ledger.durations = [40.0]  # one trial so far, 40 s
    assert ledger.can_start(session_s=50, running={}, processes=1)  # 50 + 40 <= 100
    assert not ledger.can_start(session_s=61, running={}, processes=1)  # 61 + 40 > 100
    assert not ledger.exhausted(session_s=99, running={}) and ledger.exhausted(session_s=100, running={})


def test_gpu_budget_counts_gpu_seconds_of_running_and_finished():
    ledger = Ledger(Budget("gpu", 3600))  # 1 GPU-hour
    ledger.gpu_s, ledger.durations = 1200.0, [600.0]  # one 600 s trial on 2 GPUs
    assert ledger.spent(session_s=0, running={7: (300, 2)}) == 1800
    assert ledger.can_start(session_s=0, running={7: (300, 2)}, processes=2)  # 1800 + 1200 <= 3600
    assert ledger.exhausted(session_s=0, running={7: (1200, 2)})


def test_ledger_round_trips_and_extends():
    stored = {"budget": {"kind": "wall", "amount": 100}, "trials_used": 1, "wall_s": 12.5, "durations": [30.0]}
    again = Ledger.from_dict(stored)  # what StudyStore.add_spent writes
    assert (again.trials_used, again.wall_s, again.durations) == (1, 12.5, [30.0])
    assert Budget("trials", 4).extended(Budget("trials", 2)) == Budget("trials", 6)
    with pytest.raises(ConfigError, match="same kind"):
        Budget("trials", 4).extended(Budget("wall", 60))


@pytest.mark.parametrize(
    ("state", "attrs", "last_step", "share"),
    [
        ("COMPLETE", {"exit_class": "ok", "steps": 30, "total_steps": 30}, 240, 1.0),
        ("FAIL", {"exit_class": "crashed"}, None, 1.0),  # a failure is not early stopping
        ("RUNNING", {}, 80, 1.0),  # reserved in full: it may run to its end
        ("PRUNED", {"exit_class": "pruned", PLANNED_SAMPLES: 900}, 100, 100 / 900),  # stopped at the first rung
        ("PRUNED", {"exit_class": "diverged", "steps": 10, "total_steps": 40}, None, 0.25),  # its own step count
        ("PRUNED", {"exit_class": "pruned"}, 100, 1.0),  # nothing says how long it was meant to be: in full
        ("PRUNED", {"exit_class": "infeasible"}, None, 0.0),  # never run
        ("FAIL", {"exit_class": "interrupted"}, None, 0.0),  # runs again
    ],
)
def test_a_trial_uses_up_the_fraction_of_its_training_it_ran(state, attrs, last_step, share):
    assert trial_share(state, attrs, last_step) == pytest.approx(share)
