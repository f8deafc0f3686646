"""bench/asha_sim.py (the stop/promotion-type ASHA simulator) and bench/demo_table.py (the demo as a
looked-up task): a job's start-up is charged to the budget, and the demo's table and start-up fit."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from asha_sim import STEPS, Task, simulate
from demo_table import demo_task, startup_steps

from tuner.config.space import Param

FLAT = Task("flat", lambda params, step, steps: 1.0, {"x": Param("x", "float", "training", 0.0, 1.0)}, 1.0)


@pytest.mark.parametrize(("startup", "completed", "configurations"), [(0, 2, 3), (3, 2, 2)])
def test_stop_type_pays_each_trial_start_up_from_the_budget(startup, completed, configurations):
    """One worker, 24 units, a flat function (no trial is ever stopped): 9-step trials plus start-up."""
    task = dataclasses.replace(FLAT, startup_cost=startup)
    run = simulate(task, "random", "stop", concurrency=1, budget=24, seed=0)
    assert (run["units"], run["completed"], run["configurations"]) == (24, completed, configurations)


@pytest.mark.parametrize("startup", [0, 2, 5])
@pytest.mark.parametrize("scheduler", ["stop", "promotion"])
def test_every_unit_is_a_step_or_a_start_up(startup, scheduler):
    task = dataclasses.replace(FLAT, startup_cost=startup)
    run = simulate(task, "random", scheduler, concurrency=2, budget=90, seed=1)
    paid = run["steps_trained"] + startup * run["job_starts"]
    assert run["units"] == 90
    assert 90 <= paid <= 90 + 2 * max(startup - 1, 0)  # jobs cut while starting up paid part of it
    if scheduler == "promotion":
        assert run["job_starts"] == run["configurations"] + run["promotions"]  # a resume starts a job again


def test_promotion_resumes_cost_start_ups_that_stop_type_does_not_pay():
    free = simulate(FLAT, "random", "promotion", concurrency=1, budget=180, seed=0)
    costly = simulate(dataclasses.replace(FLAT, startup_cost=9), "random", "promotion", 1, 180, 0)
    assert costly["steps_trained"] < free["steps_trained"] and costly["promotions"] > 0


def test_the_demo_table_looks_up_the_nearest_training(tmp_path):
    def row(lr: float, warmup: float, at17: float, at50: float, end: float) -> dict:
        params = {"learning_rate": lr, "warmup_ratio": warmup}
        curve = [[17, at17], [50, at50]]
        return {"params": params, "eval_loss": end, "curve": curve, "startup_s": 12.0, "wall_s": 30.0}

    table = tmp_path / "table.json"
    table.write_text(json.dumps({"rows": [row(1e-4, 0.0, 5.0, 4.0, 3.0), row(1e-3, 0.2, 4.5, 3.5, 2.5)]}))
    task = demo_task(table)
    assert task.optimum == 2.5 and set(task.space) == {"learning_rate", "warmup_ratio"}
    near_low = {"learning_rate": 1.5e-4, "warmup_ratio": 0.05}
    assert [task.function(near_low, s, STEPS) for s in (1, 3, STEPS)] == [5.0, 4.0, 3.0]
    assert task.function({"learning_rate": 8e-4, "warmup_ratio": 0.15}, 3, STEPS) == 3.5


def test_the_smooth_demo_interpolates_between_trainings_in_the_log_learning_rate(tmp_path):
    from asha_tasks import smooth_demo_task

    def row(lr: float, warmup: float, end: float) -> dict:
        params = {"learning_rate": lr, "warmup_ratio": warmup}
        return {
            "params": params,
            "eval_loss": end,
            "curve": [[17, end + 2], [50, end + 1]],
            "startup_s": 12.0,
            "wall_s": 30.0,
        }

    table = tmp_path / "table.json"
    rows = [row(1e-4, 0.0, 3.0), row(1e-4, 0.2, 3.2), row(1e-3, 0.0, 2.0), row(1e-3, 0.2, 2.4)]
    table.write_text(json.dumps({"rows": rows}))
    task = smooth_demo_task(table)
    assert task.name == "demo-smooth" and task.optimum == 2.0
    assert task.startup_cost == demo_task(table).startup_cost
    assert task.function({"learning_rate": 1e-3, "warmup_ratio": 0.2}, STEPS, STEPS) == pytest.approx(2.4)
    middle = {"learning_rate": 10**-3.5, "warmup_ratio": 0.1}  # halfway in the log and in warm-up
    assert task.function(middle, STEPS, STEPS) == pytest.approx((3.0 + 3.2 + 2.0 + 2.4) / 4)
    assert [task.function(middle, s, STEPS) for s in (1, 3)] == pytest.approx([2.65 + 2, 2.65 + 1])
    table.write_text(json.dumps({"rows": rows[:3]}))
    with pytest.raises(SystemExit, match="every grid point"):
        smooth_demo_task(table)


@pytest.mark.parametrize("sampler", ["default-before", "tpe-fid", "gp-one-fidelity", "gp-min3"])
def test_the_bench_only_samplers_run_a_study_under_asha(sampler):
    from asha_tasks import tasks

    run = simulate(tasks(["branin"])[0], sampler, "stop", concurrency=2, budget=45, seed=0)
    assert run["units"] == 45 and run["stopped"] > 0


def test_without_early_stopping_the_default_proposes_what_it_did_before():
    """The default changed only under ASHA: on full trials its GP proposes as Optuna's GPSampler did."""
    from optuna.distributions import FloatDistribution
    from sampler_variants import previous_default

    from tuner.study.samplers import default_sampler

    space = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(1e-3, 1.0, log=True)}

    def proposals(sampler: optuna.samplers.BaseSampler) -> list[dict]:
        study = optuna.create_study(sampler=sampler)
        for _ in range(5):  # 3 at random, then GP
            trial = study.ask(space)
            study.tell(trial, (trial.params["x"] - 0.3) ** 2 + trial.params["y"])
        return [t.params for t in study.trials]

    assert proposals(default_sampler(space, 12, 3)) == proposals(previous_default(3, 3, space))


