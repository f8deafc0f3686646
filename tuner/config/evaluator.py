"""`experiment.evaluator`: the block's custom evaluator, a command or a Python entry point, and its rules."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

EVALUATOR_PLACEHOLDERS = ("model_dir", "eval_file", "output_json")


class Evaluator(BaseModel):
    """A program run after training on the trial's final model; its JSON output's `experiment.metric`
    is the trial's value (tuner/trial/evaluate.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] | None = Field(
        None,
        min_length=1,
        description="argv (a list, no shell) with {model_dir}, {eval_file} and {output_json} placeholders.",
    )
    entry_point: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:function, called as function(model_dir, eval_file, output_json) in its own process.",
    )
    timeout_s: float = Field(1800, gt=0, description="Seconds the evaluator may run before it is stopped.")

    @model_validator(mode="after")
    def _one_way(self) -> Evaluator:
        if (self.command is None) == (self.entry_point is None):
            raise ValueError("give exactly one of `command` (an argv list) or `entry_point` (module:function)")
        for arg in self.command or []:
            for name in re.findall(r"{(\w*)}", arg):
                if name not in EVALUATOR_PLACEHOLDERS:
                    raise ValueError(
                        f"unknown placeholder {{{name}}} in {arg!r}: the evaluator's command knows "
                        + ", ".join(f"{{{p}}}" for p in EVALUATOR_PLACEHOLDERS)
                    )
        return self
