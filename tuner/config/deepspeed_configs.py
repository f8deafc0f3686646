"""DeepSpeed configs: LLaMA-Factory's stock ones built in, or the user's own file / mapping.

Blocks name `deepspeed: ds_z3_config.json`, the stock file of LLaMA-Factory's examples, usually
without shipping it. When that name does not exist as a file beside the block, tuner uses the
identical built-in config; a file that exists always wins.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError

_KEY = "runtime_info.input.training.deepspeed"

_COMMON: dict[str, Any] = {
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "zero_allow_untested_optimizer": True,
    "fp16": {
        "enabled": "auto",
        "loss_scale": 0,
        "loss_scale_window": 1000,
        "initial_scale_power": 16,
        "hysteresis": 2,
        "min_loss_scale": 1,
    },
    "bf16": {"enabled": "auto"},
}
_Z2 = {
    "stage": 2,
    "allgather_partitions": True,
    "allgather_bucket_size": 5e8,
    "overlap_comm": False,
    "reduce_scatter": True,
    "reduce_bucket_size": 5e8,
    "contiguous_gradients": True,
    "round_robin_gradients": True,
}
_Z3 = {
    "stage": 3,
    "overlap_comm": False,
    "contiguous_gradients": True,
    "sub_group_size": 1e9,
    "reduce_bucket_size": "auto",
    "stage3_prefetch_bucket_size": "auto",
    "stage3_param_persistence_threshold": "auto",
    "stage3_max_live_parameters": 1e9,
    "stage3_max_reuse_distance": 1e9,
    "stage3_gather_16bit_weights_on_model_save": True,
}
_OFFLOAD = {"device": "cpu", "pin_memory": True}


def _stock(zero: dict[str, Any], offload: bool = False) -> dict[str, Any]:
    config = copy.deepcopy(_COMMON)
    config["zero_optimization"] = copy.deepcopy(zero)
    if offload:
        config["zero_optimization"]["offload_optimizer"] = dict(_OFFLOAD)
        if zero["stage"] == 3:
            config["zero_optimization"]["offload_param"] = dict(_OFFLOAD)
    return config


STOCK: dict[str, dict[str, Any]] = {
    "ds_z0_config.json": _stock({"stage": 0, **{k: v for k, v in _Z2.items() if k != "stage"}}),
    "ds_z2_config.json": _stock(_Z2),
    "ds_z2_offload_config.json": _stock(_Z2, offload=True),
    "ds_z3_config.json": _stock(_Z3),
    "ds_z3_offload_config.json": _stock(_Z3, offload=True),
}


def resolve(value: str | dict[str, Any] | None, file: str) -> dict[str, Any] | None:
    """The DeepSpeed config a block asks for, as a mapping (None: no DeepSpeed)."""
    if value is None or isinstance(value, dict):
        return copy.deepcopy(value)
    path = Path(value)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(
                f"DeepSpeed config cannot be read: {e}",
                file=file,
                key=_KEY,
                value=value,
                fix="point it at a valid JSON file",
            ) from None
        if not isinstance(data, dict):
            raise ConfigError("DeepSpeed config must be a JSON object", file=file, key=_KEY, value=value)
        return data
    if path.name in STOCK:
        return copy.deepcopy(STOCK[path.name])
    raise ConfigError(
        "DeepSpeed config file does not exist and is not a stock LLaMA-Factory name",
        file=file,
        key=_KEY,
        value=value,
        fix=f"give a path relative to the block file, or one of {sorted(STOCK)}",
    )


def zero_stage(config: dict[str, Any] | None) -> int | None:
    if not config:
        return None
    stage = (config.get("zero_optimization") or {}).get("stage")
    return int(stage) if isinstance(stage, int | float) else None
