"""GPU memory check: tuner's per-GPU memory estimate against torch.cuda.max_memory_allocated on one GPU,
for a training step's peak and an evaluation's (per_device_eval_batch_size above the training batch).

bench/gpu_check.py found the 0.5B Qwen3's trials peaking at 1.53 x the estimate: its evaluation at batch
20 held more logits than its training step at batch 8. This check runs one short study of the same model
(`tune start`, ZeRO-3, bf16) whose trials differ only in the two batch sizes, and prints each trial's
estimate (memory_estimate_gib, the phase that sets it) against its measured peak (memory_peak_gib).

    GPU_CHECK_PY=bench/gpu_memory_check.py bash bench/gpu_check.sh   # the environment gpu_check.sh makes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_check import BIN, N_EVAL, TURNS, build_model, conversations, flash_attn_setting, log, write_block  # noqa: E402

STUDY = "gpu-memory"
N_TRAIN = 64  # the peak comes at the first step and the first evaluation: a few steps are enough
# (training batch, evaluation batch): the training step's peak, and the evaluation's above it.
CASES = ((8, 8), (8, 32), (16, 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "gpu-check" / "run")
    args = parser.parse_args()
    started = time.monotonic()
    import optuna
    import torch

    from tuner.config import yaml_io

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to torch")
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    build_model(work / "model", weights=True)
    data = work / "data" / "conversations.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(c) + "\n" for c in conversations(N_TRAIN + N_EVAL, TURNS)), encoding="utf-8")
    block_path = write_block(work, work / "model", data, flash_attn_setting())
    block = yaml_io.load(block_path)
    block["runtime_info"]["input"]["conversion"]["max_instances"] = N_TRAIN
    block["evolving"] = {"tunable_params": ["per_device_train_batch_size", "per_device_eval_batch_size"]}
    block_path.write_text(yaml_io.dumps(block), encoding="utf-8")
    space = work / "space.yaml"
    space.write_text(
        "params:\n"
        "  per_device_train_batch_size: {type: categorical, choices: [8, 16]}\n"
        "  per_device_eval_batch_size: {type: categorical, choices: [4, 8, 32]}\n",
        encoding="utf-8",
    )
    url = f"sqlite:///{work / 'tuner.db'}"
    study = optuna.create_study(study_name=STUDY, storage=url)
    for train, evaluation in CASES:
        study.enqueue_trial({"per_device_train_batch_size": train, "per_device_eval_batch_size": evaluation})
    argv = [str(BIN / "tune"), "start", "--config", str(block_path), "--space", str(space)]
    argv += ["--budget", str(len(CASES)), "--study", STUDY, "--storage", url, "--scheduler", "none"]
    argv += ["--trials-dir", str(work / "trials"), "--gpus-per-trial", "1", "--trial-timeout", "120"]
    log(f"tune start: {len(CASES)} trials of (training batch, evaluation batch) {CASES}", started)
    with (work / "tune-start.log").open("w") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=400, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tune start failed ({done.returncode}); log: {work / 'tune-start.log'}")
    rows = []
    for t in optuna.load_study(study_name=STUDY, storage=url).get_trials():
        a = t.user_attrs
        estimate, peak = a.get("memory_estimate_gib"), a.get("memory_peak_gib")
        error = round(estimate / peak - 1, 4) if estimate and peak else None
        rows.append({**t.params, "state": t.state.name, "estimate_gib": estimate, "peak_gib": peak, "error": error})
        log(
            f"trial {t.number} {t.params}: {t.state.name}, estimate {estimate} GiB, measured {peak} GiB ({error})",
            started,
        )
    (work / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
