"""Which sampler should `tune start` use by default? Optuna 5's default TPE, random, GP and tuner's
candidates, side by side on the same tasks, seeds and trial budgets (equal trials, no early stopping).

Tasks (bench/default_sampler_tasks.py): tabular HPO of scikit-learn models on scikit-learn's bundled
datasets (an MLP on digits: learning rate, weight decay, batch size, width, epochs; gradient boosting
on breast_cancer; an RBF SVM on breast_cancer) and Branin / Hartmann-6. Each study is driven the way
tuner drives one: `study.ask(distributions)` / `study.tell`, in memory.

    .venv/bin/python bench/default_sampler.py            # the full run (≈ 20 min on one core)
    .venv/bin/python bench/default_sampler.py --quick    # 1 task, 2 seeds, 6 trials: a smoke test

Normalized regret = (best found − optimum) / (median over the space − optimum): 0 is the optimum, 1 a
typical random configuration. Per task and budget: the median over seeds, and the mean rank among the
strategies (ties share ranks). Overall: the mean over tasks × budgets of those medians, and of the
ranks. Last line: `median normalized regret, default / optuna-tpe: X.XX` (< 1: the default is better).
Writes bench/results/default_sampler.{json,log} (not with --quick).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from curves import ranks  # noqa: E402
from default_sampler_tasks import TASKS, Task, all_tasks, synthetic_task  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def quarter(budget: int) -> int:
    """tuner's startup-trial rule (tuner.study.samplers.default_startup_trials) for a trial budget."""
    return min(10, max(3, budget // 4))


BUDGET_AWARE = {"tpe-q", "gp-q", "default"}  # the others do not depend on the budget


def strategies() -> dict[str, Callable[[dict[str, Any], int, int], Any]]:
    """name -> (distributions, budget, seed) -> sampler. `default` is what `tune start` builds."""
    import optuna

    from tuner.study.samplers import default_sampler

    return {
        "optuna-tpe": lambda d, b, s: optuna.samplers.TPESampler(seed=s),
        "random": lambda d, b, s: optuna.samplers.RandomSampler(seed=s),
        "gp": lambda d, b, s: optuna.samplers.GPSampler(seed=s),
        "tpe-q": lambda d, b, s: optuna.samplers.TPESampler(seed=s, constant_liar=True, n_startup_trials=quarter(b)),
        "gp-q": lambda d, b, s: optuna.samplers.GPSampler(seed=s, n_startup_trials=quarter(b)),
        "default": lambda d, b, s: default_sampler(d, b, s),
    }


STRATEGY_NAMES = ("optuna-tpe", "random", "gp", "tpe-q", "gp-q", "default")


def run_one(task: Task, make: Callable[..., Any], budget: int, seed: int) -> dict[str, Any]:
    """One study: `budget` trials; the best-so-far curve and the sampler's seconds."""
    import optuna

    study = optuna.create_study(direction="minimize", sampler=make(task.distributions, budget, seed))
    best, curve = float("inf"), []
    started = time.process_time()
    for _ in range(budget):
        trial = study.ask(task.distributions)
        value = task.objective(trial.params)
        study.tell(trial, value)
        best = min(best, value)
        curve.append(best)
    return {"best": best, "regret": task.regret(best), "curve": curve, "cpu_s": time.process_time() - started}


def _quiet() -> None:
    """One thread for torch (GP), no Optuna chatter: in the main process and in each worker."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("optuna").setLevel(logging.ERROR)


def _job(job: tuple[str, str, int, int], quick: bool) -> list[dict[str, Any]]:
    """All seeds of one (task, strategy, budget); rebuilds the task by name (works in a worker)."""
    task_name, strategy, budget, seeds = job
    task = synthetic_task(task_name) if quick else all_tasks(lambda _: None, (task_name,))[0]
    make = strategies()[strategy]
    return [run_one(task, make, budget, seed) for seed in range(seeds)]


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]], names: list[str]) -> dict[str, Any]:
    """Per (task@budget) and overall: median normalized regret and mean rank per strategy."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for key, by_strategy in runs.items():
        seeds = len(by_strategy[names[0]])
        rank_rows = [ranks([by_strategy[n][i]["regret"] for n in names]) for i in range(seeds)]
        table[key] = {
            n: {
                "median_regret": statistics.median(r["regret"] for r in by_strategy[n]),
                "mean_rank": statistics.mean(row[j] for row in rank_rows),
                "cpu_s": statistics.mean(r["cpu_s"] for r in by_strategy[n]),
            }
            for j, n in enumerate(names)
        }
    overall = {
        n: {
            "median_regret": statistics.mean(t[n]["median_regret"] for t in table.values()),
            "mean_rank": statistics.mean(t[n]["mean_rank"] for t in table.values()),
        }
        for n in names
    }
    return {"per_task": table, "overall": overall}


def report(summary: dict[str, Any], names: list[str], log: Callable[[str], None]) -> None:
    width = max(len(k) for k in summary["per_task"]) + 2
    log("median normalized regret (mean rank) per strategy")
    log(" " * width + "".join(f"{n:>18}" for n in names))
    for key, row in summary["per_task"].items():
        log(f"{key:<{width}}" + "".join(f"{row[n]['median_regret']:>10.4f} ({row[n]['mean_rank']:.2f})" for n in names))
    row = summary["overall"]
    log(
        f"{'overall':<{width}}"
        + "".join(f"{row[n]['median_regret']:>10.4f} ({row[n]['mean_rank']:.2f})" for n in names)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default="20,50", help="trial budgets, comma-separated")
    parser.add_argument("--tasks", default="", help=f"of: {', '.join(TASKS)} (default: all)")
    parser.add_argument("--out", default="default_sampler", help="results file stem under bench/results")
    parser.add_argument(
        "--strategies", default="optuna-tpe,random,gp,tpe-q,default", help=f"of: {', '.join(STRATEGY_NAMES)}"
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one per core)")
    parser.add_argument("--quick", action="store_true", help="Branin, 2 seeds, 6 trials; writes nothing")
    args = parser.parse_args()
    import optuna

    _quiet()
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    if args.quick:
        tasks, budgets, seeds = [synthetic_task("branin")], [6], 2
    else:
        wanted = tuple(args.tasks.split(",")) if args.tasks else TASKS
        tasks, budgets, seeds = all_tasks(log, wanted), [int(b) for b in args.budgets.split(",")], args.seeds
    names = [n for n in STRATEGY_NAMES if n in args.strategies.split(",")]
    log(f"optuna {optuna.__version__}, python {platform.python_version()}, {platform.machine()}, seeds 0..{seeds - 1}")
    started = time.monotonic()
    # budget-free strategies run once, at the largest budget; the smaller budgets read its curve
    jobs = [
        (t.name, n, b, seeds) for t in tasks for n in names for b in (budgets if n in BUDGET_AWARE else [max(budgets)])
    ]
    by_name = {t.name: t for t in tasks}
    pool = ProcessPoolExecutor(args.jobs, initializer=_quiet) if args.jobs > 1 else None
    results = pool.map(_job, jobs, [args.quick] * len(jobs)) if pool else (_job(j, args.quick) for j in jobs)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    cpu_total = 0.0
    for (task_name, n, budget, _), studies in zip(jobs, results, strict=True):
        task = by_name[task_name]
        cpu_total += sum(r["cpu_s"] for r in studies)
        for b in budgets if n not in BUDGET_AWARE else [budget]:
            cut = [{**r, "best": r["curve"][b - 1], "regret": task.regret(r["curve"][b - 1])} for r in studies]
            runs.setdefault(f"{task.name}@{b}", {})[n] = cut
        if budget == max(budgets):
            cpu = statistics.mean(r["cpu_s"] for r in studies)
            log(f"{task_name} {n}: done at {time.monotonic() - started:.0f} s ({cpu:.1f} cpu s per {budget}-trial run)")
    if pool:
        pool.shutdown()
    summary = summarize(runs, names)
    report(summary, names, log)
    log(f"wall time {time.monotonic() - started:.0f} s, {cpu_total:.0f} cpu s in the studies ({args.jobs} jobs)")
    overall = summary["overall"]
    ratio = overall["default"]["median_regret"] / overall["optuna-tpe"]["median_regret"]
    log(f"median normalized regret, default / optuna-tpe: {ratio:.2f}")
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        compact = {k: {n: [{**r, "curve": None} for r in v] for n, v in by.items()} for k, by in runs.items()}
        (RESULTS / f"{args.out}.json").write_text(json.dumps({"summary": summary, "runs": compact}, indent=1))
        (RESULTS / f"{args.out}.log").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
