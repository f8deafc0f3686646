"""Drive tuner's real study machinery (StudySession, samplers, Ray Tune + ASHA, the SQL study) with a
Python objective instead of LLaMA-Factory, so search strategies can be compared on hundreds of cheap
trials. Used by bench/search.py and bench/ray_anchor.py.

An objective is `f(params, fidelity) -> value`; a trial evaluates it at the study's progress points
(the rungs, `SchedulerSettings.progress_points`, in fidelity units) and at its end, reporting against
"samples seen" with its planned length exactly like a training trial, so the pruner and the trial
budget (full-trial equivalents) see what they see from LLaMA-Factory.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner.config import yaml_io  # noqa: E402
from tuner.config.block import parse_block  # noqa: E402
from tuner.config.space import Param, SearchSpace  # noqa: E402
from tuner.study.budget import Budget, Ledger  # noqa: E402
from tuner.study.samplers import make_sampler  # noqa: E402
from tuner.study.session import StudySession  # noqa: E402
from tuner.study.store import StudyStore  # noqa: E402

Objective = Callable[[dict[str, Any], int], float]
# name -> (sampler, scheduler, startup trials of the model-based samplers; None: Optuna's 10)
STRATEGIES = {
    "random": ("random", "none", None),
    "tpe": ("tpe", "none", None),
    "gp": ("gp", "none", None),
    "tpe+asha": ("tpe", "asha", None),
    "tpe-s5": ("tpe", "none", 5),
    "tpe-s5+asha": ("tpe", "asha", 5),
    "gp-s5": ("gp", "none", 5),
    "gp+asha": ("gp", "asha", None),
    "gp-s5+asha": ("gp", "asha", 5),
}


def dummy_block(tmp: Path) -> Any:
    """The demo block, pointing at a one-line dataset: sessions need a block, these trials read none."""
    source = tmp / "data.jsonl"
    source.write_text(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
    )
    data = yaml_io.load(ROOT / "tuner" / "demo" / "block.yaml")
    data["runtime_info"]["input"]["training"]["model_name_or_path"] = "/models/none"
    data["runtime_info"]["input"]["conversion"]["source"] = str(source)
    return parse_block(data)


@dataclass
class Run:
    strategy: str
    seed: int
    best: list[float]  # best COMPLETE value after each finished trial, in finishing order
    compute: list[float]  # cumulative fidelity units spent after each finished trial
    wall_s: float
    trials: int
    pruned: int


def make_trainable(objective: Objective, steps: int, points: tuple[int, ...]) -> Callable[[dict[str, Any]], None]:
    def trainable(config: dict[str, Any]) -> None:
        from ray import tune

        from tuner.orchestrate.plan import OBJECTIVE, PLANNED, PROGRESS

        for fidelity in points:
            value = objective(config["params"], fidelity)
            tune.report({OBJECTIVE: value, PROGRESS: fidelity, PLANNED: steps, "step": fidelity})
        value = objective(config["params"], steps)
        tune.report(
            {
                "final": True,
                "exit_class": "ok",
                "reason": "",
                "value": value,
                OBJECTIVE: value,
                PROGRESS: steps,
                "wall_s": 0.0,
                "fidelity_spent": steps,
            }
        )

    return trainable


def run_study(
    objective: Objective,
    params: dict[str, Param],
    strategy: str,
    seed: int,
    trials: int,
    steps: int,
    concurrency: int = 2,
) -> Run:
    from tuner.orchestrate import driver
    from tuner.orchestrate.plan import RayPlan, SchedulerSettings

    sampler_name, scheduler, startup = STRATEGIES[strategy]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        block = dummy_block(tmp)
        space = SearchSpace(params=params)
        store = StudyStore.open(
            f"sqlite:///{tmp / 'study.db'}",
            f"s-{uuid.uuid4().hex[:6]}",
            sampler=make_sampler(sampler_name, seed, space, startup),
            pruner=SchedulerSettings.for_study(scheduler, steps).pruner(),
        )
        session = StudySession(store, block, space, Ledger(Budget("trials", trials)), tmp / "trials")
        plan = RayPlan(
            study=store.name,
            trials_dir=tmp / "trials",
            scheduler=SchedulerSettings.for_study(scheduler, steps),
            gpus_per_trial=0,
            max_concurrent=concurrency,
            mode="min",
            reuse_actors=True,
        )
        started = time.perf_counter()
        trainable = make_trainable(objective, steps, plan.scheduler.progress_points())
        driver.run(session, block, {}, plan, lambda: None, trainable=trainable)
        wall = time.perf_counter() - started
        finished = sorted(
            (t for t in store.trials() if t.state.name in ("COMPLETE", "PRUNED")), key=lambda t: t.datetime_complete
        )
        best, compute, spent, so_far = [], [], 0.0, float("inf")
        for t in finished:
            stopped_early = t.state.name == "PRUNED" and t.intermediate_values
            spent += max(t.intermediate_values) if stopped_early else steps
            if t.state.name == "COMPLETE" and t.value is not None:
                so_far = min(so_far, t.value)
            best.append(so_far)
            compute.append(spent)
        pruned = sum(t.state.name == "PRUNED" for t in finished)
        return Run(strategy, seed, best, compute, wall, len(finished), pruned)
