"""The space file (`search_spaces/*.yaml`): what each tunable is, its safe range and where it lands.

Pydantic models of the file, the range rules shared with the block's narrowing, and loading.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuner.config import yaml_io
from tuner.config._pydantic_errors import translate
from tuner.errors import SpaceError

DEFAULT_SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "sft_full.yaml"

# Keys the renderer sets for every trial; tuning them would break the trial workspace contract.
RENDERER_OWNED = frozenset(
    {
        "output_dir",
        "dataset",
        "dataset_dir",
        "eval_dataset",
        "deepspeed",
        "report_to",
        "run_name",
        "logging_dir",
        "do_train",
        "do_eval",
        "eval_strategy",
        "eval_steps",
        "overwrite_output_dir",
        "model_name_or_path",
        "template",
        "stage",
        "finetuning_type",
    }
)


class ParamSpec(BaseModel):
    """One tunable as a space file declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)
    target: Literal["training", "conversion"] = "training"

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        check_range(self.type, self.low, self.high, self.log, self.step, self.choices)
        return self


class GlobalBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min: int = Field(1, ge=1)
    max: int = Field(1_000_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> GlobalBatch:
        if self.min > self.max:
            raise ValueError(f"`min <= max` must hold, but got (min={self.min}, max={self.max})")
        return self


class Constraints(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    global_batch_size: GlobalBatch | None = None


class SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    params: dict[str, ParamSpec] = Field(min_length=1)
    constraints: Constraints = Field(default_factory=Constraints)


def check_range(
    kind: str,
    low: float | None,
    high: float | None,
    log: bool,
    step: float | None,
    choices: list[Any] | None,
) -> None:
    """Raise ValueError (turned into SpaceError by the caller) when a range is unusable."""
    if kind == "categorical":
        if not choices:
            raise ValueError("a categorical parameter needs `choices` (a non-empty list)")
        if low is not None or high is not None:
            raise ValueError("a categorical parameter takes `choices`, not low/high")
        if len(set(map(json.dumps, choices))) != len(choices):
            raise ValueError(f"`choices` must be distinct, but got {choices}")
        return
    if choices is not None:
        raise ValueError(f"a {kind} parameter takes low/high, not `choices`")
    if low is None or high is None:
        raise ValueError(f"a {kind} parameter needs both `low` and `high`")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"low and high must be finite, but got (low={low}, high={high})")
    if low >= high:
        raise ValueError(f"`low < high` must hold, but got (low={low}, high={high})")
    if log and low <= 0:
        raise ValueError(f"a log range must be positive (`low > 0`), but got (low={low}, high={high})")
    if log and step is not None:
        raise ValueError("`step` cannot be combined with `log: true`")
    if kind == "int" and (low != int(low) or high != int(high) or (step is not None and step != int(step))):
        raise ValueError(f"an int parameter needs whole numbers, but got (low={low}, high={high})")


def load_space_file(path: Path) -> SpaceFile:
    data = yaml_io.load(path)
    try:
        return SpaceFile.model_validate(data)
    except ValidationError as e:
        raise translate(e, SpaceFile, file=str(path), error_cls=SpaceError) from None
