"""The tasks of the ASHA simulator (bench/asha_sim.py), by name, for bench/promotion_asha.py and
bench/asha_default.py."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
from asha_sim import STEPS, Task
from default_sampler_tasks import TABULAR, _index, load_tables, param
from demo_table import SAMPLES, TABLE, demo_task
from search import FUNCTIONS, branin, hartmann3

# Known minima at full fidelity (s = 1: the standard functions).
OPTIMUM = {
    "branin": branin({"x1": math.pi, "x2": 2.275}, STEPS, STEPS),  # 0.397887
    "hartmann3": hartmann3({"x1": 0.114614, "x2": 0.555649, "x3": 0.852547}, STEPS, STEPS),  # -3.86278
}


def corners(kind: str, grid: list, x: float) -> list[tuple[int, float]]:
    """(index, weight) of the grid points `x` lies between (multilinear interpolation); a category or an
    integer axis: its own point."""
    if kind in ("cat", "int"):
        return [(_index(kind, grid, x), 1.0)]
    scale = np.log if kind == "log" else np.asarray
    points, at = scale(np.asarray(grid, dtype=float)), float(scale(float(x)))
    i = int(np.clip(np.searchsorted(points, at) - 1, 0, len(grid) - 2))
    w = float(np.clip((at - points[i]) / (points[i + 1] - points[i]), 0.0, 1.0))
    return [(i, 1 - w), (i + 1, w)]


CURVES = ("mlp-digits", "gbm-cancer")  # tables whose last axis is a training's length: a learning curve


def curve_task(name: str) -> Task:
    """A table of bench/default_sampler_tasks.py as a learning-curve task: its last axis (MLP epochs 1..40,
    boosting rounds 1..150) is the fidelity, the other axes the space. Step s of a trial of `steps` reads
    the curve at ceil(s / steps) of its length: real validation losses of real trainings, with their
    over-fitting and divergence, where ASHA's rungs see what the trainings saw at that point.

    Between the grid's points of a range (learning rate, weight decay, width, subsample) the curves are
    interpolated (multilinear, on log axes in the log), as surrogate benchmarks do: snapped to a grid of
    126 or 288 configurations, a search of 50 to 150 configurations under ASHA would mostly re-run points
    it has seen, and random search would enumerate the grid. Categories and integer axes stay exact."""
    axes = dict(TABULAR[name][0])
    values = np.asarray(load_tables(names=(name,))[name], dtype=float).reshape([len(g) for _, g in axes.values()])
    length = len(axes.popitem()[1][1])
    space = {key: param(key, kind, grid) for key, (kind, grid) in axes.items()}

    def value(params: dict, step: int, steps: int) -> float:
        epoch = math.ceil(step * length / steps) - 1
        total = 0.0
        for combination in itertools.product(*(corners(k, g, params[key]) for key, (k, g) in axes.items())):
            index = tuple(i for i, _ in combination)
            total += math.prod(w for _, w in combination) * values[(*index, epoch)]
        return float(total)

    return Task(name, value, space, float(values[..., -1].min()))


def tasks(names: list[str], demo_table: Path = TABLE) -> list[Task]:
    """branin and hartmann3 (section 2a's functions; resuming is free), demo (real demo trainings' values,
    bench/demo_table.py, with the demo's measured start-up per job), demo-free-start (the same values,
    start-up free: the search dynamics alone), demo-smooth (the demo's values interpolated between its
    trainings, smooth_demo_task), and mlp-digits and gbm-cancer (curve_task)."""
    chosen = []
    for name in names:
        if name in CURVES:
            chosen.append(curve_task(name))
        elif name in FUNCTIONS:
            function, space = FUNCTIONS[name]
            chosen.append(Task(name, function, space, OPTIMUM[name]))
        elif name == "demo-smooth":
            chosen.append(smooth_demo_task(demo_table))
        elif name in ("demo", "demo-free-start"):
            task = demo_task(demo_table)
            chosen.append(task if name == "demo" else dataclasses.replace(task, name=name, startup_cost=0))
        else:
            raise SystemExit(
                f"unknown function {name!r}: branin, hartmann3, demo, demo-free-start, demo-smooth, {', '.join(CURVES)}"
            )
    return chosen


def smooth_demo_task(table: Path = TABLE) -> Task:
    """The demo table with its values interpolated between the grid's trainings (bilinear, the learning
    rate in the log) instead of the nearest training's: the same 27 real trainings, as the curve tasks
    read theirs. The nearest-point table is flat within a cell, which a GP (a smooth model) reads
    otherwise than the trainings' loss, itself smooth in the learning rate."""
    demo = demo_task(table)
    rows = [r for r in json.loads(table.read_text())["rows"] if r["eval_loss"] is not None]
    axes = {key: sorted({r["params"][key] for r in rows}) for key in demo.space}
    kinds = {key: "log" if p.log else "float" for key, p in demo.space.items()}
    points = sorted({int(s) for r in rows for s, _ in r["curve"]})
    values = np.full([len(g) for g in axes.values()] + [len(points) + 1], np.nan)
    for r in rows:
        index = tuple(axes[key].index(r["params"][key]) for key in axes)
        values[index] = [dict((int(s), v) for s, v in r["curve"])[p] for p in points] + [r["eval_loss"]]
    if np.isnan(values).any():
        raise SystemExit(f"{table}: demo-smooth needs every grid point trained, with a value at {points}")

    def value(params: dict, step: int, steps: int) -> float:
        at = len(points) if step == steps else points.index(math.ceil(step * SAMPLES / steps))
        total = 0.0
        for combination in itertools.product(*(corners(kinds[key], axes[key], params[key]) for key in axes)):
            total += math.prod(w for _, w in combination) * values[(*(i for i, _ in combination), at)]
        return float(total)

    return dataclasses.replace(demo, name="demo-smooth", function=value)
