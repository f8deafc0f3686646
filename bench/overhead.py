"""Trial overhead: the same K demo configurations run (a) as bare `llamafactory-cli train`, one after
another (the floor), and (b) through `tune start` with those configurations enqueued, concurrency 1;
then (c) through `tune start` with concurrency 2 on this machine's cores. Side by side, one run.

    .venv/bin/python bench/overhead.py [--out bench/results/overhead.json]

Per trial of (b): start-up (launch -> first trainer log line: imports, torchrun, tokenization,
model load), training + eval (the rest of the trial's wall time) and tuner's bookkeeping between
trials (the study's wall time not inside any trial: Ray start, scheduling, recording).
Last line: wall(b) / wall(a).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from tuner import _yaml  # noqa: E402
from tuner.block import load_block  # noqa: E402
from tuner.demo import build_demo  # noqa: E402
from tuner.launch import LaunchSpec, child_env, cli_path, free_port  # noqa: E402
from tuner.trial import TrialRequest, prepare  # noqa: E402
from tuner.workspace import trial_paths  # noqa: E402

CONFIGS = [
    {"learning_rate": 1e-3, "num_train_epochs": 2, "max_instances": 150},
    {"learning_rate": 3e-4, "num_train_epochs": 1, "max_instances": 150},
    {"learning_rate": 1e-4, "num_train_epochs": 2, "max_instances": 100},
    {"learning_rate": 1e-3, "num_train_epochs": 1, "max_instances": 100},
]
TUNABLES = {"learning_rate": {}, "num_train_epochs": {"low": 1, "high": 2}, "max_instances": {"low": 100, "high": 150}}
TUNE = str(Path(sys.executable).with_name("tune"))


def bench_block(tmp: Path) -> Path:
    demo = build_demo()
    data = _yaml.load(demo.block)
    data["runtime_info"]["input"]["training"]["model_name_or_path"] = str(demo.model_dir)
    data["runtime_info"]["input"]["conversion"]["source"] = str(demo.root / "data" / "trajectories.jsonl")
    data["evolving"]["tunable_params"] = TUNABLES
    path = tmp / "block.yaml"
    path.write_text(_yaml.dumps(data))
    return path


def bare(block_path: Path, tmp: Path) -> dict:
    """What a user would run by hand: the same rendered YAMLs, `llamafactory-cli train`, in sequence."""
    block = load_block(block_path)
    walls = []
    for i, params in enumerate(CONFIGS):
        paths = trial_paths(tmp / "bare", "bare", i)
        prepare(TrialRequest(block, params, paths))
        env = child_env(LaunchSpec(paths.yaml, paths.train_log), free_port())
        started = time.perf_counter()
        with paths.train_log.open("w") as log:
            subprocess.run([cli_path(), "train", str(paths.yaml)], env=env, stdout=log, stderr=subprocess.STDOUT,
                           check=True, cwd=paths.root)  # fmt: skip
        walls.append(time.perf_counter() - started)
    return {"wall_s": round(sum(walls), 1), "per_trial_s": [round(w, 1) for w in walls]}


def through_tuner(block_path: Path, tmp: Path, concurrency: int) -> dict:
    url, name = f"sqlite:///{tmp / f'c{concurrency}.db'}", f"overhead-c{concurrency}"
    study = optuna.create_study(study_name=name, storage=url)
    for params in CONFIGS:
        study.enqueue_trial(params)
    started = time.perf_counter()
    subprocess.run([TUNE, "start", "--config", str(block_path), "--budget", str(len(CONFIGS)), "--study", name,
                    "--storage", url, "--trials-dir", str(tmp / f"trials-c{concurrency}"), "--scheduler", "none",
                    "--max-concurrent", str(concurrency)], check=True, capture_output=True)  # fmt: skip
    wall = time.perf_counter() - started
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    assert [t.params for t in trials] == CONFIGS and all(t.state.name == "COMPLETE" for t in trials)
    per_trial = [{"wall_s": t.user_attrs["wall_s"], "startup_s": t.user_attrs.get("startup_s"),
                  "train_eval_s": round(t.user_attrs["wall_s"] - (t.user_attrs.get("startup_s") or 0), 1)}
                 for t in trials]  # fmt: skip
    inside = sum(p["wall_s"] for p in per_trial) / concurrency
    return {"wall_s": round(wall, 1), "per_trial": per_trial,
            "bookkeeping_s": round(wall - inside, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "overhead.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        block = bench_block(tmp)
        a = bare(block, tmp)
        print("bare llamafactory-cli:", json.dumps(a), flush=True)
        b = through_tuner(block, tmp, 1)
        print("tune start, concurrency 1:", json.dumps(b), flush=True)
        c = through_tuner(block, tmp, 2)
        print("tune start, concurrency 2:", json.dumps(c), flush=True)
    result = {"configs": CONFIGS, "bare": a, "tuner_c1": b, "tuner_c2": c,
              "ratio_c1": round(b["wall_s"] / a["wall_s"], 3),
              "ratio_c2": round(c["wall_s"] / a["wall_s"], 3)}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"concurrency 2: wall / bare = {result['ratio_c2']:.2f}")
    print(f"ratio wall(tune start, concurrency 1) / wall(bare llamafactory-cli): {result['ratio_c1']:.2f}")


if __name__ == "__main__":
    main()
