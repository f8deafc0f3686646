"""Preflight: the block's known gotchas, checked before any GPU time is spent (DESIGN.md 6).

Each check returns findings (severity, key, message, fix); `run_preflight` runs all of them and
never stops at the first, so `tune check` can show everything at once. Errors stop a study;
warnings and notes are shown.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tuner.config import deepspeed_configs
from tuner.config.block import Block
from tuner.config.thinking_templates import THINKING_TEMPLATES
from tuner.errors import ConfigError, SpaceError

Severity = Literal["error", "warning", "note"]
T = "runtime_info.input.training"
C = "runtime_info.input.conversion"
_SCAN_LINES = 20_000  # enough to see whether trajectories carry reasoning; bounded for huge files


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    key: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"[{self.severity}] {self.key}: {self.message}.{fix}"


Check = Callable[[Block], Iterator[Finding]]


def gpus_present() -> int:
    """GPUs this process may use, without importing torch (`tune --help` must stay light)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def production_output_path(output_dir: str, block_dir: Path) -> Path:
    """Where the production run writes: a relative output_dir goes to artifacts/model/<basename>
    (beside the block), an absolute one is honored as is."""
    out = Path(output_dir)
    return out if out.is_absolute() else block_dir / "artifacts" / "model" / out.name


def production_output_dir(block: Block) -> Path:
    block_dir = block.source_path.parent if block.source_path else Path.cwd()
    return production_output_path(block.training.output_dir, block_dir)


def _long_context(block: Block) -> Iterator[Finding]:
    t = block.training
    if t.cutoff_len > 32768 and (t.rope_scaling or "").lower() != "yarn":
        yield Finding("rope-scaling", "error", f"{T}.rope_scaling",
                      f"cutoff_len={t.cutoff_len} > 32768 needs rope_scaling: yarn (got {t.rope_scaling!r}); "
                      "without it position embeddings overflow (OOM or garbage)",
                      "add `rope_scaling: yarn` under training")  # fmt: skip


def _reasoning(block: Block) -> Iterator[Finding]:
    source = block.conversion.source
    if not source.is_file():
        yield Finding("data-missing", "error", f"{C}.source", f"{source} does not exist",
                      "point conversion.source at your trajectories JSONL")  # fmt: skip
        return
    seen = carrying = 0
    with source.open(encoding="utf-8") as f:
        for seen, line in enumerate(f, start=1):
            if '"reasoning_content"' in line:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # conversion reports malformed lines with their line number
                msgs = row.get("messages", []) if isinstance(row, dict) else []
                carrying += any(isinstance(m, dict) and m.get("reasoning_content") for m in msgs)
            if seen >= _SCAN_LINES:
                break
    if seen <= block.conversion.eval_instances:
        yield Finding("data-small", "error", f"{C}.eval_instances",
                      f"{source} has {seen} samples but eval_instances={block.conversion.eval_instances} "
                      "leaves none for training", "lower eval_instances or add data")  # fmt: skip
    template = block.training.template
    if carrying and template not in THINKING_TEMPLATES:
        yield Finding("template-drops-reasoning", "warning", f"{T}.template",
                      f"{carrying} of the first {seen} trajectories carry reasoning_content, but template "
                      f"{template!r} drops it; the model will not learn the chain of thought",
                      "use `template: qwen3` to keep it, or remove reasoning_content")  # fmt: skip


def _output_dir(block: Block) -> Iterator[Finding]:
    t = block.training
    target = production_output_dir(block)
    if not Path(t.output_dir).is_absolute():
        yield Finding("output-dir-relative", "note", f"{T}.output_dir",
                      f"relative output_dir {t.output_dir!r}: the production run writes to {target}",
                      "give an absolute path to choose the folder")  # fmt: skip
    has_checkpoints = target.is_dir() and any(target.glob("checkpoint-*"))
    if t.overwrite_output_dir and has_checkpoints:
        yield Finding("overwrite-checkpoints", "error", f"{T}.overwrite_output_dir",
                      f"overwrite_output_dir: true and {target} holds checkpoints; the production run "
                      "would silently overwrite them",
                      "rename output_dir or set overwrite_output_dir: false")  # fmt: skip


def _checkpointing(block: Block) -> Iterator[Finding]:
    t = block.training
    if t.save_only_model and t.resume_from_checkpoint:
        yield Finding("resume-model-only", "error", f"{T}.save_only_model",
                      "save_only_model: true saves no optimizer state, so resume_from_checkpoint cannot work",
                      "set save_only_model: false, or drop resume_from_checkpoint")  # fmt: skip
    elif t.save_only_model:
        yield Finding("no-resume", "note", f"{T}.save_only_model",
                      "save_only_model: true: an interrupted trial restarts from scratch instead of resuming",
                      "set save_only_model: false to let interrupted trials resume")  # fmt: skip


def _wandb(block: Block) -> Iterator[Finding]:
    if block.experiment.wandb_mode == "online" and not block.secret("wandb_api_key"):
        var = block.unresolved_env.get("wandb_api_key")
        why = f"it refers to ${{{var}}}, which is not set" if var else "it is missing"
        yield Finding("wandb-key", "error", "credentials.wandb_api_key",
                      f"experiment.wandb_mode: online needs credentials.wandb_api_key, but {why}",
                      "export WANDB_API_KEY=..., or set wandb_mode: offline / disabled")  # fmt: skip


