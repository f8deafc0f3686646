"""Ray Tune's published anchor, in tuner's form: N one-second trials through tuner's whole control
plane (Ray Tune + the searcher bound to the SQL study + StudySession bookkeeping), against the
floor N x 1 s / concurrency. Ray reports 10,000 such trials on 16 CPUs: 715 s vs 625 s (14%).

    .venv/bin/python bench/ray_anchor.py [--trials 200] [--concurrency 2]

Last line: wall / floor.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness import ROOT, run_study

from tuner.config.space import Param


def one_second(params: dict, fidelity: int) -> float:
    time.sleep(1.0)
    return params["x"] ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ray_anchor.json"))
    args = parser.parse_args()
    run = run_study(
        one_second,
        {"x": Param("x", "float", "training", -1.0, 1.0)},
        "random",
        0,
        args.trials,
        steps=1,
        concurrency=args.concurrency,
    )
    floor = args.trials * 1.0 / args.concurrency
    row = {
        "trials": run.trials,
        "concurrency": args.concurrency,
        "wall_s": round(run.wall_s, 1),
        "floor_s": floor,
        "overhead_pct": round(100 * (run.wall_s / floor - 1), 1),
        "per_trial_overhead_s": round((run.wall_s - floor) * args.concurrency / args.trials, 3),
    }
    print(json.dumps(row))
    Path(args.out).write_text(json.dumps(row, indent=2) + "\n")
    print(f"ratio wall/floor: {run.wall_s / floor:.2f}")


if __name__ == "__main__":
    main()
