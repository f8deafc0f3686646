"""`--set key=value` overrides and trial parameters applied to a block, re-validated.

A trial's parameters (sampled by a study or given with --set) land in the block section their
space-file `target` names; the block is then validated again, so `--set learning_rate=-1` fails
exactly like a bad value in the file would.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tuner.config import yaml_io
from tuner.config._pydantic_errors import translate
from tuner.config.block import Block
from tuner.config.space_file import RENDERER_OWNED
from tuner.errors import ConfigError

CONVERSION_KEYS = frozenset({"max_instances"})


def parse_sets(items: list[str]) -> dict[str, Any]:
    """['learning_rate=1e-4', ...] -> {'learning_rate': 0.0001}; values are YAML scalars."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                "must look like key=value", key="--set", value=item, fix="write e.g. --set learning_rate=1.0e-4"
            )
        params[key] = yaml_io.loads(raw, file=f"--set {key}") if raw.strip() else None
    return params


def targets_for(params: dict[str, Any], known: dict[str, str] | None = None) -> dict[str, str]:
    """Where each parameter lands: the space file's target, else conversion for the conversion
    keys, else training (any LLaMA-Factory argument)."""
    known = known or {}
    return {k: known.get(k, "conversion" if k in CONVERSION_KEYS else "training") for k in params}


def apply_params(block: Block, params: dict[str, Any], targets: dict[str, str], *, origin: str) -> Block:
    """A copy of the block with the parameters filled in, validated like the file itself."""
    owned = sorted(k for k in params if k in RENDERER_OWNED and targets[k] == "training")
    if owned:
        raise ConfigError(
            "is set by tuner for every trial and cannot be overridden",
            key=origin,
            value=owned,
            fix="change it in the block file instead",
        )
    sections: dict[str, Any] = {}
    for name, model in (("training", block.training), ("conversion", block.conversion)):
        mine = {k: v for k, v in params.items() if targets[k] == name}
        # model_validate marks exactly the keys present as set, so rendering still leaves
        # LLaMA-Factory's defaults for keys nobody wrote.
        data = {**model.model_dump(exclude_unset=True), **mine}
        try:
            sections[name] = type(model).model_validate(data)
        except ValidationError as e:
            raise translate(e, type(model), file=origin, prefix=f"runtime_info.input.{name}") from None
    runtime_input = block.runtime_info.input.model_copy(update=sections)
    runtime_info = block.runtime_info.model_copy(update={"input": runtime_input})
    return block.model_copy(update={"runtime_info": runtime_info})
