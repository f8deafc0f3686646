"""Search quality on the demo task itself: real LLaMA-Factory trainings of the embedded Qwen3 through
`tune start`, for random search, TPE and the default sampler (`--sampler auto`: GP on the demo's
all-numeric space), no scheduler, several seeds, the same trial budget and startup trials.
Compute = summed trial process-seconds (what a GPU-hour budget counts), in the order trials finished.

    .venv/bin/python bench/search_demo.py [--trials 10] [--seeds 3] [--concurrency 2] [--startup-trials 3]

The demo's best region is inside its space (about 3 of 1..5 epochs at lr 3e-4 of 1e-5..1e-3:
bench/landscape.py, docs/benchmarks.md 2g), so probing the corners does not find it. The synthetic
counterpart (hundreds of cheap trials, same study code) is bench/search.py.
Per strategy: median final best eval_loss, mean rank across seeds (1 = best of the seed), median
regret (final best minus the best any run found) and process-seconds.
Last line: median regret, default / tpe (and default / random).
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

from curves import ranks, regret_ratio

ROOT = Path(__file__).resolve().parents[1]
TUNE = str(Path(sys.executable).with_name("tune"))
STRATEGIES = {"random": ("random", "none"), "tpe": ("tpe", "none"), "default": ("auto", "none")}


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
    parser.add_argument("--trials", type=int, default=10)
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
    summary = summarize(runs, strategies, args.seeds)
    for strategy in strategies:
        print(f"{strategy:8s} {json.dumps(summary[strategy])}", flush=True)
    best_any = min(r["best"][-1] for r in runs)
    Path(args.out).write_text(
        json.dumps({"args": vars(args), "best_any": best_any, "summary": summary, "runs": runs}, indent=1) + "\n"
    )
    regret = {s: summary[s]["regret_median"] for s in strategies}
    if {"default", "tpe", "random"} <= set(regret):
        print(
            f"median regret, default / tpe: {regret_ratio(regret['default'], regret['tpe']):.2f} "
            f"(default / random: {regret_ratio(regret['default'], regret['random']):.2f})"
        )


def summarize(runs: list[dict], strategies: list[str], seeds: int) -> dict[str, dict]:
    """Median final best, mean rank within each seed (ties share), regret and process-seconds."""
    best_any = min(r["best"][-1] for r in runs)
    rank_sum = dict.fromkeys(strategies, 0.0)
    for seed in range(seeds):
        mine = [next(r for r in runs if r["seed"] == seed and r["strategy"] == s) for s in strategies]
        for strategy, rank in zip(strategies, ranks([r["best"][-1] for r in mine]), strict=True):
            rank_sum[strategy] += rank
    summary = {}
    for strategy in strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        summary[strategy] = {
            "final_best_median": round(statistics.median(r["best"][-1] for r in mine), 4),
            "final_best_by_seed": [round(r["best"][-1], 4) for r in mine],
            "mean_rank": round(rank_sum[strategy] / seeds, 2),
            "regret_median": round(statistics.median(r["best"][-1] - best_any for r in mine), 4),
            "process_s_median": statistics.median(r["compute"][-1] for r in mine),
            "wall_s_median": statistics.median(r["wall_s"] for r in mine),
        }
    return summary


if __name__ == "__main__":
    main()
