"""GPU check: a ~0.5B random-init Qwen3 tuned by a 4-trial ZeRO-3 study (`tune start`) on one GPU, and
the same LLaMA-Factory YAML run bare (`llamafactory-cli train`), side by side. Prints the trials'
start-up share (startup_s / wall_s), tokens/s per GPU, and tuner's overhead against bare LLaMA-Factory.

    bash bench/gpu_check.sh            # the entry point: makes the environment, then runs this file
    bash bench/gpu_check.sh --dry-run  # any machine (CI): tokenizer + config without weights, preflight,
                                       # render, the bare run's YAML; no training, no GPU

Everything is written under --work (default build/gpu-check/run, git-ignored); the summary goes to the
terminal and <work>/summary.json, nowhere in the repository.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY = "gpu-check"
SEED = 1234
# The 4 trials differ only in the learning rate, so each does the same work as the bare run.
LEARNING_RATES = (1e-5, 2e-5, 5e-5, 1e-4)
# 400 training conversations of 40 turns (~1k tokens each with the local tokenizer): ~0.4M tokens per
# epoch, a few seconds of training on an H200 yet enough steps (50) for a steady tokens/s.
N_TRAIN, N_EVAL, TURNS, CUTOFF_LEN, BATCH = 400, 40, 40, 1024, 8
# Qwen2.5-0.5B's shape (494M parameters). Over a quarter of a 0.5B model is its 151,936-token
# vocabulary (embedding, LM head and its logits), so the config keeps that size although the local
# tokenizer uses 2k of it: the cost per token is that of a real 0.5B model.
MODEL_SHAPE: dict[str, int] = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 4096,
}
# Failsafes, not the expected times (~1 min per run): a hung step ends the check, not the device lease.
BARE_TIMEOUT_S, STUDY_TIMEOUT_S, TRIAL_TIMEOUT_S = 240, 420, 120
BIN = Path(sys.executable).parent


def log(message: str, started: float) -> None:
    print(f"[gpu_check {time.monotonic() - started:6.1f} s] {message}", flush=True)


def parameter_count(shape: dict[str, int]) -> int:
    """Parameters of a Qwen3 with tied embeddings, from its shape (the dry run builds no weights)."""
    h, hd = shape["hidden_size"], shape["head_dim"]
    attention = h * hd * (2 * shape["num_attention_heads"] + 2 * shape["num_key_value_heads"]) + 2 * hd
    layer = attention + 3 * h * shape["intermediate_size"] + 2 * h
    return shape["vocab_size"] * h + shape["num_hidden_layers"] * layer + h


def build_model(out: Path, *, weights: bool) -> int:
    """The tokenizer of tuner's demo (Qwen's chat tokens, 2k BPE) and a Qwen3 of MODEL_SHAPE: random
    bf16 weights, or only config.json when `weights` is false. Returns the parameter count."""
    from transformers import AutoTokenizer, Qwen3Config

    from tuner.demo import _data, _model

    _model.build_tokenizer(_data.corpus_lines(4000, SEED + 1), out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = Qwen3Config(
        **MODEL_SHAPE,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        bos_token_id=None,
    )
    if not weights:
        config.save_pretrained(out)
        return parameter_count(MODEL_SHAPE)
    import torch
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(SEED)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # initialising 0.5B on the GPU is quicker
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


def conversations(n: int, turns: int) -> Iterator[dict[str, Any]]:
    """Multi-turn conversations of the demo's tasks: long samples, little padding."""
    from tuner.demo import _data

    samples = _data.trajectories(n * turns, SEED, reasoning=False)
    for _ in range(n):
        messages = [{"role": "system", "content": "You are a careful assistant."}]
        for _ in range(turns):
            messages += next(samples)["messages"][1:]  # its user question and assistant answer
        yield {"messages": messages}


def flash_attn_setting() -> str:
    try:
        importlib.import_module("flash_attn")
    except ImportError:
        return "auto"  # LLaMA-Factory picks torch's SDPA
    return "fa2"


