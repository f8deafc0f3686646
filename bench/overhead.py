"""Trial overhead: the same K demo configurations run (a) as bare `llamafactory-cli train`, one after
another (the floor), and (b) through `tune start` with those configurations enqueued, concurrency 1;
then (c) through `tune start` with concurrency 2 on this machine's cores. Side by side, one run.

    .venv/bin/python bench/overhead.py [--out bench/results/overhead.json]

Per trial, for (a) and (b) alike, read from the trial's own log and metrics: launcher (llamafactory-cli
import up to torchrun; tuner starts torchrun itself), worker imports (torchrun -> the worker's argument
parser), data (loading,
converting, tokenizing or loading the cached tokenized set), model load, training, final eval, and the
rest (saving, exit). For (b), also tuner's bookkeeping outside trials: the study's wall time not
inside any trial (driver imports, preflight, Ray start, scheduling, recording, shutdown).
One bare warm-up run comes first, so neither side pays for a cold page cache.
Last line: wall(b) / wall(a).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from tuner.config import yaml_io  # noqa: E402
from tuner.config.block import load_block  # noqa: E402
from tuner.demo import build_demo  # noqa: E402
from tuner.trial.launch import LaunchSpec, child_env, free_port  # noqa: E402
from tuner.trial.prepare import TrialRequest, prepare  # noqa: E402
from tuner.trial.workspace import trial_paths  # noqa: E402

CONFIGS = [
    {"learning_rate": 1e-3, "num_train_epochs": 2, "max_instances": 150},
    {"learning_rate": 3e-4, "num_train_epochs": 1, "max_instances": 150},
    {"learning_rate": 1e-4, "num_train_epochs": 2, "max_instances": 100},
    {"learning_rate": 1e-3, "num_train_epochs": 1, "max_instances": 100},
]
TUNABLES = {"learning_rate": {}, "num_train_epochs": {"low": 1, "high": 2}, "max_instances": {"low": 100, "high": 150}}
TUNE = str(Path(sys.executable).with_name("tune"))
CLI = str(Path(sys.executable).with_name("llamafactory-cli"))  # what a user runs by hand


# "[INFO|2026-11-28 22:59:13] llamafactory..." and "[INFO|trainer.py:1469] 2026-11-28 22:59:15,788 >> ..."
_STAMP = re.compile(r"^\[\w+\|(?:[^\]]*\] )?\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:,(\d{3}))?")
# "launcher": the line llamafactory-cli prints before it starts torchrun (tuner prints the same one).
_MARKS = {
    "launcher": "distributed tasks at:",
    "parser": "hparams.parser",
    "data": "Loading dataset",
    "model": "loading weights file",
    "train": "***** Running training *****",
}


def phases(train_log: Path, metrics: dict, wall_s: float) -> dict[str, float]:
    """Where one trial's wall time went, from its log's timestamps (1 s resolution on LLaMA-Factory's
    own lines) and the trainer's runtimes."""
    import datetime as dt

    seen: dict[str, float] = {}
    for line in train_log.read_text(errors="replace").splitlines():
        stamp = _STAMP.match(line)
        if not stamp:
            continue
        at = dt.datetime.fromisoformat(stamp.group(1)).timestamp() + int(stamp.group(2) or 0) / 1000
        for mark, text in _MARKS.items():
            if mark not in seen and text in line:
                seen[mark] = at
    if len(seen) < len(_MARKS):
        return {}
    train, final_eval = float(metrics.get("train_runtime", 0)), float(metrics.get("eval_runtime", 0))
    split = {
        "worker_imports_s": seen["parser"] - seen["launcher"],
        "data_s": seen["model"] - seen["data"],
        "model_load_s": seen["train"] - seen["model"],
        "train_s": train,
        "final_eval_s": final_eval,
    }
    split["launcher_and_rest_s"] = wall_s - sum(split.values())  # CLI import before torchrun, config, save, exit
    return {k: round(v, 1) for k, v in split.items()}


