"""The tasks of the ASHA simulator (bench/asha_sim.py), by name, for bench/promotion_asha.py and
bench/asha_default.py."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from asha_sim import STEPS, Task
from demo_table import TABLE, demo_task
from search import FUNCTIONS, branin, hartmann3

# Known minima at full fidelity (s = 1: the standard functions).
OPTIMUM = {
    "branin": branin({"x1": math.pi, "x2": 2.275}, STEPS, STEPS),  # 0.397887
    "hartmann3": hartmann3({"x1": 0.114614, "x2": 0.555649, "x3": 0.852547}, STEPS, STEPS),  # -3.86278
}


def tasks(names: list[str], demo_table: Path = TABLE) -> list[Task]:
    """branin and hartmann3 (section 2a's functions; resuming is free), demo (real demo trainings' values,
    bench/demo_table.py, with the demo's measured start-up per job) and demo-free-start (the same values,
    start-up free: the search dynamics alone)."""
    chosen = []
    for name in names:
        if name in FUNCTIONS:
            function, space = FUNCTIONS[name]
            chosen.append(Task(name, function, space, OPTIMUM[name]))
        elif name in ("demo", "demo-free-start"):
            task = demo_task(demo_table)
            chosen.append(task if name == "demo" else dataclasses.replace(task, name=name, startup_cost=0))
        else:
            raise SystemExit(f"unknown function {name!r}: branin, hartmann3, demo, demo-free-start")
    return chosen
