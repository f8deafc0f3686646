"""The asynchronous-worker simulator behind bench/promotion_asha.py: stop-type against promotion-type ASHA
on a task (a multi-fidelity function and its space), trials of STEPS fidelity steps, rungs at
`SchedulerSettings.for_study("asha", STEPS).progress_points()`.

A job's start-up (a trial's first start, and every resume of a paused one) costs `startup_cost` units of
a worker's time and of the budget before its first step: what a new process pays on real hardware
(import, model load, ZeRO-3 initialisation, checkpoint load). 0 is the best case for promotion.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

import optuna  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from tuner.config.space import Param  # noqa: E402
from tuner.orchestrate.plan import SchedulerSettings  # noqa: E402
from tuner.study.fidelity import rung_aware_gp  # noqa: E402
from tuner.study.samplers import default_sampler, startup_trials_for  # noqa: E402

STEPS = 9


def rungs_for(steps: int, warmup: int = 0) -> tuple[int, ...]:
    """tuner's rungs for a trial of `steps` steps whose longest warm-up ends at step `warmup`."""
    return tuple(SchedulerSettings.for_study("asha", steps, warmup).progress_points())


RUNGS = rungs_for(STEPS)  # (1, 3)
ETA = 3


@dataclass(frozen=True)
class Task:
    name: str
    function: Callable[[dict, int, int], float]  # (params, step, STEPS) -> value, lower is better
    space: dict[str, Param]
    optimum: float  # the best value at full fidelity, for regret
    startup_cost: int = 0  # fidelity units a worker spends before a job's first step


@dataclass
class Config:
    number: int
    params: dict[str, float]
    values: dict[int, float] = field(default_factory=dict)  # evaluated step -> value
    step: int = 0  # steps trained
    state: str = "running"  # running | paused | stopped | complete | cut
    promoted: set[int] = field(default_factory=set)  # rungs it was promoted from (promotion-type)


