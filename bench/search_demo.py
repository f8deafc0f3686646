"""Search quality per unit of compute on the demo task itself: real LLaMA-Factory trainings of the
embedded Qwen3 through `tune start`, for random search, TPE, GP and TPE+ASHA, several seeds, the same
trial budget. Compute = summed trial process-seconds (what a GPU-hour budget counts; a pruned trial
costs only what it ran), in the order trials finished.

    .venv/bin/python bench/search_demo.py [--trials 8] [--seeds 3] [--concurrency 2] [--startup-trials 3]

The synthetic counterpart (hundreds of cheap trials, same study code) is bench/search.py.
Last line: median compute to get within 2% of the best eval_loss any run found, TPE+ASHA / random
(or, when a strategy never got there, median regret at equal compute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from curves import best_at, compute_to_reach

ROOT = Path(__file__).resolve().parents[1]
TUNE = str(Path(sys.executable).with_name("tune"))
STRATEGIES = {"random": ("random", "none"), "tpe": ("tpe", "none"), "gp": ("gp", "none"), "tpe+asha": ("tpe", "asha")}


def run(strategy: str, seed: int, args: argparse.Namespace, tmp: Path) -> dict:
    import optuna

    sampler, scheduler = STRATEGIES[strategy]
    url, name = f"sqlite:///{tmp / 'search_demo.db'}", f"{strategy.replace('+', '-')}-s{seed}"
    started = time.perf_counter()
    subprocess.run(
        [
            TUNE,
            "start",
            "--budget",
            str(args.trials),
            "--sampler",
            sampler,
            "--scheduler",
            scheduler,
            "--seed",
            str(seed),
            "--startup-trials",
            str(args.startup_trials),
            "--study",
            name,
            "--storage",
            url,
            "--trials-dir",
            str(tmp / "trials"),
            "--max-concurrent",
            str(args.concurrency),
        ],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    trials = sorted(
        (t for t in optuna.load_study(study_name=name, storage=url).get_trials() if t.datetime_complete),
        key=lambda t: t.datetime_complete,
    )
    best, compute, so_far, spent = [], [], float("inf"), 0.0
    for t in trials:
        spent += float(t.user_attrs.get("wall_s", 0.0))
        if t.state.name == "COMPLETE" and t.value is not None:
            so_far = min(so_far, t.value)
        best.append(so_far)
        compute.append(round(spent, 1))
    states = [t.state.name for t in trials]
    return {
        "strategy": strategy,
        "seed": seed,
        "best": best,
        "compute": compute,
        "wall_s": round(wall, 1),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "params_of_best": next((t.params for t in trials if t.value == so_far), None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--startup-trials", type=int, default=3)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "search_demo.json"))
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    runs = []
    with tempfile.TemporaryDirectory() as tmp_name:
        for seed in range(args.seeds):  # seeds outermost: a run cut short still compares strategies
            for strategy in strategies:
                result = run(strategy, seed, args, Path(tmp_name))
                runs.append(result)
                keys = ("strategy", "seed", "wall_s", "complete", "pruned", "failed", "params_of_best")
                line = {k: result[k] for k in keys} | {"best": result["best"][-1], "compute_s": result["compute"][-1]}
                print(json.dumps(line), flush=True)
    best_any = min(r["best"][-1] for r in runs)
    target = best_any + 0.02 * abs(best_any)
    budget = statistics.median(r["compute"][-1] for r in runs if r["strategy"] == "tpe+asha")
    summary = {}
    for strategy in strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        got = [c for c in (compute_to_reach(r, target) for r in mine) if c is not None]
        summary[strategy] = {
            "reached": f"{len(got)}/{len(mine)}",
            "compute_s_median": statistics.median(got) if got else None,
            "compute_s_min": min(got, default=None),
            "compute_s_max": max(got, default=None),
            "final_best_median": statistics.median(r["best"][-1] for r in mine),
            "compute_s_total_median": statistics.median(r["compute"][-1] for r in mine),
            f"regret_at_{budget:g}_s": statistics.median(best_at(r, budget) - best_any for r in mine),
        }
        print(f"{strategy:9s} {json.dumps(summary[strategy])}", flush=True)
    Path(args.out).write_text(
        json.dumps({"args": vars(args), "best_any": best_any, "summary": summary, "runs": runs}, indent=1) + "\n"
    )
    a, b = summary.get("tpe+asha", {}), summary.get("random", {})
    if a.get("compute_s_median") and b.get("compute_s_median"):
        print(
            f"ratio median compute to within 2% of best, tpe+asha / random: "
            f"{a['compute_s_median'] / b['compute_s_median']:.2f}"
        )
    else:
        key = f"regret_at_{budget:g}_s"
        ratio = a[key] / b[key] if b.get(key) else float("nan")
        print(f"ratio median regret at equal compute ({budget:g} process-s), tpe+asha / random: {ratio:.2f}")


if __name__ == "__main__":
    main()
