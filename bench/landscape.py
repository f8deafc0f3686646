"""Where the demo's optimum lies: real demo trainings on a grid of configurations, final eval_loss each.

Each trial is a real LLaMA-Factory training of the embedded Qwen3 through tuner's own trial code
(tuner.trial.runner.run_trial, as `tune trial` runs it), so the values are the ones a study sees.
A search benchmark on the demo (bench/search_demo.py) can only tell strategies apart if the best
configuration is inside the space, not in a corner every boundary-seeking method finds.

    .venv/bin/python bench/landscape.py [--grid learning_rate=1e-4,3e-4,1e-3 num_train_epochs=1,3,5]
        [--set training.per_device_train_batch_size=4 ...] [--every 0] [--at 17,50] [--concurrency 2]

`--set` changes the demo block (keys under runtime_info.input) for exploring other settings of the
demo; `--every N` also records each trial's eval_loss every N samples (its curve), `--at` at the
samples listed (bench/demo_table.py uses the rungs of a 150-sample trial).
Last line: the best configuration, and whether it is interior in every gridded parameter.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tuner.config import yaml_io

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GRID = ("learning_rate=1e-4,3e-4,1e-3", "num_train_epochs=1,3,5")


def number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "e" not in text.lower() and "." not in text else value


def parse_grid(items: list[str]) -> dict[str, list[int | float]]:
    return {name: [number(v) for v in values.split(",")] for name, values in (i.split("=", 1) for i in items)}


def demo_block(changes: list[str], tmp: Path) -> Path:
    """The demo block with `--set` changes (absolute paths, so it can live anywhere)."""
    from tuner.demo import build_demo

    demo = build_demo()
    data = yaml_io.load(demo.block)
    section = data["runtime_info"]["input"]
    section["training"]["model_name_or_path"] = str(demo.model_dir)
    section["conversion"]["source"] = str(demo.root / section["conversion"]["source"])
    for change in changes:
        key, value = change.split("=", 1)
        *parents, last = key.split(".")
        node = section
        for part in parents:
            node = node[part]
        node[last] = yaml_io.loads(f"v: {value}")["v"]
    path = tmp / "block.yaml"
    path.write_text(yaml_io.dumps(data), encoding="utf-8")
    return path


def run_grid(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    from tuner.config.block import load_block
    from tuner.trial.prepare import TrialRequest
    from tuner.trial.progress import read_history
    from tuner.trial.runner import run_trial
    from tuner.trial.workspace import trial_paths

    block = load_block(demo_block(args.set, tmp))
    grid = parse_grid(args.grid)
    configs = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    dense = tuple(range(args.every, 100_000, args.every)) if args.every else ()
    dense = tuple(sorted({*dense, *(int(a) for a in args.at.split(",") if a)}))

    def one(i: int) -> dict[str, Any]:
        paths = trial_paths(tmp, "landscape", i)
        started = time.perf_counter()
        result = run_trial(TrialRequest(block, configs[i], paths, progress_points=dense))
        gbs = result.global_batch_size
        curve = [(r.step * gbs, r.eval_metrics["eval_loss"]) for r in read_history(paths.output_dir) if r.is_eval]
        row = {
            "params": configs[i],
            "eval_loss": result.value,
            "exit": str(result.exit_class),
            "steps": result.total_steps,
            "wall_s": round(time.perf_counter() - started, 1),
            "startup_s": result.startup_s,  # launch -> the trainer's first log line
            "curve": curve,
        }
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
        return row

    with ThreadPoolExecutor(args.concurrency) as pool:
        return list(pool.map(one, range(len(configs))))


def report(rows: list[dict[str, Any]], grid: dict[str, list[int | float]]) -> dict[str, Any]:
    """A table (first gridded parameter down, the others across) and where the best value is."""
    names = list(grid)
    finite = [r for r in rows if r["eval_loss"] is not None and math.isfinite(r["eval_loss"])]
    best = min(finite, key=lambda r: r["eval_loss"])
    across = list(itertools.product(*(grid[n] for n in names[1:])))
    print("\n" + f"{names[0]:>14} | " + " | ".join(",".join(f"{v:g}" for v in a) for a in across))
    for v in grid[names[0]]:
        cells = []
        for a in across:
            params = dict(zip(names, (v, *a), strict=True))
            hit = next((r for r in rows if r["params"] == params), None)
            value = hit["eval_loss"] if hit else None
            cells.append(f"{value:.4f}" if value is not None else "   -  ")
        print(f"{v:>14g} | " + " | ".join(cells))
    interior = {n: grid[n][0] < best["params"][n] < grid[n][-1] for n in names if len(grid[n]) > 2}
    return {"best": best["params"], "best_eval_loss": best["eval_loss"], "interior": interior}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", nargs="+", default=list(DEFAULT_GRID), help="NAME=v1,v2,... (a product)")
    parser.add_argument("--set", nargs="*", default=[], help="KEY=VALUE under runtime_info.input")
    parser.add_argument("--every", type=int, default=0, help="also evaluate every this many samples")
    parser.add_argument("--at", default="", help="also evaluate at these samples seen, e.g. 17,50")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "landscape.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_grid(args, Path(tmp))
    summary = report(rows, parse_grid(args.grid))
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows, **summary}, indent=1))
    walls = sorted(r["wall_s"] for r in rows)
    median, longest = walls[len(walls) // 2], walls[-1]
    print(f"trial wall time: median {median:.1f} s, max {longest:.1f} s (concurrency {args.concurrency})")
    print(f"best: {summary['best']} eval_loss {summary['best_eval_loss']:.4f}; interior: {summary['interior']}")


if __name__ == "__main__":
    main()