def write_block(work: Path, model_dir: Path, data: Path, flash_attn: str) -> Path:
    """The demo block scaled to the GPU: bf16, ZeRO-3, one GPU, only the learning rate tuned."""
    import tuner.demo
    from tuner.config import yaml_io

    block = yaml_io.load(Path(tuner.demo.__file__).with_name("block.yaml"))
    block["n_gpus_per_node"] = 1
    section = block["runtime_info"]["input"]
    section["training"].update(
        {
            "model_name_or_path": str(model_dir),
            "output_dir": str(work / "gpu-check-sft"),
            "cutoff_len": CUTOFF_LEN,
            "per_device_train_batch_size": BATCH,
            "gradient_accumulation_steps": 1,
            "learning_rate": LEARNING_RATES[0],
            "num_train_epochs": 1,
            "logging_steps": 1,  # tuner's startup_s ends at the first trainer log line: make it the first step
            "bf16": True,
            "flash_attn": flash_attn,
            # HF counts the non-padding tokens of every step (all ranks): the tokens/s below.
            "include_num_input_tokens_seen": "non_padding",
        }
    )
    section["conversion"].update(
        {"source": str(data), "data_name": "gpu_check", "max_instances": N_TRAIN, "eval_instances": N_EVAL}
    )
    block["evolving"] = {"tunable_params": {"learning_rate": {}}}
    path = work / "block.yaml"
    path.write_text(yaml_io.dumps(block), encoding="utf-8")
    return path


def prepare_bare(block_path: Path, work: Path, gpu_id: str | None) -> tuple[Any, dict[str, str]]:
    """The YAML and environment a study trial gets (tuner's own render and launch environment, as
    bench/overhead.py does), in a folder of its own, for `llamafactory-cli train`."""
    from tuner.config.block import load_block
    from tuner.trial.launch import LaunchSpec, child_env, free_port
    from tuner.trial.prepare import TrialRequest, prepare
    from tuner.trial.workspace import trial_paths

    gpu_ids = (gpu_id,) if gpu_id is not None else ()
    paths = trial_paths(work / "bare", "bare", 0)
    request = TrialRequest(load_block(block_path), {"learning_rate": LEARNING_RATES[0]}, paths, gpu_ids=gpu_ids)
    prepare(request)
    return paths, child_env(LaunchSpec(paths.yaml, paths.train_log, gpu_ids=gpu_ids), free_port())


