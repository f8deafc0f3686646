"""Samplers with early stopping on, at equal compute (issue 14.3): the default against Optuna 5's TPE,
and `--sampler gp` on the rung values against Optuna's plain GPSampler.

bench/default_sampler.py compares samplers at equal trials, without early stopping. `tune start`'s
default pairs `--sampler auto` with stop-type ASHA, where a stopped trial costs only what it ran; this
runs the samplers under stop-type ASHA in bench/asha_sim.py's simulator of asynchronous workers: each
run gets the same fidelity units (`--budgets`; 180 = 20 full trials, what `--budget 20` allows), the
same tasks (bench/asha_tasks.py: Branin, Hartmann-3, the demo's real eval_loss table, its start-up
charged, and the real learning curves of mlp-digits and gbm-cancer, the tables of
bench/default_sampler.py with epochs and boosting rounds as the fidelity) and seeds. Samplers:
default = `default_sampler(space, budget in full trials, seed)`, what `tune start` builds (under ASHA: TPE
until 3 trials finished, then GP on the predicted final values); default-before = the default until
stop 28 (TPE from ASHA's first stop); gp = `--sampler gp` (GP on the predicted final values once ASHA
stops trials, tuner.study.fidelity); gp-plain = Optuna's `GPSampler` (`--sampler gp` before: it learns
from COMPLETE trials only); optuna-tpe = `TPESampler(seed=seed)`; random; the variants tried and not
kept: tpe-fid, gp-one-fidelity, gp-minN (bench/asha_sim.py). Tasks also: demo-smooth (the demo's
table interpolated between its trainings).

    .venv/bin/python bench/asha_default.py [--seeds 20] [--budgets 180,360] [--concurrency 2]
        [--functions branin,hartmann3,demo,demo-smooth,mlp-digits,gbm-cancer]
        [--samplers default,default-before,gp,gp-plain,optuna-tpe,random] [--jobs 2]
        [--steps 150 --rungs 16,48]

Per (task, budget): median regret and mean rank within each seed (1 = best; ties share). Last lines:
median over the cells of the ratio of median regrets, gp / gp-plain, then default / optuna-tpe (< 1:
the first wins).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import optuna  # noqa: E402
from asha_sim import STEPS, rungs_for, simulate  # noqa: E402
from asha_tasks import tasks  # noqa: E402
from curves import better_worse_tied, ranks, regret_ratio, sign_test  # noqa: E402
from demo_table import TABLE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", default="180,360")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--functions", default="branin,hartmann3,demo")
    parser.add_argument("--samplers", default="default,gp,gp-plain,optuna-tpe,random")
    parser.add_argument("--jobs", type=int, default=1, help="processes, one (task, budget) cell each")
    parser.add_argument(
        "--steps", type=int, default=STEPS, help="a full trial's fidelity steps (150: one per demo sample)"
    )
    parser.add_argument(
        "--rungs",
        default=None,
        help="the steps trials are compared at (default: a ninth and a third, tuner's rule without a warm-up)",
    )
    parser.add_argument("--demo-table", default=str(TABLE), help="the demo's eval_loss table (bench/demo_table.py)")
    parser.add_argument("--out", default=str(BENCH / "results" / "asha_default.json"))
    args = parser.parse_args()
    started = time.time()
    samplers = args.samplers.split(",")
    cells_asked = [(name, int(b)) for name in args.functions.split(",") for b in args.budgets.split(",")]
    rungs = tuple(int(r) for r in args.rungs.split(",")) if args.rungs else rungs_for(args.steps)
    print(f"trials of {args.steps} steps, compared at steps {rungs}", flush=True)
    jobs = [
        (name, budget, samplers, args.seeds, args.concurrency, args.steps, rungs, args.demo_table)
        for name, budget in cells_asked
    ]
    cells, runs = [], []
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for cell, cell_runs in pool.imap(run_cell, jobs):
            cells.append(cell)
            runs += cell_runs
            shown = "  ".join(
                f"{s} {cell[s]['regret_median']:.4g} ({cell[s]['mean_rank']:.2f}, "
                f"{cell[s]['configurations_median']:g} configs)"
                for s in samplers
            )
            print(f"{cell['task']:10s} @{cell['budget']}: {shown}   [{time.time() - started:.0f} s]", flush=True)
    mean_rank = {s: round(statistics.mean(c[s]["mean_rank"] for c in cells), 2) for s in samplers}
    print(f"mean rank over the cells: {mean_rank}")
    summary: dict = {"mean_rank": mean_rank}
    challengers = [s for s in samplers if s not in ("default", "optuna-tpe", "random")] + ["default"]
    for a, b in ((challenger, "optuna-tpe") for challenger in challengers):  # the default last
        if a in samplers and b in samplers:
            summary[f"{a} vs {b}"] = head_to_head(runs, a, b)
            won, lost, tied = summary[f"{a} vs {b}"]
            p = sign_test(won, lost)
            print(f"seed by seed, {a} against {b}: {won} better, {lost} worse, {tied} tied (sign test p = {p:.2g})")
    for a, b in (("gp", "gp-plain"), ("default", "optuna-tpe")):  # the headline last
        if a in samplers and b in samplers:
            ratios = [regret_ratio(c[a]["regret_median"], c[b]["regret_median"]) for c in cells]
            summary[f"{a}/{b}"] = {"ratios": ratios, "ratio": statistics.median(ratios)}
            print(f"median regret at equal compute with ASHA, {a} / {b}: {statistics.median(ratios):.2f}")
    Path(args.out).write_text(json.dumps({"args": vars(args), "cells": cells, **summary, "runs": runs}) + "\n")


def head_to_head(runs: list[dict], a: str, b: str) -> tuple[int, int, int]:
    """Over the (task, budget, seed) studies both samplers ran: how often `a`'s regret was lower, higher, equal."""
    return better_worse_tied([r for r in runs if r["sampler"] == a], [r for r in runs if r["sampler"] == b])


def run_cell(job: tuple[str, int, list[str], int, int, int, tuple[int, ...], str]) -> tuple[dict, list[dict]]:
    """One (task, budget) cell: every sampler on every seed; median regret and mean rank per sampler.
    `budget` is in units of a 9-step trial (180: 20 full trials), scaled to `steps`."""
    name, budget, samplers, seeds, concurrency, steps, rungs, demo_table = job
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = tasks([name], Path(demo_table))[0]
    by_sampler = {
        s: [
            simulate(task, s, "stop", concurrency, budget * steps // STEPS, seed, steps, rungs) for seed in range(seeds)
        ]
        for s in samplers
    }
    rank_sum = dict.fromkeys(samplers, 0.0)
    for seed in range(seeds):
        regrets = [by_sampler[s][seed]["regret"] for s in samplers]
        for sampler, rank in zip(samplers, ranks(regrets), strict=True):
            rank_sum[sampler] += rank
    cell: dict = {"task": task.name, "budget": budget}
    for sampler in samplers:
        mine = by_sampler[sampler]
        cell[sampler] = {
            "regret_median": statistics.median(r["regret"] for r in mine),
            "mean_rank": round(rank_sum[sampler] / seeds, 2),
            "configurations_median": statistics.median(r["configurations"] for r in mine),
            "completed_median": statistics.median(r["completed"] for r in mine),
        }
    return cell, [r for s in samplers for r in by_sampler[s]]


if __name__ == "__main__":
    main()
