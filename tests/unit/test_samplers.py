"""The default sampler (`--sampler auto`): its documented choice, and that `tune start` builds it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuner.study.samplers import GP_MAX_TRIALS, default_sampler, make_sampler

ROOT = Path(__file__).resolve().parents[2]
NUMERIC = {"learning_rate": FloatDistribution(1e-5, 1e-3, log=True), "num_train_epochs": IntDistribution(1, 3)}
MIXED = {**NUMERIC, "per_device_train_batch_size": CategoricalDistribution([4, 8])}


def settings(sampler: optuna.samplers.BaseSampler) -> Any:
    """What tells two default samplers apart: the class, startup trials, constant liar, inner samplers."""
    if hasattr(sampler, "gp"):
        return (type(sampler).__name__, settings(sampler.gp), settings(sampler.tpe))
    return (type(sampler).__name__, sampler._n_startup_trials, getattr(sampler, "_constant_liar", None))


@pytest.mark.parametrize(
    ("space", "budget", "expected"),
    [
        (NUMERIC, 20, ("GPThenTPE", ("RungAwareGP", 5, None), ("TPESampler", 5, True))),
        (NUMERIC, 8, ("GPThenTPE", ("RungAwareGP", 3, None), ("TPESampler", 3, True))),
        (NUMERIC, None, ("GPThenTPE", ("RungAwareGP", 10, None), ("TPESampler", 10, True))),
        (MIXED, 50, ("TPESampler", 10, True)),
        (MIXED, 12, ("TPESampler", 3, True)),
    ],
)
def test_default_sampler_is_the_documented_choice(space, budget, expected):
    assert settings(default_sampler(space, budget, 0)) == expected


def _study(space: dict[str, Any], states: list[str]) -> optuna.Study:
    """COMPLETE trials (value i, i + 1 at the rung), STOPPED ones (early stopping pruned them at the
    rung), DIVERGED ones (PRUNED with a rung value), MARKERs (tuner's OOM and infeasible markers: PRUNED
    with a constraint) and COPYs (a warm start's: COMPLETE with no rung value)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for i, state in enumerate(states):
        trial = study.ask(space)
        if state in ("STOPPED", "COMPLETE", "DIVERGED"):
            trial.report(float(i) + (state == "COMPLETE"), 16)
        if state == "DIVERGED":
            trial.set_user_attr("exit_class", "diverged")
        if state == "MARKER":
            trial.set_constraint("memory", 1.0)
        pruned = state in ("STOPPED", "MARKER", "DIVERGED")
        study.tell(trial, None if pruned else float(i), state=optuna.trial.TrialState.PRUNED if pruned else None)
    return study


def test_gp_proposes_while_the_study_is_short_and_its_rungs_predict_the_end():
    sampler = default_sampler(NUMERIC, 20, 0)
    assert sampler.choose(_study(NUMERIC, ["COMPLETE"] * 4)) is sampler.gp
    assert sampler.choose(_study(NUMERIC, ["STOPPED", "COMPLETE", "STOPPED", "COMPLETE"])) is sampler.tpe
    assert sampler.choose(_study(NUMERIC, ["STOPPED", "COMPLETE"] * 3)) is sampler.gp  # 3 finished: GP
    assert sampler.choose(_study(NUMERIC, ["COPY"] * 3 + ["STOPPED", "COMPLETE"])) is sampler.tpe
    assert sampler.choose(_study(NUMERIC, ["COMPLETE"] * 3 + ["MARKER"])) is sampler.tpe
    assert sampler.choose(_study(NUMERIC, ["COMPLETE"] * 3 + ["DIVERGED"])) is sampler.tpe
    assert sampler.choose(_study(NUMERIC, ["COMPLETE"] * GP_MAX_TRIALS)) is sampler.tpe


def test_the_default_gp_models_a_stopped_trial_by_its_predicted_final_value():
    sampler = default_sampler(NUMERIC, 8, 0)
    study = _study(NUMERIC, ["STOPPED", "COMPLETE", "STOPPED", "COMPLETE", "COMPLETE"])
    study.sampler = sampler
    study.ask(NUMERIC)
    assert sampler.choose(study) is sampler.gp
    assert study.trials[-1].user_attrs["gp_modelled"].startswith("predicted final values of 5 trials")


def test_default_sampler_proposes_inside_the_space_and_is_reproducible():
    def proposals(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=default_sampler(NUMERIC, 8, seed))
        out = []
        for _ in range(4):  # 3 random, then GP
            trial = study.ask(NUMERIC)
            study.tell(trial, abs(trial.params["learning_rate"] - 3e-4) + trial.params["num_train_epochs"])
            out.append(trial.params)
        return out

    first = proposals(1)
    assert first == proposals(1)
    assert all(1e-5 <= p["learning_rate"] <= 1e-3 and 1 <= p["num_train_epochs"] <= 3 for p in first)


CATEGORICAL_TUNABLES = {"learning_rate": {}, "per_device_train_batch_size": {"choices": [4, 8]}}
NUMERIC_TUNABLES = {"learning_rate": {}, "num_train_epochs": {"low": 1, "high": 3}}


def test_auto_with_explicit_startup_trials_keeps_them(make_block):
    from tuner.config.block import load_block
    from tuner.config.space import build_space

    space = build_space(load_block(make_block({"evolving.tunable_params": CATEGORICAL_TUNABLES})))
    assert settings(make_sampler("auto", 0, space, 7)) == ("TPESampler", 7, True)
    demo = build_space(load_block(make_block()))  # the demo's space is all numeric: GP first
    assert settings(make_sampler("auto", 0, demo, 7)) == (
        "GPThenTPE",
        ("RungAwareGP", 7, None),
        ("TPESampler", 7, True),
    )


@pytest.mark.parametrize("tunable", [CATEGORICAL_TUNABLES, NUMERIC_TUNABLES])
def test_tune_start_builds_the_default_sampler(make_block, tmp_path, tunable):
    """prepare_study with no --sampler / --startup-trials builds what default_sampler returns for the
    study's space and trial budget, and records `auto` and its startup trials."""
    from tuner.config.block import load_block
    from tuner.orchestrate.options import StartOptions
    from tuner.orchestrate.prepare import prepare_study

    block = load_block(make_block({"evolving.tunable_params": tunable}))
    options = StartOptions(budget="12", study="auto", storage=f"sqlite:///{tmp_path / 't.db'}", trials_dir=tmp_path)
    prepared = prepare_study(block, options)
    prepared.lease.release()
    store = prepared.session.store
    built = store.study.sampler
    assert settings(built) == settings(default_sampler(prepared.session._distributions, 12, 0))
    assert type(built).__name__ == ("GPThenTPE" if tunable is NUMERIC_TUNABLES else "TPESampler")
    assert store.attrs()["sampler"] == "auto" and store.attrs()["startup_trials"] == 3


def test_bench_quick_runs():
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "default_sampler.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("median normalized regret, default / optuna-tpe: ")
    assert time.monotonic() - started < 60