@dataclass
class Run:
    """One training run's timings and tokens (a study trial or the bare run)."""

    label: str
    wall_s: float
    startup_s: float | None  # launch -> first trainer log line, as tuner records it
    tokens: int | None  # non-padding tokens trained on, all GPUs
    train_runtime_s: float | None  # the trainer's own train_runtime
    gpus: int = 1

    @property
    def startup_share(self) -> float | None:
        return self.startup_s / self.wall_s if self.startup_s is not None and self.wall_s else None

    @property
    def tokens_per_s_per_gpu(self) -> float | None:
        if not self.tokens or not self.train_runtime_s:
            return None
        return self.tokens / self.train_runtime_s / self.gpus


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def summarize(bare: Run, trials: list[Run], study_wall_s: float) -> dict[str, Any]:
    """The three figures: start-up share, tokens/s per GPU, overhead against bare LLaMA-Factory
    (per trial: mean trial wall / bare wall; whole study: study wall / (trials x bare wall), which adds
    Ray, preflight and bookkeeping outside the trials). The bare run's wall and start-up include the
    CLI's own imports before torchrun, which tuner's launch skips (README, What tuner does for you)."""

    def row(run: Run) -> dict[str, Any]:
        return {
            "label": run.label,
            "wall_s": round(run.wall_s, 1),
            "startup_s": None if run.startup_s is None else round(run.startup_s, 1),
            "startup_share": None if run.startup_share is None else round(run.startup_share, 3),
            "tokens_per_s_per_gpu": None if run.tokens_per_s_per_gpu is None else round(run.tokens_per_s_per_gpu),
        }

    mean_wall = statistics.fmean(t.wall_s for t in trials) if trials else None
    share, tps = _mean([t.startup_share for t in trials]), _mean([t.tokens_per_s_per_gpu for t in trials])
    return {
        "bare": row(bare),
        "trials": [row(t) for t in trials],
        "startup_share_mean": None if share is None else round(share, 3),
        "tokens_per_s_per_gpu_mean": None if tps is None else round(tps),
        "overhead_per_trial": None if mean_wall is None else round(mean_wall / bare.wall_s, 3),
        "overhead_study": round(study_wall_s / (len(trials) * bare.wall_s), 3) if trials else None,
        "study_wall_s": round(study_wall_s, 1),
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_summary(summary: dict[str, Any]) -> None:
    shares = " ".join(_fmt(t["startup_share"], ".2f") for t in summary["trials"])
    print(
        f"trial start-up share (startup_s / wall_s): {_fmt(summary['startup_share_mean'], '.2f')} mean "
        f"({shares}); bare llamafactory-cli: {_fmt(summary['bare']['startup_share'], '.2f')}"
    )
    print(
        f"tokens/s per GPU: {_fmt(summary['tokens_per_s_per_gpu_mean'], ',.0f')} mean over trials; "
        f"bare: {_fmt(summary['bare']['tokens_per_s_per_gpu'], ',.0f')}"
    )
    print(
        f"overhead vs bare llamafactory-cli train: {_fmt(summary['overhead_per_trial'], '.2f')} per trial "
        f"(mean trial wall / bare wall), {_fmt(summary['overhead_study'], '.2f')} whole study "
        f"(study wall / {len(summary['trials'])} x bare wall)"
    )


def read_run(label: str, output_dir: Path, wall_s: float, startup_s: float | None, gpus: int) -> Run:
    """Tokens and train_runtime from the trainer's final metrics (tokens: else its state or last log line)."""

    def load(name: str) -> dict[str, Any]:
        try:
            return json.loads((output_dir / name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    results = load("all_results.json")
    tokens = results.get("num_input_tokens_seen") or load("trainer_state.json").get("num_input_tokens_seen")
    if not tokens:
        lines = (output_dir / "trainer_log.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        tokens = next((r["total_tokens"] for r in reversed(records) if "total_tokens" in r), None)
    return Run(label, wall_s, startup_s, tokens, results.get("train_runtime"), gpus)


def run_bare(paths: Any, env: dict[str, str]) -> tuple[float, float | None]:
    """`llamafactory-cli train <yaml>` alone, timed; start-up measured as tuner does (first log line)."""
    trainer_log = paths.output_dir / "trainer_log.jsonl"
    started = time.monotonic()
    first_record: float | None = None
    with paths.train_log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "llamafactory-cli"), "train", str(paths.yaml)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=paths.root,
        )
        while process.poll() is None:
            if first_record is None and trainer_log.exists() and trainer_log.stat().st_size:
                first_record = time.monotonic() - started
            if time.monotonic() - started > BARE_TIMEOUT_S:
                process.kill()
                raise SystemExit(f"bare run exceeded {BARE_TIMEOUT_S} s; log: {paths.train_log}")
            time.sleep(0.2)
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"bare llamafactory-cli train failed ({process.returncode}); log: {paths.train_log}")
    return wall, first_record


def run_study(block_path: Path, work: Path, gpu_id: str | None) -> tuple[float, list[Run]]:
    """The 4 learning rates enqueued (as bench/overhead.py does), then `tune start` runs them on Ray
    (on the CPU when `gpu_id` is None: only to try this code path without a GPU)."""
    import optuna

    from tuner.trial.workspace import trial_paths

    url = f"sqlite:///{work / 'tuner.db'}"
    study = optuna.create_study(study_name=STUDY, storage=url)
    for lr in LEARNING_RATES:
        study.enqueue_trial({"learning_rate": lr})
    # One GPU: Ray is given exactly the one this check uses, whatever it would detect.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu_id or "", "TUNER_RAY_NUM_GPUS": "1" if gpu_id else "0"}
    argv = [str(BIN / "tune"), "start", "--config", str(block_path), "--budget", str(len(LEARNING_RATES))]
    argv += ["--study", STUDY, "--storage", url, "--trials-dir", str(work / "trials"), "--scheduler", "none"]
    argv += ["--gpus-per-trial", "1" if gpu_id else "0", "--trial-timeout", str(TRIAL_TIMEOUT_S)]
    started = time.monotonic()
    with (work / "tune-start.log").open("w") as out:
        done = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=STUDY_TIMEOUT_S, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"tune start failed ({done.returncode}); log: {work / 'tune-start.log'}")
    runs = []
    for t in optuna.load_study(study_name=STUDY, storage=url).get_trials():
        if t.state.name != "COMPLETE":
            raise SystemExit(f"trial {t.number} ended {t.state.name}: {t.user_attrs.get('reason')}")
        output = trial_paths(work / "trials", STUDY, t.number).output_dir
        attrs = t.user_attrs
        runs.append(read_run(f"trial {t.number}", output, attrs["wall_s"], attrs.get("startup_s"), 1))
        estimate, peak = attrs.get("memory_estimate_gib"), attrs.get("memory_peak_gib")
        error = f" ({(estimate - peak) / peak:+.1%} error)" if estimate and peak else ""
        log(f"trial {t.number}: memory estimate {estimate} GiB, measured peak {peak} GiB{error}", started)
    return wall, runs