def startup_trials(budget: int) -> int:
    return startup_trials_for(budget // STEPS)


SAMPLER_NAMES = "random, tpe, default, default-before, gp, gp-plain, optuna-tpe, gp-one-fidelity, gp-minN, tpe-fid"


def make_sampler(name: str, seed: int, budget: int, distributions: dict) -> optuna.samplers.BaseSampler:
    """random; tpe (tuner's `--sampler tpe`); default (`default_sampler`, what `tune start` builds, given
    the budget in full trials); gp (`--sampler gp`: GP on the predicted final values once ASHA stops
    trials); gp-plain (Optuna's GPSampler, `--sampler gp` before); optuna-tpe (Optuna 5's default,
    `TPESampler(seed=seed)`); gp-one-fidelity (gp on BOHB's view at one fidelity, `--sampler gp` before
    predicted finals); gp-minN (that view once N trials have a value at a fidelity: tried, tied);
    tpe-fid (tpe on that view, BOHB: tried, lost); default-before (the default until stop 28, GP on full
    trials, TPE from ASHA's first stop: bench/sampler_variants.py)."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "default":
        return default_sampler(distributions, budget // STEPS, seed)
    if name == "gp":  # `tune start --sampler gp`: GP, on the predicted final values once ASHA stops trials
        return rung_aware_gp(seed, startup_trials(budget), len(distributions))
    if name == "gp-plain":  # `--sampler gp` before: Optuna's GPSampler, learning from COMPLETE trials only
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(budget))
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "gp-one-fidelity":
        return rung_aware_gp(seed, startup_trials(budget), len(distributions), predict=False)
    if name.startswith("gp-min"):  # BOHB's view needing N points at a fidelity, not max(startup, dims + 1)
        minimum = int(name.removeprefix("gp-min"))
        return rung_aware_gp(seed, startup_trials(budget), len(distributions), min_points=minimum, predict=False)
    if name in ("tpe-fid", "default-before"):
        import sampler_variants  # bench-only samplers, imported where asked for

        if name == "tpe-fid":
            return sampler_variants.tpe_at_fidelity(seed, startup_trials(budget), len(distributions))
        return sampler_variants.previous_default(seed, startup_trials(budget), distributions)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup_trials(budget))
    raise SystemExit(f"unknown sampler {name!r}: {SAMPLER_NAMES}")


def frozen(config: Config, distributions: dict, steps: int = STEPS) -> Any:
    inter = {s: v for s, v in config.values.items()}
    if config.state == "complete":
        return create_trial(
            params=config.params,
            distributions=distributions,
            value=config.values[steps],
            intermediate_values=inter,
            state=TrialState.COMPLETE,
        )
    if config.state in ("paused", "stopped"):
        last = config.values[max(config.values)]
        return create_trial(
            params=config.params,
            distributions=distributions,
            value=last,
            intermediate_values=inter,
            state=TrialState.PRUNED,
        )
    return create_trial(
        params=config.params, distributions=distributions, intermediate_values=inter, state=TrialState.RUNNING
    )


def simulate(
    task: Task,
    sampler_name: str,
    scheduler: str,
    concurrency: int,
    budget: int,
    seed: int,
    steps: int = STEPS,
    rungs: tuple[int, ...] = RUNGS,
) -> dict:
    """One study. `steps`: a full trial's fidelity steps, `budget` and the task's start-up in those steps
    (the start-up is given per STEPS and scaled); `rungs`: the steps where trials are compared."""
    function, space = task.function, task.space
    startup_cost = round(task.startup_cost * steps / STEPS)
    distributions = {name: p.distribution() for name, p in space.items()}
    sampler = make_sampler(sampler_name, seed, budget * STEPS // steps, distributions)
    configs: list[Config] = []
    rung_values: dict[int, list[tuple[float, int]]] = {r: [] for r in rungs}  # (value, config number)
    persistent = optuna.create_study(sampler=sampler) if sampler_name == "random" else None

    def ask() -> dict[str, float]:
        if persistent is not None:  # RandomSampler ignores the history
            return persistent.ask(distributions).params
        study = optuna.create_study(sampler=sampler)
        study.add_trials([frozen(c, distributions, steps) for c in configs if c.state != "cut"])
        return study.ask(distributions).params

    def new_config() -> Config:
        config = Config(len(configs), ask())
        configs.append(config)
        return config

    def next_point(step: int) -> int:
        return next(p for p in (*rungs, steps) if p > step)

    def promotable_stop(rung: int, value: float) -> bool:  # Optuna's _is_trial_promotable_to_next_rung
        competing = sorted(v for v, _ in rung_values[rung])
        idx = max(len(competing) // ETA - 1, 0)
        return value <= competing[idx]

    def promotion_job() -> Config | None:
        for rung in reversed(rungs):
            entries = sorted(rung_values[rung])
            top = entries[: len(entries) // ETA]
            for _, number in top:
                c = configs[number]
                if c.state == "paused" and c.step == rung and rung not in c.promoted:
                    c.promoted.add(rung)
                    return c
        return None

    # worker -> [config, target step, start-up units still to pay]
    workers: list[list[Any] | None] = [None] * concurrency
    units = 0
    now = 0
    paused_peak = 0
    best_final = math.inf
    best_final_time = None
    best_final_units = None

    job_starts = 0

    def assign(w: int) -> None:
        nonlocal job_starts
        job_starts += 1
        config = promotion_job() if scheduler == "promotion" else None
        if config is None:
            config = new_config()
        else:
            config.state = "running"
        target = next_point(config.step) if scheduler == "promotion" else steps
        workers[w] = [config, target, startup_cost]

    for w in range(concurrency):
        assign(w)
    spent = False
    while not spent:
        now += 1
        finished = []
        for w in range(concurrency):  # each busy worker trains one step
            job = workers[w]
            if job is None:
                continue
            config = job[0]
            units += 1
            if job[2] > 0:  # still starting up: no training step this tick
                job[2] -= 1
            else:
                config.step += 1
                if config.step in rungs or config.step == steps:
                    config.values[config.step] = function(config.params, config.step, steps)
                finished.append(w)
            if units >= budget:
                spent = True
                break
        for w in finished:  # decisions at evaluation points, in worker order
            config, target, _ = workers[w]
            step = config.step
            if step not in config.values:
                continue  # between evaluation points: keeps training
            value = config.values[step]
            if step == steps:
                config.state = "complete"
                if value < best_final:
                    best_final, best_final_time, best_final_units = value, now, units
                workers[w] = None
                continue
            rung_values[step].append((value, config.number))
            if scheduler == "stop":
                if not promotable_stop(step, value):
                    config.state = "stopped"
                    workers[w] = None
            elif step == target:
                config.state = "paused"
                workers[w] = None
        paused_peak = max(paused_peak, sum(c.state == "paused" for c in configs))
        if spent:
            break
        for w in range(concurrency):
            if workers[w] is None:
                assign(w)
    for job in workers:
        if job is not None:
            job[0].state = "cut"
    best_any = min((v for c in configs for v in c.values.values()), default=math.inf)
    completed = sum(c.state == "complete" for c in configs)
    value = best_final if completed else best_any
    return {
        "function": task.name,
        "sampler": sampler_name,
        "scheduler": scheduler,
        "concurrency": concurrency,
        "budget": budget,
        "seed": seed,
        "units": units,
        "time": now,
        "configurations": len(configs),
        "completed": completed,
        "stopped": sum(c.state == "stopped" for c in configs),
        "promotions": sum(len(c.promoted) for c in configs),
        "job_starts": job_starts,
        "steps_trained": sum(c.step for c in configs),
        "paused_never_resumed": sum(c.state == "paused" for c in configs),
        "peak_checkpoints": paused_peak,
        "best_final": best_final if completed else None,
        "best_any_rung": best_any,
        "best_final_time": best_final_time,
        "best_final_units": best_final_units,
        "startup_cost": startup_cost,
        "steps": steps,
        "rungs": list(rungs),
        "regret": value - task.optimum,
        "regret_from_rung_value": not completed,
    }
