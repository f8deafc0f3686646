"""No rung inside a warm-up (docs/benchmarks.md 2d): the demo's rungs where tuner put them before (a ninth
and a third of the longest trial) against after the longest warm-up of the space, side by side.

The demo tunes warmup_ratio up to 0.2: its trial of 150 samples still ramps its learning rate until
sample 30, so a rung at 16 compares how far trials have ramped. Two measurements on the demo table with
a curve at every rung (bench/demo_table.py, `--at 16,17,30,48,50,90 --every 10`):
- how each rung ranks the 27 configurations against their final eval_loss (Spearman, and the place of
  the final best);
- bench/asha_default.py's simulated studies (stop-type ASHA, 2 workers, 180 and 360 units = 20 and 40
  full trials, start-up charged) for each sampler on the same seeds under both grids, compared seed by
  seed: how often the warm-up grid ends with a better, worse or equal final best.

    .venv/bin/python bench/rung_warmup.py [--seeds 60] [--samplers default,gp,optuna-tpe,random] [--jobs 2]

Last line: over the model-based samplers' paired runs, the warm-up grid better / worse, and the sign
test's two-sided p on the runs that differ.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from asha_default import run_cell  # noqa: E402
from asha_sim import rungs_for  # noqa: E402
from curves import better_worse_tied, sign_test, spearman  # noqa: E402
from demo_table import SAMPLES, WARMUP_HIGH  # noqa: E402

STEPS = SAMPLES  # one step per demo sample
# tuner's rule without and with the demo's longest warm-up (0.2 x 150): (16, 48) and (30, 90). Without, the
# rule also puts a third rung at 144 (9 x 16 < 150), 96 % through a trial, where the table has no value:
# left out, it is compared as a ninth and a third.
GRIDS = {"ninth": rungs_for(STEPS)[:2], "after warm-up": rungs_for(STEPS, math.ceil(WARMUP_HIGH * STEPS))}
TABLE = BENCH / "results" / "demo_table_rungs.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--budgets", default="180,360")
    parser.add_argument("--samplers", default="default,gp,optuna-tpe,random")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(BENCH / "results" / "rung_warmup.json"))
    args = parser.parse_args()
    started = time.time()
    rows = json.loads(TABLE.read_text())["rows"]
    final = [r["eval_loss"] for r in rows]
    best = min(range(len(rows)), key=final.__getitem__)
    fidelity = {}
    for point in sorted({p for grid in GRIDS.values() for p in grid}):
        at = [dict(r["curve"])[point] for r in rows]
        place = sorted(range(len(rows)), key=at.__getitem__).index(best) + 1
        fidelity[point] = {"spearman": round(spearman(at, final), 3), "final_best_place": place}
        rho = fidelity[point]["spearman"]
        print(
            f"rung at {point:3d} samples: Spearman with the final eval_loss {rho:.3f}, final best {place}/{len(rows)}"
        )
    samplers, budgets = args.samplers.split(","), [int(b) for b in args.budgets.split(",")]
    jobs = [
        ("demo", budget, samplers, args.seeds, 2, STEPS, grid, str(TABLE))
        for grid in GRIDS.values()
        for budget in budgets
    ]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.map(run_cell, jobs)
    by_grid: dict[tuple, list[dict]] = {}  # (grid, sampler, budget) -> its runs, one per seed
    for (_, budget, *_rest, grid, _table), (_cell, runs) in zip(jobs, results, strict=True):
        for run in runs:
            by_grid.setdefault((grid, run["sampler"], budget), []).append(run)
    before, after = GRIDS.values()
    comparison, model_wins, model_losses = [], 0, 0
    for sampler in samplers:
        for budget in budgets:
            pair = [by_grid[(before, sampler, budget)], by_grid[(after, sampler, budget)]]
            wins, losses, ties = better_worse_tied(pair[1], pair[0])
            row = {
                "sampler": sampler,
                "budget": budget,
                "better": wins,
                "worse": losses,
                "tie": ties,
                "mean_regret": [round(statistics.mean(r["regret"] for r in runs), 4) for runs in pair],
                "median_regret": [round(statistics.median(r["regret"] for r in runs), 4) for runs in pair],
                "configurations_median": [statistics.median(r["configurations"] for r in runs) for runs in pair],
            }
            comparison.append(row)
            if sampler != "random":
                model_wins, model_losses = model_wins + wins, model_losses + losses
            print(
                f"{sampler:10s} @{budget}: warm-up grid better {wins} / worse {losses} / tie {row['tie']}; "
                f"mean regret {row['mean_regret'][0]} -> {row['mean_regret'][1]}; median "
                f"{row['median_regret'][0]} -> {row['median_regret'][1]}; configurations "
                f"{row['configurations_median'][0]:g} -> {row['configurations_median'][1]:g}"
            )
    p = sign_test(model_wins, model_losses)
    Path(args.out).write_text(
        json.dumps({"args": vars(args), "grids": GRIDS, "fidelity": fidelity, "comparison": comparison, "p": p}) + "\n"
    )
    print(f"[{time.time() - started:.0f} s]")
    print(
        f"model-based samplers, rungs after the warm-up better / worse: {model_wins} / {model_losses} "
        f"(sign test p = {p:.2g})"
    )


if __name__ == "__main__":
    main()