def mean_phases(split: list[dict[str, float]]) -> dict[str, float]:
    split = [s for s in split if s]
    return {k: round(sum(s[k] for s in split) / len(split), 1) for k in split[0]} if split else {}


def bench_block(tmp: Path) -> Path:
    demo = build_demo()
    data = yaml_io.load(demo.block)
    data["runtime_info"]["input"]["training"]["model_name_or_path"] = str(demo.model_dir)
    data["runtime_info"]["input"]["conversion"]["source"] = str(demo.root / "data" / "trajectories.jsonl")
    data["evolving"]["tunable_params"] = TUNABLES
    path = tmp / "block.yaml"
    path.write_text(yaml_io.dumps(data))
    return path


def bare(block_path: Path, tmp: Path) -> dict:
    """What a user would run by hand: the same rendered YAMLs, `llamafactory-cli train`, in sequence."""
    block = load_block(block_path)
    walls, split = [], []
    for i, params in enumerate([CONFIGS[0], *CONFIGS]):  # the first is the warm-up
        paths = trial_paths(tmp / "bare", "bare", i)
        prepare(TrialRequest(block, params, paths))
        env = child_env(LaunchSpec(paths.yaml, paths.train_log), free_port())
        started = time.perf_counter()
        with paths.train_log.open("w") as log:
            subprocess.run(
                [CLI, "train", str(paths.yaml)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                cwd=paths.root,
            )
        walls.append(time.perf_counter() - started)
        split.append(
            phases(paths.train_log, json.loads((paths.output_dir / "all_results.json").read_text()), walls[-1])
        )
    walls, split = walls[1:], split[1:]
    return {"wall_s": round(sum(walls), 1), "per_trial_s": [round(w, 1) for w in walls], "phases": split}


def through_tuner(block_path: Path, tmp: Path, concurrency: int) -> dict:
    url, name = f"sqlite:///{tmp / f'c{concurrency}.db'}", f"overhead-c{concurrency}"
    study = optuna.create_study(study_name=name, storage=url)
    for params in CONFIGS:
        study.enqueue_trial(params)
    started = time.perf_counter()
    subprocess.run(
        [
            TUNE,
            "start",
            "--config",
            str(block_path),
            "--budget",
            str(len(CONFIGS)),
            "--study",
            name,
            "--storage",
            url,
            "--trials-dir",
            str(tmp / f"trials-c{concurrency}"),
            "--scheduler",
            "none",
            "--max-concurrent",
            str(concurrency),
        ],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    assert [t.params for t in trials] == CONFIGS and all(t.state.name == "COMPLETE" for t in trials)
    per_trial = []
    for t in trials:
        paths = trial_paths(tmp / f"trials-c{concurrency}", name, t.number)
        metrics = json.loads(paths.result.read_text())["metrics"]
        per_trial.append(
            {
                "wall_s": t.user_attrs["wall_s"],
                "startup_s": t.user_attrs.get("startup_s"),
                "phases": phases(paths.train_log, metrics, t.user_attrs["wall_s"]),
            }
        )
    inside = sum(p["wall_s"] for p in per_trial) / concurrency
    return {"wall_s": round(wall, 1), "per_trial": per_trial, "bookkeeping_s": round(wall - inside, 1)}


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
    result = {
        "configs": CONFIGS,
        "bare": a,
        "tuner_c1": b,
        "tuner_c2": c,
        "ratio_c1": round(b["wall_s"] / a["wall_s"], 3),
        "ratio_c2": round(c["wall_s"] / a["wall_s"], 3),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for label, split in (
        ("bare", a["phases"]),
        ("tune c1", [p["phases"] for p in b["per_trial"]]),
        ("tune c2", [p["phases"] for p in c["per_trial"]]),
    ):
        print(f"{label:8s} mean per trial:", json.dumps(mean_phases(split)))
    print(f"concurrency 2: wall / bare = {result['ratio_c2']:.2f}")
    print(f"ratio wall(tune start, concurrency 1) / wall(bare llamafactory-cli): {result['ratio_c1']:.2f}")


if __name__ == "__main__":
    main()