def _gpus(block: Block) -> Iterator[Finding]:
    present = gpus_present()
    if present == 0:
        yield Finding("no-gpu", "note", "n_gpus_per_node",
                      "no GPU visible: trials run on the CPU (1 process each)",
                      "fine for the demo; run real models on a GPU node")  # fmt: skip
    elif block.n_gpus_per_node != present:
        yield Finding("gpu-count", "warning", "n_gpus_per_node",
                      f"n_gpus_per_node={block.n_gpus_per_node} but this node has {present} GPU(s); "
                      "a production run here would use the wrong number of processes",
                      f"set n_gpus_per_node: {present} (trials use --gpus-per-trial)")  # fmt: skip


def _performance(block: Block) -> Iterator[Finding]:
    t = block.training
    if (t.flash_attn or "").lower() == "fa2" and importlib.util.find_spec("flash_attn") is None:
        yield Finding("flash-attn", "warning", f"{T}.flash_attn",
                      "flash_attn: fa2 but flash-attn is not installed; LLaMA-Factory falls back to "
                      "slower attention", "install the gpu extra (docker/ image) or set flash_attn: auto")  # fmt: skip
    try:
        stage = deepspeed_configs.zero_stage(deepspeed_configs.resolve(t.deepspeed, block.file))
    except ConfigError as e:
        yield Finding("deepspeed", "error", f"{T}.deepspeed", e.rule, e.fix or "")
        return
    if t.use_unsloth and stage == 3:
        yield Finding("unsloth-zero3", "error", f"{T}.use_unsloth",
                      "use_unsloth is incompatible with DeepSpeed ZeRO-3",
                      "set use_unsloth: false, or use a ZeRO-2 config")  # fmt: skip


def _dataset_key(block: Block) -> Iterator[Finding]:
    extra = block.training.passthrough
    for key in ("dataset", "eval_dataset", "dataset_dir"):
        if key in extra:
            yield Finding("dataset-key", "warning", f"{T}.{key}",
                          f"{key}={extra[key]!r} is replaced in every trial by the conversion of "
                          f"{block.conversion.source.name} ({block.conversion.data_name}_train/_eval), "
                          "so a stale mapping cannot be trained on", f"remove `{key}` from training")  # fmt: skip


def _model_path(block: Block) -> Iterator[Finding]:
    model = block.training.model_name_or_path
    looks_local = model.startswith(("/", "./", "../", "~")) or model.count("/") != 1
    if looks_local and not Path(model).expanduser().exists():
        yield Finding("model-missing", "error", f"{T}.model_name_or_path",
                      f"{model} does not exist (and is not a hub id like Org/Name)",
                      "point it at a local model folder")  # fmt: skip


def _secrets_in_training(block: Block) -> Iterator[Finding]:
    secrets = {name: block.secret(name) for name in block.credentials}
    for key, value in block.training.passthrough.items():
        if any(s and isinstance(value, str) and s in value for s in secrets.values()):
            yield Finding("secret-in-training", "error", f"{T}.{key}",
                          "holds a credential value; it would be written into every trial YAML",
                          "move it under credentials and reference it from there")  # fmt: skip


def _llamafactory_keys(block: Block) -> Iterator[Finding]:
    from tuner.config._lf_args import known_keys, known_templates  # imports LLaMA-Factory: seconds

    keys = known_keys()
    for key in block.training.passthrough:
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            yield Finding("unknown-lf-key", "error", f"{T}.{key}",
                          "is not an argument LLaMA-Factory 0.9.5 knows", f"{hint}remove or correct it")  # fmt: skip
    templates = known_templates()
    if block.training.template not in templates:
        close = difflib.get_close_matches(block.training.template, templates, n=3)
        yield Finding("unknown-template", "error", f"{T}.template",
                      f"template {block.training.template!r} is not registered in LLaMA-Factory",
                      f"use one of {close or 'the registered templates'}")  # fmt: skip


CHECKS: tuple[Check, ...] = (
    _long_context, _reasoning, _output_dir, _checkpointing, _wandb, _gpus, _performance,
    _dataset_key, _model_path, _secrets_in_training,
)  # fmt: skip


def run_preflight(block: Block, *, space_path: Path | None = None, check_lf: bool = True) -> list[Finding]:
    """Every finding for the block (and its search space), errors first."""
    from tuner.config.space import build_space

    findings = [f for check in CHECKS for f in check(block)]
    if check_lf:
        findings += list(_llamafactory_keys(block))
    try:
        build_space(block, space_path)
    except SpaceError as e:
        findings += [Finding("search-space", "error", p.key or "evolving", f"{p.rule}" +
                             (f" (got {p.value!r})" if p.value is not ... else ""), p.fix or "")
                     for p in e.problems]  # fmt: skip
    order = {"error": 0, "warning": 1, "note": 2}
    return sorted(findings, key=lambda f: order[f.severity])
