"""Which rule compares trials of different lengths best: equal samples seen, or each trial's own fraction.

Real demo trainings (random configurations of the demo space: epochs and `max_instances` are tuned, so
the trials' lengths and learning-rate schedules differ) evaluated densely, every `--every` samples.
From each trial's curve, the value it would show at each ASHA rung under two rules:
  samples:  at the rung's absolute progress (samples seen), only trials that reach it (tuner's rule);
  fraction: at the same fraction of its own length (what evaluating at 25/50/75 % of each trial did).
A rung is only as good as its ranking predicts the final values: for each rule and rung, Spearman's
rank correlation between the rung values and the trials' final eval_loss, and whether the trial with
the best final value is among the top third at the rung (ASHA keeps a third).

    .venv/bin/python bench/rung_rule.py [--trials 12] [--seed 0] [--every 16] [--concurrency 2]

Last line: mean Spearman correlation over the rungs, samples rule / fraction rule.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from curves import spearman

ROOT = Path(__file__).resolve().parents[1]


def value_at(curve: list[tuple[int, float]], samples: float) -> float | None:
    """The first evaluation at or past `samples` (as a trial evaluating there would report)."""
    return next((v for s, v in curve if s >= samples), None)


def run_trials(args: argparse.Namespace, tmp: Path) -> tuple[list[dict[str, Any]], int]:
    import optuna

    from tuner.config.block import load_block
    from tuner.config.space import build_space
    from tuner.demo import build_demo
    from tuner.orchestrate.plan import max_samples
    from tuner.trial.prepare import TrialRequest, plan
    from tuner.trial.progress import read_history
    from tuner.trial.runner import run_trial
    from tuner.trial.workspace import trial_paths

    block = load_block(build_demo().block)
    space = build_space(block)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    configs = [study.ask(space.distributions()).params for _ in range(args.trials)]
    data = plan(TrialRequest(block, configs[0], trial_paths(tmp, "rung", 0)))[0]
    longest = max_samples(space, block, data)
    dense = tuple(range(args.every, longest + args.every, args.every))

    def one(i: int) -> dict[str, Any]:
        paths = trial_paths(tmp, "rung", i)
        result = run_trial(TrialRequest(block, configs[i], paths, progress_points=dense))
        gbs = result.global_batch_size
        curve = [(r.step * gbs, r.eval_metrics["eval_loss"]) for r in read_history(paths.output_dir) if r.is_eval]
        print(f"trial {i}: {result.exit_class} eval_loss={result.value} {configs[i]}", flush=True)
        return {
            "params": configs[i],
            "final": result.value,
            "planned": result.total_steps * gbs,
            "curve": curve,
            "wall_s": result.wall_s,
        }

    with ThreadPoolExecutor(args.concurrency) as pool:
        trials = list(pool.map(one, range(args.trials)))
    return [t for t in trials if t["final"] is not None and math.isfinite(t["final"])], longest


def analyse(trials: list[dict[str, Any]], longest: int) -> dict[str, Any]:
    from tuner.orchestrate.plan import SchedulerSettings

    rungs = SchedulerSettings.for_study("asha", longest).progress_points()
    best = min(range(len(trials)), key=lambda i: trials[i]["final"])
    rows = []
    for rung in rungs:
        for rule in ("samples", "fraction"):
            picked = []
            for i, t in enumerate(trials):
                if rule == "samples":
                    value = value_at(t["curve"], rung) if t["planned"] > rung else None
                else:
                    value = value_at(t["curve"], rung / longest * t["planned"])
                if value is not None:
                    picked.append((i, value))
            values = [v for _, v in picked]
            finals = [trials[i]["final"] for i, _ in picked]
            keep = {i for i, _ in sorted(picked, key=lambda p: p[1])[: max(1, math.ceil(len(picked) / 3))]}
            rows.append(
                {
                    "rung": rung,
                    "rule": rule,
                    "compared": len(picked),
                    "spearman": spearman(values, finals),
                    "best_kept": best in keep if any(i == best for i, _ in picked) else None,
                }
            )
    return {"rungs": list(rungs), "rows": rows, "best": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=16, help="evaluate every this many samples")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rung_rule.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trials, longest = run_trials(args, Path(tmp))
    report = analyse(trials, longest)
    print(f"\n{len(trials)} finished trials; longest trial {longest} samples; rungs at {report['rungs']} samples")
    print(f"{'rung':>6} {'rule':>9} {'compared':>9} {'spearman':>9} {'final best kept':>16}")
    for row in report["rows"]:
        print(
            f"{row['rung']:>6} {row['rule']:>9} {row['compared']:>9} {row['spearman']:>9.3f} {row['best_kept']!s:>16}"
        )
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "trials": trials, **report}, indent=1))
    mean = {
        rule: sum(r["spearman"] for r in report["rows"] if r["rule"] == rule) / len(report["rungs"])
        for rule in ("samples", "fraction")
    }
    print(f"mean Spearman over rungs, samples rule / fraction rule: {mean['samples']:.3f} / {mean['fraction']:.3f}")


if __name__ == "__main__":
    main()
