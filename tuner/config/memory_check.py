"""Whether a trial's configuration fits its GPUs: the block's memory estimate, the space's worst corner, the margin.

memory.py computes; this module reads what a block and a trial's parameters say (batch sizes of
training and evaluation, cutoff_len, DeepSpeed config, checkpointing, attention, precision),
compares the estimate with the GPU memory, and refits the safety margin from what earlier trials
measured (by the same formulas) and from real OOMs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.config import deepspeed_configs
from tuner.config.memory import (
    ESTIMATE_VERSION,
    GIB,
    Estimate,
    ModelShape,
    Run,
    estimate,
    gib,
    read_model_shape,
)
from tuner.errors import ConfigError

if TYPE_CHECKING:
    from tuner.config.block import Block
    from tuner.config.space import SearchSpace

# A configuration is run only if its predicted peak stays under this share of the GPU's memory: the
# rest is for the caching allocator's fragmentation (PyTorch reserves more than it allocates).
SAFETY = 0.9
# An OOM at predicted peak P lowers the usable memory to this share of P.
OOM_BACKOFF = 0.95
# Parameters of a trial that change its memory, and the largest value of each is the worst.
MEMORY_PARAMS = ("per_device_train_batch_size", "per_device_eval_batch_size", "cutoff_len")
_OFFLOADED = ("cpu", "nvme")


def run_for(block: Block, params: dict[str, Any], gpus_per_node: int, nodes: int = 1) -> Run:
    """What a trial of `block` with `params` runs, as memory.py needs it. Raises ConfigError when
    the block's DeepSpeed config cannot be read (preflight reports that already)."""
    t = block.training
    extra = t.passthrough
    ds = deepspeed_configs.resolve(t.deepspeed, block.file) or {}
    zero = ds.get("zero_optimization") or {}
    flash = str(t.flash_attn or "auto").lower()
    micro_batch = int(params.get("per_device_train_batch_size", t.per_device_train_batch_size))
    return Run(
        micro_batch=micro_batch,
        seq_len=int(params.get("cutoff_len", t.cutoff_len)),
        gpus_per_node=max(1, gpus_per_node),
        nodes=max(1, nodes),
        zero_stage=deepspeed_configs.zero_stage(ds) if ds else None,
        offload_optimizer=(zero.get("offload_optimizer") or {}).get("device") in _OFFLOADED,
        offload_param=(zero.get("offload_param") or {}).get("device") in _OFFLOADED,
        checkpointing=not extra.get("disable_gradient_checkpointing", False),
        attention={"disabled": "eager", "fa2": "fa2", "fa3": "fa2"}.get(flash, "sdpa"),
        act_bytes=2 if (t.bf16 or t.fp16 or extra.get("pure_bf16")) else 4,
        fused_loss=bool(extra.get("enable_liger_kernel", False)),
        # tuner renders the training batch where the block sets none (tuner/trial/render.py)
        eval_batch=int(params.get("per_device_eval_batch_size", extra.get("per_device_eval_batch_size", micro_batch))),
        eval_loss=not (params.get("predict_with_generate") or extra.get("predict_with_generate", False)),
    )


def worst_corner(space: SearchSpace, block: Block) -> dict[str, Any]:
    """The tuned parameters that set memory, each at its largest value in the space."""
    corner: dict[str, Any] = {}
    for name in MEMORY_PARAMS:
        p = space.params.get(name)
        if p is not None:
            corner[name] = max(p.choices) if p.choices is not None else int(p.high)  # type: ignore[arg-type]
    return corner


def block_shape(block: Block) -> ModelShape:
    return read_model_shape(block.training.model_name_or_path)


