"""The demo as a task for bench/asha_sim.py: the eval_loss of real demo trainings, looked up.

A grid of learning rate × warm-up ratio, each a real training of the block's 3 epochs of 50
conversations (150 samples at batch 1), evaluated at the ASHA rungs of a 9-step trial (the first step
reaching 150/9 and 150/3 samples: 17 and 50) and at its end. A configuration's value is that of the
nearest grid point (in log learning rate and warm-up ratio, each scaled to its range). Made by

    .venv/bin/python bench/landscape.py --grid learning_rate=1e-5,2e-5,5e-5,1e-4,2e-4,3e-4,5e-4,7e-4,1e-3 \\
        warmup_ratio=0.0,0.1,0.2 --at 17,50 --out bench/results/demo_table.json

The start-up a job pays (process, imports, model load, ZeRO-3 set-up, before its first step) is fitted
on bench/results/landscape.json, whose trials differ in length: wall = start-up + time per sample ×
samples, least squares; it is given in fidelity steps of this trial (150 / 9 samples each).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from asha_sim import STEPS, Task

from tuner.config.space import Param

BENCH = Path(__file__).resolve().parent
TABLE = BENCH / "results" / "demo_table.json"
LANDSCAPE = BENCH / "results" / "landscape.json"
SAMPLES = 150  # 3 epochs of 50 conversations at batch 1 and accumulation 1: the demo block's values
LR_LOW, LR_HIGH, WARMUP_HIGH = 1e-5, 1e-3, 0.2  # the demo's space


def startup_steps(landscape: Path = LANDSCAPE) -> int:
    """The demo's start-up in fidelity steps, from trials of several lengths (batch 1: samples = steps)."""
    rows = [r for r in json.loads(landscape.read_text())["rows"] if r["exit"].endswith("ok")]
    xs, ys = [float(r["steps"]) for r in rows], [float(r["wall_s"]) for r in rows]
    if len(set(xs)) < 2:
        raise SystemExit(f"{landscape}: needs trials of two lengths or more to fit the start-up")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    per_sample = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    startup_s = my - per_sample * mx
    return round(startup_s / (per_sample * SAMPLES / STEPS))


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
    return Task("demo", value, space, min(float(r["eval_loss"]) for r in rows), startup_steps())
