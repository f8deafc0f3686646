"""The study's progress grid: where every trial evaluates, and the longest trial the space allows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tuner.config.space import Param, SearchSpace
from tuner.orchestrate.plan import SchedulerSettings, max_samples, warmup_samples
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


def test_no_rung_falls_inside_a_warm_up():
    """During its warm-up a trial's loss says how far its learning rate has ramped: the first rung waits
    for the longest warm-up of the space, and a resumed study keeps the first rung it recorded."""
    assert SchedulerSettings.for_study("asha", 900, warmup=180).progress_points() == (180, 540)
    assert SchedulerSettings.for_study("asha", 900, warmup=60).progress_points() == (100, 300)  # ends before 1/9
    assert SchedulerSettings.for_study("asha", 900, warmup=400).progress_points() == (400,)
    assert SchedulerSettings.for_study("asha", 900, warmup=900).progress_points() == ()  # nothing left to compare
    assert SchedulerSettings.for_study("asha", 900, warmup=180, grace_period=100).progress_points() == (100, 300)
    assert SchedulerSettings.for_study("asha", 900, warmup=180).warning() is None
    once = SchedulerSettings.for_study("asha", 900, warmup=400).warning()
    assert once and "compares trials only once" in once and "at 400 of 900 samples" in once
    never = SchedulerSettings.for_study("asha", 900, warmup=900).warning()
    assert never and "stops no trial early" in never
    assert SchedulerSettings.for_study("none", 900, warmup=900).warning() is None  # nothing to stop anyway


def _warm_block(ratio: float, **passthrough: object) -> SimpleNamespace:
    training = SimpleNamespace(
        warmup_ratio=ratio, per_device_train_batch_size=2, gradient_accumulation_steps=1, passthrough=passthrough
    )
    return SimpleNamespace(training=training)


@pytest.mark.parametrize(
    ("params", "block", "expected"),
    [
        ({}, _warm_block(0.1), 90),  # the block's ratio of the longest trial
        ({"warmup_ratio": Param("warmup_ratio", "float", "training", 0.0, 0.2)}, _warm_block(0.1), 180),
        ({}, _warm_block(0.0), 0),
        ({}, _warm_block(0.0, warmup_steps=0.25), 225),  # transformers reads warmup_steps below 1 as a ratio
        ({}, _warm_block(0.0, warmup_steps=10), 10 * 2 * 4),  # optimizer steps x batch 2 x 4 processes
        (
            {
                "per_device_train_batch_size": Param(
                    "per_device_train_batch_size", "categorical", "training", choices=(1, 8)
                )
            },
            _warm_block(0.0, warmup_steps=10),
            10 * 8 * 4,  # at the largest global batch of the space
        ),
        ({}, _warm_block(0.0, warmup_steps="ten"), 0),  # not a number: LLaMA-Factory refuses it, not the grid
    ],
)
def test_the_longest_warm_up_of_the_space_in_samples(params, block, expected):
    assert warmup_samples(SearchSpace(params=params), block, 900, processes=4) == expected  # type: ignore[arg-type]


def test_a_study_records_its_first_rung_and_a_resumed_one_keeps_it(make_block, tmp_path):
    """The demo tunes warmup_ratio up to 0.2 of its longest trial (5 epochs x 50 samples): its rungs sit
    at 50 and 150 samples, and the study records 50. A study made before the rule recorded nothing:
    resumed, it keeps the grid it was made with (a ninth of the longest trial), so its trials' rung
    values stay comparable."""
    from tuner.config.block import load_block
    from tuner.orchestrate.options import StartOptions
    from tuner.orchestrate.prepare import prepare_study

    block = load_block(make_block())
    options = StartOptions(budget="4", study="grid", storage=f"sqlite:///{tmp_path / 't.db'}", trials_dir=tmp_path)

    def prepared() -> tuple[tuple[int, ...], object]:
        done = prepare_study(block, options)
        done.lease.release()
        return done.plan.scheduler.progress_points(), done.session.store

    points, store = prepared()
    assert points == (50, 150) and store.attrs()["grace_period"] == 50  # type: ignore[attr-defined]
    assert prepared()[0] == (50, 150)  # resumed: the recorded grid
    store.set_attrs({"grace_period": None})  # type: ignore[attr-defined]  # as a study from before the rule
    assert prepared()[0] == (27, 81, 243)  # 250 // 9 and its multiples of 3 below 250


def test_tune_start_warns_when_the_warm_up_leaves_asha_one_rung(make_block, tmp_path, caplog):
    from tuner.config.block import load_block
    from tuner.orchestrate.options import StartOptions
    from tuner.orchestrate.prepare import prepare_study

    changes = {"evolving.tunable_params": {"learning_rate": {}}, "runtime_info.input.training.warmup_ratio": 0.5}
    options = StartOptions(budget="2", study="w", storage=f"sqlite:///{tmp_path / 't.db'}", trials_dir=tmp_path)
    with caplog.at_level("WARNING"):
        done = prepare_study(load_block(make_block(changes)), options)
    done.lease.release()
    assert done.plan.scheduler.progress_points() == (75,)  # half of 3 epochs x 50 samples
    assert "ASHA compares trials only once" in caplog.text and "at 75 of 150 samples" in caplog.text