def parse_memory(text: str) -> int:
    """Bytes from '80GiB', '80G', '80GB' (10^9), '81920MiB' or a bare number of GiB."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(gib|gb|g|mib|mb|m|tib|tb|t)?\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(
            "must be a positive size such as 80GiB, 141GB or 81920MiB",
            key="--gpu-memory",
            value=text,
            fix="write the memory of one GPU, e.g. --gpu-memory 80GiB",
        )
    unit = {"gb": 1e9, "mb": 1e6, "tb": 1e12, "mib": 2**20, "m": 2**20, "tib": 2**40, "t": 2**40}
    return int(float(m.group(1)) * unit.get(m.group(2) or "gib", GIB))


@dataclass(frozen=True)
class Margin:
    """How estimates are read against the GPU: scaled by `factor` (at least 1: raised when a trial
    measured more than its estimate) and compared with `usable` bytes."""

    factor: float = 1.0
    oom_at: int | None = None  # the lowest predicted peak that ran out of memory

    def predicted(self, e: Estimate) -> int:
        return int(e.allocated * self.factor) + e.overhead

    def usable(self, limit: int) -> int:
        usable = int(limit * SAFETY)
        return min(usable, int(self.oom_at * OOM_BACKOFF)) if self.oom_at else usable


def refit(pairs: list[tuple[float, float]], oom_predicted: list[float]) -> Margin:
    """The margin after trials: `pairs` of (estimated, measured) allocated bytes of trials that ran;
    `oom_predicted`: the predicted peaks of trials that ran out of memory anyway."""
    ratios = [measured / est for est, measured in pairs if est > 0 and measured > 0]
    factor = max([1.0, *ratios])
    return Margin(round(factor, 4), int(min(oom_predicted)) if oom_predicted else None)


def refit_from_trials(trials_attrs: list[dict[str, Any]]) -> Margin:
    """`refit` on the trials' user attrs (memory_estimate_gib, memory_peak_gib, memory_predicted_gib) of
    trials estimated by this version of the formulas."""
    pairs, ooms = [], []
    for a in trials_attrs:
        if a.get("memory_estimate_version") != ESTIMATE_VERSION:
            continue
        if a.get("memory_estimate_gib") and a.get("memory_peak_gib"):
            pairs.append((float(a["memory_estimate_gib"]), float(a["memory_peak_gib"])))
        if a.get("exit_class") == "oom" and a.get("memory_predicted_gib"):
            ooms.append(float(a["memory_predicted_gib"]) * GIB)
    return refit(pairs, ooms)


@dataclass(frozen=True)
class Verdict:
    estimate: Estimate
    predicted: int
    usable: int

    @property
    def fits(self) -> bool:
        return self.predicted <= self.usable

    def attrs(self) -> dict[str, Any]:
        """What a trial records: the estimate (comparable with the measured peak) and the check."""
        return {
            "memory_estimate_gib": gib(self.estimate.allocated),
            "memory_predicted_gib": gib(self.predicted),
            "memory_usable_gib": gib(self.usable),
            "memory_estimate_version": ESTIMATE_VERSION,
        }

    def reason(self) -> str:
        return (
            f"predicted peak GPU memory {gib(self.predicted)} GiB is above the usable {gib(self.usable)} GiB "
            f"per GPU ({self.estimate.describe()})"
        )


class MemoryCheck:
    """A study's memory gate: one model shape, one GPU size, the trial's GPUs."""

    def __init__(self, block: Block, limit: int | None, gpus_per_node: int, nodes: int = 1) -> None:
        self.block, self.limit, self.gpus_per_node, self.nodes = block, limit, gpus_per_node, nodes
        self.unavailable: str | None = None  # why no estimate can be made (then nothing is checked)
        self.shape: ModelShape | None = None
        if limit is None:
            self.unavailable = "no GPU memory limit (no GPU found and no --gpu-memory)"
            return
        try:
            self.shape = block_shape(block)
            run_for(block, {}, gpus_per_node, nodes)
        except ConfigError as e:
            self.unavailable = f"no memory estimate: {e.rule}"

    def verdict(self, params: dict[str, Any], margin: Margin | None = None) -> Verdict | None:
        if self.shape is None or self.limit is None:
            return None
        margin = margin or Margin()
        e = estimate(self.shape, run_for(self.block, params, self.gpus_per_node, self.nodes))
        return Verdict(e, margin.predicted(e), margin.usable(self.limit))
