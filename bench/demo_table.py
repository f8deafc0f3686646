"""The demo as a task for bench/asha_sim.py: the eval_loss of real demo trainings, looked up.

A grid of learning rate × warm-up ratio, each a real training of the block's 3 epochs of 50
conversations (150 samples at batch 1), evaluated at the ASHA rungs of a 9-step trial (the first step
reaching 150/9 and 150/3 samples: 17 and 50) and at its end. A configuration's value is that of the
nearest grid point (in log learning rate and warm-up ratio, each scaled to its range). Made by

    .venv/bin/python bench/landscape.py --grid learning_rate=1e-5,2e-5,5e-5,1e-4,2e-4,3e-4,5e-4,7e-4,1e-3 \\
        warmup_ratio=0.0,0.1,0.2 --at 17,50 --out bench/results/demo_table.json

The start-up a job pays (process, imports, tokenization, model load, ZeRO-3 set-up) is measured on the
same trainings: the runner's `startup_s` (launch to the trainer's first log line, 5 steps in), against
the rest of the trial's wall time (training, evaluations, exit) spread over its 9 fidelity steps; medians
over the table, in fidelity steps.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from asha_sim import STEPS, Task

from tuner.config.space import Param

BENCH = Path(__file__).resolve().parent
TABLE = BENCH / "results" / "demo_table.json"
SAMPLES = 150  # 3 epochs of 50 conversations at batch 1 and accumulation 1: the demo block's values
LR_LOW, LR_HIGH, WARMUP_HIGH = 1e-5, 1e-3, 0.2  # the demo's space


def startup_steps(rows: list[dict]) -> int:
    """The demo's start-up in fidelity steps: median start-up over median time per step."""
    timed = [r for r in rows if r.get("startup_s")]
    if not timed:
        raise SystemExit("the demo table has no startup_s: make it again with bench/landscape.py")
    startup = statistics.median(r["startup_s"] for r in timed)
    per_step = statistics.median((r["wall_s"] - r["startup_s"]) / STEPS for r in timed)
    return round(startup / per_step)


def demo_task(table: Path = TABLE) -> Task:
    rows = [r for r in json.loads(table.read_text())["rows"] if r["eval_loss"] is not None]
    if not rows:
        raise SystemExit(f"{table}: no finished training; make it with the command in bench/demo_table.py")
    span = math.log10(LR_HIGH / LR_LOW)

    def distance(row: dict, params: dict) -> float:
        lr = math.log10(row["params"]["learning_rate"] / params["learning_rate"]) / span
        return lr**2 + ((row["params"]["warmup_ratio"] - params["warmup_ratio"]) / WARMUP_HIGH) ** 2

    def value(params: dict, step: int, steps: int) -> float:
        row = min(rows, key=lambda r: distance(r, params))
        if step == steps:
            return float(row["eval_loss"])
        return float(dict((int(s), v) for s, v in row["curve"])[math.ceil(step * SAMPLES / steps)])

    space = {
        "learning_rate": Param("learning_rate", "float", "training", LR_LOW, LR_HIGH, log=True),
        "warmup_ratio": Param("warmup_ratio", "float", "training", 0.0, WARMUP_HIGH),
    }
    return Task("demo", value, space, min(float(r["eval_loss"]) for r in rows), startup_steps(rows))
