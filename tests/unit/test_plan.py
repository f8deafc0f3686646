"""The study's progress grid: where every trial evaluates, and the longest trial the space allows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tuner.config.space import Param, SearchSpace
from tuner.orchestrate.plan import SchedulerSettings, max_samples
from tuner.trial.dataset import PreparedData


def _data(n_train: int = 100, n_pool: int = 300) -> PreparedData:
    return PreparedData(Path("."), "t", "e", n_train, 20, n_pool, 0, "k")


def _block(epochs: float = 1.0) -> SimpleNamespace:
    return SimpleNamespace(training=SimpleNamespace(num_train_epochs=epochs))


def test_rungs_sit_at_a_ninth_and_a_third_of_the_longest_trial_and_stop_below_its_end():
    rule = SchedulerSettings.for_study("asha", 900)
    assert (rule.max_t, rule.grace_period, rule.reduction_factor) == (900, 100, 3)
    assert rule.progress_points() == (100, 300)  # the third rung is the longest trial's own end
    assert SchedulerSettings.for_study("none", 900).progress_points() == (100, 300)  # same grid, no pruning
    assert SchedulerSettings.for_study("asha", 5).progress_points() == (1, 3)
    with pytest.raises(ValueError, match="unknown scheduler"):
        SchedulerSettings.for_study("hyperband", 900)


def test_the_pruner_compares_exactly_at_the_grid():
    """Optuna's successive halving records a rung when a report reaches `min_resource * rf**k`: the
    same points the trials evaluate at."""
    rule = SchedulerSettings.for_study("asha", 900)
    pruner = rule.pruner()
    assert (pruner._min_resource, pruner._reduction_factor) == (rule.grace_period, rule.reduction_factor)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, 3 * 100),  # the block's own epochs x its training set
        ({"num_train_epochs": Param("num_train_epochs", "int", "training", 1, 4)}, 4 * 100),
        ({"num_train_epochs": Param("num_train_epochs", "categorical", "training", choices=(1, 2, 5))}, 5 * 100),
        ({"max_instances": Param("max_instances", "int", "conversion", 50, 250)}, 3 * 250),
        # choices: the largest one, not the block's data size (else longer trials were stopped at max_t)
        ({"max_instances": Param("max_instances", "categorical", "conversion", choices=(50, 200))}, 3 * 200),
        ({"max_instances": Param("max_instances", "int", "conversion", 50, 1000)}, 3 * 300),  # capped at the pool
    ],
)
def test_max_samples_is_the_longest_trial_of_the_space(params, expected):
    assert max_samples(SearchSpace(params=params), _block(3), _data()) == expected  # type: ignore[arg-type]
