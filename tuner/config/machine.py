"""What this machine offers a block: GPUs, installed packages, model files, LLaMA-Factory's keys.

The preflight checks here look past the block at the environment it will run in; the checks of the
block alone are in preflight.py.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tuner.config import deepspeed_configs
from tuner.config.block import Block
from tuner.config.findings import Finding, T
from tuner.errors import ConfigError


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


def gpu_memory_bytes() -> int | None:
    """Memory of the smallest GPU this process may use (nvidia-smi's memory.total), or None where
    no GPU is visible or the driver does not answer. Without torch, like `gpus_present`."""
    if gpus_present() == 0:
        return None
    query = ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    mib = [int(float(line)) for line in out.stdout.split() if line.replace(".", "", 1).isdigit()]
    return min(mib) * 2**20 if out.returncode == 0 and mib else None


def gpu_count(block: Block) -> Iterator[Finding]:
    present = gpus_present()
    if present == 0:
        yield Finding(
            "no-gpu",
            "note",
            "n_gpus_per_node",
            "no GPU visible: trials run on the CPU (1 process each)",
            "fine for the demo; run real models on a GPU node",
        )
    elif block.n_gpus_per_node != present:
        yield Finding(
            "gpu-count",
            "warning",
            "n_gpus_per_node",
            f"n_gpus_per_node={block.n_gpus_per_node} but this node has {present} GPU(s); "
            "a production run here would use the wrong number of processes",
            f"set n_gpus_per_node: {present} (trials use --gpus-per-trial)",
        )


def performance(block: Block) -> Iterator[Finding]:
    t = block.training
    if (t.flash_attn or "").lower() == "fa2" and importlib.util.find_spec("flash_attn") is None:
        yield Finding(
            "flash-attn",
            "warning",
            f"{T}.flash_attn",
            "flash_attn: fa2 but flash-attn is not installed; LLaMA-Factory falls back to slower attention",
            "pip install --no-build-isolation -c requirements/gpu.lock flash-attn (README, Install notes), "
            "use the docker/ image, or set flash_attn: auto",
        )
    try:
        stage = deepspeed_configs.zero_stage(deepspeed_configs.resolve(t.deepspeed, block.file))
    except ConfigError as e:
        yield Finding("deepspeed", "error", f"{T}.deepspeed", e.rule, e.fix or "")
        return
    if t.use_unsloth and stage == 3:
        yield Finding(
            "unsloth-zero3",
            "error",
            f"{T}.use_unsloth",
            "use_unsloth is incompatible with DeepSpeed ZeRO-3",
            "set use_unsloth: false, or use a ZeRO-2 config",
        )


def model_path(block: Block) -> Iterator[Finding]:
    model = block.training.model_name_or_path
    looks_local = model.startswith(("/", "./", "../", "~")) or model.count("/") != 1
    if looks_local and not Path(model).expanduser().exists():
        yield Finding(
            "model-missing",
            "error",
            f"{T}.model_name_or_path",
            f"{model} does not exist (and is not a hub id like Org/Name)",
            "point it at a local model folder",
        )


def llamafactory_keys(block: Block) -> Iterator[Finding]:
    from tuner.config._lf_args import known_keys, known_templates  # imports LLaMA-Factory: seconds

    keys = known_keys()
    for key in block.training.passthrough:
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            yield Finding(
                "unknown-lf-key",
                "error",
                f"{T}.{key}",
                "is not an argument LLaMA-Factory 0.9.5 knows",
                f"{hint}remove or correct it",
            )
    templates = known_templates()
    if block.training.template not in templates:
        close = difflib.get_close_matches(block.training.template, templates, n=3)
        yield Finding(
            "unknown-template",
            "error",
            f"{T}.template",
            f"template {block.training.template!r} is not registered in LLaMA-Factory",
            f"use one of {close or 'the registered templates'}",
        )