def cli(*args: str) -> str:
    done = subprocess.run([str(BIN / "tune"), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tune {args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "gpu-check" / "run")
    parser.add_argument("--dry-run", action="store_true", help="build without weights, preflight and render only")
    args = parser.parse_args()
    started = time.monotonic()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    gpu_id = None
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device visible to torch: run with --dry-run on a machine without a GPU")
        # One GPU: the first visible one.
        gpu_id = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip()
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
        log(f"GPU {gpu_id}: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", started)

    model_dir = work / "model"
    params = build_model(model_dir, weights=not args.dry_run)
    data = work / "data" / "conversations.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(c) + "\n" for c in conversations(N_TRAIN + N_EVAL, TURNS)), encoding="utf-8")
    flash_attn = flash_attn_setting()
    block = write_block(work, model_dir, data, flash_attn)
    weights = "config only, no weights" if args.dry_run else "random bf16 weights"
    log(f"Qwen3 of {params / 1e9:.3f}B parameters ({weights}); flash_attn: {flash_attn}; block {block}", started)

    print(cli("check", "--config", str(block)), end="", flush=True)
    rendered = cli("render", "--config", str(block), "--ds-config", "--trials-dir", str(work / "render"))
    (work / "render.yaml").write_text(rendered, encoding="utf-8")
    paths, env = prepare_bare(block, work, gpu_id)
    bare_cmd = f"llamafactory-cli train {paths.yaml}"
    log(f"preflight OK; rendered {work / 'render.yaml'}; bare run: {bare_cmd}", started)
    if args.dry_run:
        print(rendered, end="")
        log("dry run OK (no training)", started)
        return

    # Import what a trial imports once, so the bare run (first) does not pay a cold page cache alone.
    subprocess.run([sys.executable, "-c", "import deepspeed, llamafactory.train.tuner"], env=env, check=True)
    bare_wall, bare_startup = run_bare(paths, env)
    bare = read_run("bare", paths.output_dir, bare_wall, bare_startup, 1)
    log(f"bare llamafactory-cli train: {bare_wall:.1f} s", started)
    study_wall, trials = run_study(block, work, gpu_id)
    log(f"tune start, {len(trials)} trials: {study_wall:.1f} s", started)
    summary = summarize(bare, trials, study_wall)
    summary.update({"parameters": params, "flash_attn": flash_attn, "total_s": round(time.monotonic() - started, 1)})
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    print_summary(summary)


if __name__ == "__main__":
    main()
