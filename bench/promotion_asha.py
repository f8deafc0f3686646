"""Pause instead of kill: promotion-type ASHA against stop-type ASHA at equal compute (issue 14, item 6).

A self-contained simulator of asynchronous workers (no Ray, no tuner study): each trial is 9 fidelity
steps long, evaluated at the rungs (1, 3: `SchedulerSettings.for_study("asha", 9).progress_points()`,
reduction factor 3) and at its end (9). The functions are those of sections 2a/2e (`bench/search.py`:
multi-fidelity Branin and Hartmann-3) and the demo (`bench/demo_table.py`: real demo trainings' eval_loss
at the same rungs, looked up); a trial's final value is its value at step 9. The simulator itself is
`bench/asha_sim.py`.

- stop-type ASHA (what tuner does today, Optuna's SuccessiveHalvingPruner with min_early_stopping_rate
  0): a trial reaching a rung continues if its value is within the best max(1, n // 3) of the n values
  recorded at that rung so far (its own included), else it is stopped for good.
- promotion-type ASHA (Li et al. 2020, Syne Tune's `type="promotion"`): a trial pauses at every rung
  (its checkpoint kept). A worker that frees up first promotes a paused trial that is among the best
  n // 3 of its rung and not yet promoted (highest rung first, the best such trial), resuming it from
  its checkpoint (its earlier steps are not recomputed); if there is none, it starts a new configuration.

What the sampler (Optuna ask; `RandomSampler` or `TPESampler` as tuner builds it: constant liar,
startup trials = a quarter of the budget in full-trial equivalents, 3 to 10) sees when it is asked: one
record per configuration, rebuilt at every ask: COMPLETE with its value at step 9 if it finished; PRUNED
with its rung values as intermediate values (value = the last of them, what `tell(PRUNED)` stores) if it
was stopped (stop-type) or is paused (promotion-type) — a paused trial looks exactly like a trial pruned
at that rung, and if it is promoted later its record turns RUNNING (the constant liar's pessimistic
value) and then PRUNED at the next rung or COMPLETE; RUNNING for a trial in flight.

Equal compute: every run gets the same total fidelity units (`--budgets`, default 180 = 20 full trials
and 360), counting the steps actually trained; when the budget is spent, training in flight is cut
(both schedulers lose that). Simulated time: each step costs 1 unit per worker. A job's start-up (a new
trial, and every resume of a paused one) costs units too: 0 on the functions and on `demo-free-start`
(the best case for promotion), the demo's measured start-up on `demo` (13 steps of a 9-step trial).

    .venv/bin/python bench/promotion_asha.py [--seeds 10] [--budgets 180,360] [--concurrency 2,4]
        [--functions branin,hartmann3,demo,demo-free-start]

Last line: median over (function, sampler, concurrency, budget) cells of the ratio of median regrets,
promotion / stop (< 1: pausing wins).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
from asha_sim import RUNGS, STEPS, simulate  # noqa: E402
from asha_tasks import tasks  # noqa: E402
from curves import regret_ratio  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default="180,360")
    parser.add_argument("--concurrency", default="2,4")
    parser.add_argument("--samplers", default="random,tpe")
    parser.add_argument("--functions", default="branin,hartmann3")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "promotion_asha.json"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budgets = [int(b) for b in args.budgets.split(",")]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    started = time.time()
    runs = []
    chosen = tasks(args.functions.split(","))
    for task in chosen:
        for sampler_name in args.samplers.split(","):
            for concurrency in concurrencies:
                for budget in budgets:
                    for scheduler in ("stop", "promotion"):
                        for seed in range(args.seeds):
                            runs.append(simulate(task, sampler_name, scheduler, concurrency, budget, seed))
                    print(
                        f"done {task.name} {sampler_name} c={concurrency} budget={budget} "
                        f"({time.time() - started:.0f} s)",
                        flush=True,
                    )
    med = statistics.median
    rows = []
    ratios = []
    by_function: dict[str, list[float]] = {}
    wins: dict[str, int] = {}
    seed_wins: dict[str, list[int]] = {}
    header = (
        "| function | sampler | workers | budget | scheduler | best final, median | regret, median | "
        "configurations | completed | sim. time (to best) | paused never resumed | peak checkpoints |"
    )
    lines = [header, "|" + "---|" * 12]
    for function_name in args.functions.split(","):
        for sampler_name in args.samplers.split(","):
            for concurrency in concurrencies:
                for budget in budgets:
                    cell = {}
                    for scheduler in ("stop", "promotion"):
                        group = [
                            r
                            for r in runs
                            if (r["function"], r["sampler"], r["concurrency"], r["budget"], r["scheduler"])
                            == (function_name, sampler_name, concurrency, budget, scheduler)
                        ]
                        finals = [r["best_final"] for r in group if r["best_final"] is not None]
                        row = {
                            "function": function_name,
                            "sampler": sampler_name,
                            "concurrency": concurrency,
                            "budget": budget,
                            "scheduler": scheduler,
                            "runs": len(group),
                            "runs_without_a_complete_trial": sum(r["best_final"] is None for r in group),
                            "best_final_median": med(finals) if finals else None,
                            "best_any_rung_median": med(r["best_any_rung"] for r in group),
                            "regret_median": med(r["regret"] for r in group),
                            "configurations_median": med(r["configurations"] for r in group),
                            "completed_median": med(r["completed"] for r in group),
                            "time_median": med(r["time"] for r in group),
                            "time_to_best_median": med(r["best_final_time"] or r["time"] for r in group),
                            "paused_never_resumed_median": med(r["paused_never_resumed"] for r in group),
                            "peak_checkpoints_median": med(r["peak_checkpoints"] for r in group),
                            "peak_checkpoints_max": max(r["peak_checkpoints"] for r in group),
                        }
                        rows.append(row)
                        cell[scheduler] = row
                        missing = (
                            f" ({row['runs_without_a_complete_trial']} runs without a complete trial)"
                            if row["runs_without_a_complete_trial"]
                            else ""
                        )
                        best = "—" if row["best_final_median"] is None else f"{row['best_final_median']:.4g}"
                        lines.append(
                            f"| {function_name} | {sampler_name} | {concurrency} | {budget} | {scheduler} | "
                            f"{best}{missing} | {row['regret_median']:.4g} | {row['configurations_median']:g} | "
                            f"{row['completed_median']:g} | {row['time_median']:g} ({row['time_to_best_median']:g}) | "
                            f"{row['paused_never_resumed_median']:g} | {row['peak_checkpoints_median']:g} "
                            f"(max {row['peak_checkpoints_max']}) |"
                        )
                    paired = {
                        (r["seed"], r["scheduler"]): r["regret"]
                        for r in runs
                        if (r["function"], r["sampler"], r["concurrency"], r["budget"])
                        == (function_name, sampler_name, concurrency, budget)
                    }
                    seeds = sorted({seed for seed, _ in paired})
                    cell["promotion"]["seeds_promotion_better"] = sum(
                        paired[(seed, "promotion")] < paired[(seed, "stop")] for seed in seeds
                    )
                    cell["promotion"]["seeds_stop_better"] = sum(
                        paired[(seed, "promotion")] > paired[(seed, "stop")] for seed in seeds
                    )
                    stop, promo = cell["stop"]["regret_median"], cell["promotion"]["regret_median"]
                    ratio = regret_ratio(promo, stop)
                    ratios.append(ratio)
                    by_function.setdefault(function_name, []).append(ratio)
                    wins[function_name] = wins.get(function_name, 0) + (promo < stop)
                    tally = seed_wins.setdefault(function_name, [0, 0])
                    tally[0] += cell["promotion"]["seeds_promotion_better"]
                    tally[1] += cell["promotion"]["seeds_stop_better"]
    for line in lines:
        print(line)
    summary = {}
    for function_name, values in by_function.items():
        summary[function_name] = {
            "ratio_median": med(values),
            "cells_promotion_better": wins[function_name],
            "cells": len(values),
            "paired_seeds_promotion_better": seed_wins[function_name][0],
            "paired_seeds_stop_better": seed_wins[function_name][1],
        }
        print(
            f"{function_name}: median regret ratio promotion / stop {med(values):.2f}; promotion lower in "
            f"{wins[function_name]} of {len(values)} cells; same seed, promotion better in "
            f"{seed_wins[function_name][0]} runs, stop better in {seed_wins[function_name][1]}"
        )
    ratio = med(ratios)
    Path(args.out).write_text(
        json.dumps(
            {
                "args": vars(args),
                "rungs": RUNGS,
                "steps": STEPS,
                "optimum": {t.name: t.optimum for t in chosen},
                "startup_cost": {t.name: t.startup_cost for t in chosen},
                "seconds": round(time.time() - started, 1),
                "rows": rows,
                "summary": summary,
                "ratio": ratio,
                "runs": runs,
            },
            separators=(",", ":"),
        )
    )
    print(f"median regret, promotion / stop at equal compute: {ratio:.2f}")


if __name__ == "__main__":
    main()
