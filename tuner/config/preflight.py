"""Preflight: the block's known gotchas, checked before any GPU time is spent (DESIGN.md 6).

Each check returns findings (severity, key, message, fix); `run_preflight` runs all of them and
never stops at the first, so `tune check` can show everything at once. Errors stop a study;
warnings and notes are shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from tuner.config import deepspeed_configs, machine, metrics
from tuner.config.block import Block
from tuner.config.findings import C, Check, Finding, T
from tuner.config.thinking_templates import THINKING_TEMPLATES
from tuner.errors import ConfigError, SpaceError

_SCAN_LINES = 20_000  # enough to see whether trajectories carry reasoning; bounded for huge files


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
        yield Finding(
            "rope-scaling",
            "error",
            f"{T}.rope_scaling",
            f"cutoff_len={t.cutoff_len} > 32768 needs rope_scaling: yarn (got {t.rope_scaling!r}); "
            "without it position embeddings overflow (OOM or garbage)",
            "add `rope_scaling: yarn` under training",
        )


def _reasoning(block: Block) -> Iterator[Finding]:
    source = block.conversion.source
    if not source.is_file():
        yield Finding(
            "data-missing",
            "error",
            f"{C}.source",
            f"{source} does not exist",
            "point conversion.source at your trajectories JSONL",
        )
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
        yield Finding(
            "data-small",
            "error",
            f"{C}.eval_instances",
            f"{source} has {seen} samples but eval_instances={block.conversion.eval_instances} "
            "leaves none for training",
            "lower eval_instances or add data",
        )
    template = block.training.template
    if carrying and template not in THINKING_TEMPLATES:
        yield Finding(
            "template-drops-reasoning",
            "warning",
            f"{T}.template",
            f"{carrying} of the first {seen} trajectories carry reasoning_content, but template "
            f"{template!r} drops it; the model will not learn the chain of thought",
            "use `template: qwen3` to keep it, or remove reasoning_content",
        )


def _output_dir(block: Block) -> Iterator[Finding]:
    t = block.training
    target = production_output_dir(block)
    if not Path(t.output_dir).is_absolute():
        yield Finding(
            "output-dir-relative",
            "note",
            f"{T}.output_dir",
            f"relative output_dir {t.output_dir!r}: the production run writes to {target}",
            "give an absolute path to choose the folder",
        )
    has_checkpoints = target.is_dir() and any(target.glob("checkpoint-*"))
    if t.overwrite_output_dir and has_checkpoints:
        yield Finding(
            "overwrite-checkpoints",
            "error",
            f"{T}.overwrite_output_dir",
            f"overwrite_output_dir: true and {target} holds checkpoints; the production run "
            "would silently overwrite them",
            "rename output_dir or set overwrite_output_dir: false",
        )


def _checkpointing(block: Block) -> Iterator[Finding]:
    t = block.training
    if t.save_only_model and t.resume_from_checkpoint:
        yield Finding(
            "resume-model-only",
            "error",
            f"{T}.save_only_model",
            "save_only_model: true saves no optimizer state, so resume_from_checkpoint cannot work",
            "set save_only_model: false, or drop resume_from_checkpoint",
        )
    elif t.save_only_model:
        yield Finding(
            "no-resume",
            "note",
            f"{T}.save_only_model",
            "save_only_model: true: an interrupted trial restarts from scratch instead of resuming",
            "set save_only_model: false to let interrupted trials resume",
        )


def _wandb(block: Block) -> Iterator[Finding]:
    if block.experiment.wandb_mode == "online" and not block.secret("wandb_api_key"):
        var = block.unresolved_env.get("wandb_api_key")
        why = f"it refers to ${{{var}}}, which is not set" if var else "it is missing"
        yield Finding(
            "wandb-key",
            "error",
            "credentials.wandb_api_key",
            f"experiment.wandb_mode: online needs credentials.wandb_api_key, but {why}",
            "export WANDB_API_KEY=..., or set wandb_mode: offline / disabled",
        )


def _dataset_key(block: Block) -> Iterator[Finding]:
    extra = block.training.passthrough
    for key in ("dataset", "eval_dataset", "dataset_dir"):
        if key in extra:
            yield Finding(
                "dataset-key",
                "warning",
                f"{T}.{key}",
                f"{key}={extra[key]!r} is replaced in every trial by the conversion of "
                f"{block.conversion.source.name} ({block.conversion.data_name}_train/_eval), "
                "so a stale mapping cannot be trained on",
                f"remove `{key}` from training",
            )


def _secrets_in_training(block: Block) -> Iterator[Finding]:
    secrets = {name: block.secret(name) for name in block.credentials}
    for key, value in block.training.passthrough.items():
        if any(s and isinstance(value, str) and s in value for s in secrets.values()):
            yield Finding(
                "secret-in-training",
                "error",
                f"{T}.{key}",
                "holds a credential value; it would be written into every trial YAML",
                "move it under credentials and reference it from there",
            )
    if block.secret("om_hub_token"):
        yield Finding(
            "om-hub-token",
            "error",
            "credentials.om_hub_token",
            "an openMind hub token can only reach LLaMA-Factory through the trial YAML, where it would be "
            "written into every trial's files",
            "download the model and data first and point the block at local paths",
        )


def _metric(block: Block) -> Iterator[Finding]:
    """The objective is a metric this block's trials write, in its direction (metrics.py)."""
    try:
        stage = deepspeed_configs.zero_stage(deepspeed_configs.resolve(block.training.deepspeed, block.file))
    except ConfigError:
        stage = None  # machine.performance reports an unreadable config
    e = block.experiment
    seen: set[tuple[str, str, str]] = set()
    for i, objective in enumerate(e.objectives):
        found = metrics.problems(
            objective.name,
            objective.direction,
            block.training.passthrough,
            zero_stage=stage,
            evaluator=e.evaluator is not None,
            early_stopping=objective.name == e.progress_metric,
        )
        for p in found:
            key = p.key
            if e.multi_objective:  # the entry of `metrics` it is about
                key = key.replace("experiment.metric", f"experiment.metrics[{i}].name")
                key = key.replace("experiment.direction", f"experiment.metrics[{i}].direction")
            if (p.code, key, p.message) not in seen:  # block-wide problems come once, not per objective
                seen.add((p.code, key, p.message))
                yield Finding(p.code, p.severity, key, p.message, p.fix)
    yield from metrics.early_stopping_problems(e.early_stopping_metric, block.training.passthrough)


CHECKS: tuple[Check, ...] = (
    _metric,
    _long_context,
    _reasoning,
    _output_dir,
    _checkpointing,
    _wandb,
    machine.gpu_count,
    machine.performance,
    _dataset_key,
    machine.model_path,
    _secrets_in_training,
)


def run_preflight(block: Block, *, space_path: Path | None = None, check_lf: bool = True) -> list[Finding]:
    """Every finding for the block (and its search space), errors first."""
    from tuner.config.space import build_space

    findings = [f for check in CHECKS for f in check(block)]
    if check_lf:
        findings += list(machine.llamafactory_keys(block))
    try:
        build_space(block, space_path)
    except SpaceError as e:
        findings += [
            Finding(
                "search-space",
                "error",
                p.key or "evolving",
                f"{p.rule}" + (f" (got {p.value!r})" if p.value is not ... else ""),
                p.fix or "",
            )
            for p in e.problems
        ]
    order = {"error": 0, "warning": 1, "note": 2}
    return sorted(findings, key=lambda f: order[f.severity])
