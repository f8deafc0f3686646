"""The default sampler against Optuna 5's default TPE with early stopping on, at equal compute (issue 14.3).

bench/default_sampler.py compares samplers at equal trials, without early stopping. `tune start`'s
default pairs `--sampler auto` with stop-type ASHA, where a stopped trial costs only what it ran; this
runs the samplers under stop-type ASHA in bench/asha_sim.py's simulator of asynchronous workers: each
run gets the same fidelity units (`--budgets`; 180 = 20 full trials, what `--budget 20` allows), the
same tasks (bench/asha_tasks.py: Branin, Hartmann-3 and the demo's real eval_loss table, its start-up
charged) and seeds. Samplers: default = `default_sampler(space, budget in full trials, seed)`, what
`tune start` builds (GP until a trial is PRUNED, then TPE: with ASHA that is after a few trials);
optuna-tpe = `TPESampler(seed=seed)`; random.

    .venv/bin/python bench/asha_default.py [--seeds 20] [--budgets 180,360] [--concurrency 2]
        [--functions branin,hartmann3,demo]

Per (task, budget): median regret and mean rank within each seed (1 = best; ties share).
Last line: median over the cells of the ratio of median regrets, default / optuna-tpe (< 1: the default wins).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import optuna  # noqa: E402
from asha_sim import simulate  # noqa: E402
from asha_tasks import tasks  # noqa: E402
from curves import ranks, regret_ratio  # noqa: E402

SAMPLERS = ("default", "optuna-tpe", "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", default="180,360")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--functions", default="branin,hartmann3,demo")
    parser.add_argument("--out", default=str(BENCH / "results" / "asha_default.json"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    cells, runs = [], []
    for task in tasks(args.functions.split(",")):
        for budget in (int(b) for b in args.budgets.split(",")):
            by_sampler = {
                s: [simulate(task, s, "stop", args.concurrency, budget, seed) for seed in range(args.seeds)]
                for s in SAMPLERS
            }
            rank_sum = dict.fromkeys(SAMPLERS, 0.0)
            for seed in range(args.seeds):
                regrets = [by_sampler[s][seed]["regret"] for s in SAMPLERS]
                for sampler, rank in zip(SAMPLERS, ranks(regrets), strict=True):
                    rank_sum[sampler] += rank
            cell = {"task": task.name, "budget": budget}
            for sampler in SAMPLERS:
                mine = by_sampler[sampler]
                cell[sampler] = {
                    "regret_median": statistics.median(r["regret"] for r in mine),
                    "mean_rank": round(rank_sum[sampler] / args.seeds, 2),
                    "configurations_median": statistics.median(r["configurations"] for r in mine),
                    "completed_median": statistics.median(r["completed"] for r in mine),
                }
                runs += mine
            cells.append(cell)
            shown = "  ".join(
                f"{s} {cell[s]['regret_median']:.4g} ({cell[s]['mean_rank']:.2f}, "
                f"{cell[s]['configurations_median']:g} configs)"
                for s in SAMPLERS
            )
            print(f"{task.name:10s} @{budget}: {shown}   [{time.time() - started:.0f} s]", flush=True)
    ratios = [regret_ratio(c["default"]["regret_median"], c["optuna-tpe"]["regret_median"]) for c in cells]
    mean_rank = {s: round(statistics.mean(c[s]["mean_rank"] for c in cells), 2) for s in SAMPLERS}
    print(f"mean rank over the cells: {mean_rank}")
    summary = {"ratios": ratios, "mean_rank": mean_rank, "ratio": statistics.median(ratios)}
    Path(args.out).write_text(json.dumps({"args": vars(args), "cells": cells, **summary, "runs": runs}) + "\n")
    print(f"median regret at equal compute with ASHA, default / optuna-tpe: {summary['ratio']:.2f}")


if __name__ == "__main__":
    main()
