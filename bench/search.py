"""Search quality per unit of compute: random vs TPE vs GP vs TPE+ASHA, several seeds, same budget.

Synthetic multi-fidelity functions (cheap: hundreds of trials) run through tuner's real study code
(bench/harness.py: StudySession, Optuna samplers, Ray Tune + ASHA, SQLite study):
- Branin with a fidelity axis (the multi-fidelity Branin of the Hyperband/BOHB literature),
- Hartmann-3 with a fidelity axis (alpha shifted by 0.1*(1-s), as in BoTorch's test problems).
Compute = fidelity units consumed (a pruned trial costs only what it ran).

    .venv/bin/python bench/search.py [--trials 40] [--seeds 3] [--steps 9]

Also, per unit of compute: every strategy's best value once it has spent what a TPE+ASHA run spends
in total. Last line: median regret at that equal compute, TPE(5 startup trials)+ASHA / random
(< 1: better per unit of compute).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from curves import best_at, compute_to_reach
from harness import ROOT, STRATEGIES, run_study

from tuner.config.space import Param

HARTMANN_A = [[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]]
HARTMANN_P = [[0.3689, 0.1170, 0.2673], [0.4699, 0.4387, 0.7470], [0.1091, 0.8732, 0.5547], [0.0381, 0.5743, 0.8828]]
HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]


def branin(params: dict, fidelity: int, steps: int) -> float:
    s = fidelity / steps
    x1, x2 = params["x1"], params["x2"]
    b = 5.1 / (4 * math.pi**2) - 0.1 * (1 - s)
    c, r = 5 / math.pi, 6.0
    t = 1 / (8 * math.pi) + 0.05 * (1 - s)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann3(params: dict, fidelity: int, steps: int) -> float:
    s = fidelity / steps
    x = [params["x1"], params["x2"], params["x3"]]
    total = 0.0
    for i in range(4):
        alpha = HARTMANN_ALPHA[i] - 0.1 * (1 - s)
        total += alpha * math.exp(-sum(HARTMANN_A[i][j] * (x[j] - HARTMANN_P[i][j]) ** 2 for j in range(3)))
    return -total


FUNCTIONS = {
    "branin": (
        branin,
        {"x1": Param("x1", "float", "training", -5.0, 10.0), "x2": Param("x2", "float", "training", 0.0, 15.0)},
    ),
    "hartmann3": (hartmann3, {f"x{i}": Param(f"x{i}", "float", "training", 0.0, 1.0) for i in (1, 2, 3)}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=9)
    parser.add_argument("--functions", default="branin,hartmann3")
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES), help="comma-separated, of " + ",".join(STRATEGIES)
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "search.json"))
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    results: dict[str, list[dict]] = {}
    summary = {}
    for name in args.functions.split(","):
        function, params = FUNCTIONS[name]
        runs = []
        for strategy in strategies:
            for seed in range(args.seeds):
                run = run_study(
                    lambda p, f, fn=function: fn(p, f, args.steps), params, strategy, seed, args.trials, args.steps
                )
                runs.append(run.__dict__)
                print(
                    json.dumps(
                        {
                            "function": name,
                            "strategy": strategy,
                            "seed": seed,
                            "best": run.best[-1],
                            "compute": run.compute[-1],
                            "pruned": run.pruned,
                            "wall_s": round(run.wall_s, 1),
                        }
                    ),
                    flush=True,
                )
        results[name] = runs
        best_any = min(r["best"][-1] for r in runs)
        target = best_any + 0.02 * abs(best_any)
        for strategy in strategies:
            mine = [r for r in runs if r["strategy"] == strategy]
            reach = [compute_to_reach(r, target) for r in mine]
            got = [c for c in reach if c is not None]
            summary[f"{name}/{strategy}"] = {
                "reached": f"{len(got)}/{len(mine)}",
                "compute_median": statistics.median(got) if got else None,
                "compute_min": min(got) if got else None,
                "compute_max": max(got) if got else None,
                "final_best_median": statistics.median(r["best"][-1] for r in mine),
                "compute_total_median": statistics.median(r["compute"][-1] for r in mine),
            }
            print(
                f"{name:10s} {strategy:9s} reached {summary[f'{name}/{strategy}']['reached']} "
                f"compute to within 2%: {summary[f'{name}/{strategy}']}",
                flush=True,
            )
    # Per unit of compute: each strategy's best value once it has spent as much as a TPE+ASHA run
    # spends in total (the smallest budget here), as regret over the best value any run found.
    ratios = []
    for name, runs in results.items():
        best_any = min(r["best"][-1] for r in runs)
        budget = statistics.median(r["compute"][-1] for r in runs if r["strategy"] == "tpe-s5+asha")
        regret = {}
        for strategy in strategies:
            values = [best_at(r, budget) - best_any for r in runs if r["strategy"] == strategy]
            regret[strategy] = statistics.median(values)
        summary[f"{name}/regret_at_{budget:g}_units"] = regret
        print(
            f"{name:10s} median regret after {budget:g} fidelity units: "
            + ", ".join(f"{k} {v:.4g}" for k, v in regret.items()),
            flush=True,
        )
        ratios.append(regret["tpe-s5+asha"] / regret["random"] if regret["random"] > 0 else float("nan"))
    Path(args.out).write_text(json.dumps({"summary": summary, "runs": results}, indent=1) + "\n")
    print(f"ratio median regret at equal compute, tpe-s5+asha / random: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