def test_the_demo_start_up_is_measured_in_fidelity_steps():
    rows = [{"startup_s": 12.0 + i, "wall_s": 30.0 + i} for i in (-1, 0, 1)]  # median 12 s, then 18 s over 9 steps
    assert startup_steps(rows) == round(12 / (18 / STEPS))  # 6 steps
    with pytest.raises(SystemExit, match="startup_s"):
        startup_steps([{"wall_s": 30.0}])


def test_regret_ratio_treats_two_zero_regrets_as_a_tie():
    from curves import regret_ratio

    assert (regret_ratio(0.2, 0.1), regret_ratio(0.0, 0.0), regret_ratio(0.1, 0.0)) == (2.0, 1.0, float("inf"))


def test_asha_default_compares_every_sampler_and_prints_both_ratios(tmp_path):
    import subprocess

    bench = Path(__file__).resolve().parents[2] / "bench" / "asha_default.py"
    out = tmp_path / "a.json"
    args = ["--seeds", "1", "--budgets", "45", "--functions", "branin", "--jobs", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, str(bench), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-2:]
    assert last[0].startswith("median regret at equal compute with ASHA, gp / gp-plain: ")
    assert last[1].startswith("median regret at equal compute with ASHA, default / optuna-tpe: ")
    assert "seed by seed, default against optuna-tpe: " in done.stdout
    result = json.loads(out.read_text())
    assert {r["sampler"] for r in result["runs"]} == {"default", "gp", "gp-plain", "optuna-tpe", "random"}
    assert all(r["units"] == 45 for r in result["runs"])


def test_rung_warmup_compares_both_grids_on_the_same_seeds(tmp_path):
    """bench/rung_warmup.py: each sampler's studies under both rung grids, paired seed by seed; the
    simulated trials are 150 steps long and stop only at the grid's rungs or their end."""
    import subprocess

    bench = Path(__file__).resolve().parents[2] / "bench" / "rung_warmup.py"
    out = tmp_path / "w.json"
    args = ["--seeds", "2", "--samplers", "default,random", "--budgets", "180", "--jobs", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, str(bench), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        .splitlines()[-1]
        .startswith("model-based samplers, rungs after the warm-up better / worse: ")
    )
    result = json.loads(out.read_text())
    assert [(c["sampler"], c["better"] + c["worse"] + c["tie"]) for c in result["comparison"]] == [
        ("default", 2),
        ("random", 2),
    ]
    assert (
        result["fidelity"]["16"]["final_best_place"] == 7
    )  # the demo table's best, behind 6 warm-up-free configurations


def test_a_tables_last_axis_is_the_learning_curve_asha_reads():
    """mlp-digits as an ASHA task: the space is the table's other axes, step s of 9 reads the validation
    loss after ceil(40 s / 9) epochs, the optimum is the best configuration at the end (epoch 40), and
    between two learning rates of the grid the curves are interpolated on the log axis."""
    import numpy as np
    from asha_tasks import curve_task
    from default_sampler_tasks import MLP_AXES, load_tables

    task = curve_task("mlp-digits")
    assert list(task.space) == ["learning_rate", "alpha", "batch_size", "hidden"]
    assert task.space["batch_size"].choices == (16, 32, 64, 128) and task.space["hidden"].type == "int"
    table = np.asarray(load_tables(names=("mlp-digits",))["mlp-digits"]).reshape(8, 3, 4, 3, 40)
    params = {"learning_rate": MLP_AXES["learning_rate"][1][2], "alpha": 1e-6, "batch_size": 64, "hidden": 256}
    assert [task.function(params, s, STEPS) for s in (1, 3, STEPS)] == [table[2, 0, 2, 2, e] for e in (4, 13, 39)]
    assert task.optimum == table[..., -1].min() > table.min()  # the end's best: some trainings over-fit by then
    lrs = MLP_AXES["learning_rate"][1]
    between = {**params, "learning_rate": (lrs[2] * lrs[3]) ** 0.5}  # halfway on the log axis
    assert task.function(between, 3, STEPS) == pytest.approx((table[2, 0, 2, 2, 13] + table[3, 0, 2, 2, 13]) / 2)


def test_head_to_head_pairs_the_studies_of_one_task_budget_and_seed():
    from asha_default import head_to_head

    def run(seed: int, sampler: str, regret: float, budget: int = 180) -> dict:
        return {"function": "f", "budget": budget, "seed": seed, "sampler": sampler, "regret": regret}

    runs = [run(0, "a", 0.1), run(0, "b", 0.2), run(1, "a", 0.3), run(1, "b", 0.2), run(2, "a", 0.0)]
    runs += [run(2, "b", 0.0), run(3, "a", 0.5), run(3, "b", 0.9, budget=360)]  # seed 3: no pair
    assert head_to_head(runs, "a", "b") == (1, 1, 1)
