"""The block's `experiment` section: what a study optimizes (one metric, or several objectives) and
how trials are judged (the custom evaluator is `evaluator.py`).

One objective: `metric` (+ `direction`, inferred for known metrics). Several: `metrics`, a list of
{name, direction}, which makes a multi-objective Optuna study (a Pareto front, no single best).
Early stopping compares one number per trial, so a multi-objective study stops trials early only
on the metric `early_stopping_metric` names; left unset, its trials all run to their end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tuner.config import metrics
from tuner.config.evaluator import Evaluator


@dataclass(frozen=True)
class Objective:
    """One objective of a study: a metric name and the direction it is optimized in."""

    name: str
    direction: Literal["minimize", "maximize"]

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectiveMetric(_Strict):
    """One entry of `experiment.metrics`."""

    name: str = Field(min_length=1, description="A metric key: a LLaMA-Factory metric, gpu_hours, or the evaluator's.")
    direction: Literal["minimize", "maximize"] | None = Field(
        default_factory=lambda data: metrics.infer_direction(data.get("name", "")),
        validate_default=True,
        description="minimize or maximize; required for a metric that is neither a loss nor in tuner's table.",
    )

    @field_validator("direction")
    @classmethod
    def _direction_known(cls, value: str | None, info: ValidationInfo) -> str:
        if value is None:
            raise ValueError(metrics.direction_required(str(info.data.get("name", "")), entry=True))
        return value


class Experiment(_Strict):
    wandb_mode: Literal["disabled", "offline", "online"] = "disabled"
    wandb_project: str = "tuner"
    metric: str = Field(
        "eval_loss",
        min_length=1,
        description="Metric the study optimizes (its final value): a key LLaMA-Factory writes, e.g. "
        "eval_loss, eval_accuracy (compute_accuracy: true), eval_rouge-l (predict_with_generate: true).",
    )
    # Left unset, the direction is inferred from the metric (metrics.METRICS, or minimize for a loss)
    # and stays unset, so content_hash does not change for blocks that never wrote it.
    direction: Literal["minimize", "maximize"] | None = Field(
        default_factory=lambda data: metrics.infer_direction(data.get("metric", "")),
        validate_default=True,
        description="minimize or maximize; required for a metric that is neither a loss nor in tuner's table.",
    )
    metrics: list[ObjectiveMetric] | None = Field(
        None,
        min_length=2,
        description="Several objectives instead of `metric`, e.g. [{name: eval_accuracy}, {name: gpu_hours}]: "
        "a multi-objective study with a Pareto front.",
    )
    early_stopping_metric: str | None = Field(
        None,
        description="The one metric early stopping compares trials on in a multi-objective study "
        "(one of `metrics`, written at every eval); unset, such a study does not stop trials early.",
    )
    evaluator: Evaluator | None = Field(
        None,
        description="Run after training on the final model; its JSON output's `metric` is the trial's value "
        "(the training's eval_loss stays in the trial's attributes).",
    )

    @field_validator("direction")
    @classmethod
    def _direction_known(cls, value: str | None, info: ValidationInfo) -> str:
        """After validation the direction is always set (inferred or written)."""
        if value is None:
            raise ValueError(metrics.direction_required(str(info.data.get("metric", ""))))
        return value

    @model_validator(mode="after")
    def _one_way_to_name_objectives(self) -> Experiment:
        if self.metrics is None:
            if self.early_stopping_metric not in (None, self.metric):
                raise ValueError(
                    f"early_stopping_metric {self.early_stopping_metric!r} differs from metric {self.metric!r}: "
                    "a single-objective study stops trials early on its own metric; remove early_stopping_metric"
                )
            return self
        written = sorted({"metric", "direction"} & self.model_fields_set)
        if written:
            raise ValueError(
                f"has both `metrics` (several objectives) and {' and '.join(f'`{k}`' for k in written)}: "
                "name the objectives once; keep `metrics` and remove " + " and ".join(f"`{k}`" for k in written)
            )
        names = [m.name for m in self.metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"metrics lists {twice} more than once; list each objective once")
        if self.early_stopping_metric is not None and self.early_stopping_metric not in names:
            raise ValueError(
                f"early_stopping_metric {self.early_stopping_metric!r} is not one of metrics {names}; "
                "name one of them (a metric written at every eval, e.g. eval_loss)"
            )
        return self

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """What the study optimizes, in order (Optuna's `directions`, `values`)."""
        if self.metrics is None:
            return (Objective(self.metric, self.direction or "minimize"),)
        return tuple(Objective(m.name, m.direction or "minimize") for m in self.metrics)

    @property
    def multi_objective(self) -> bool:
        return self.metrics is not None

    @property
    def progress_metric(self) -> str | None:
        """The metric whose intermediate values are reported during training (early stopping, the
        learning curves): the metric of a single-objective study; of a multi-objective one, only
        the one `early_stopping_metric` names (Optuna keeps no intermediate values for those)."""
        return self.early_stopping_metric if self.multi_objective else self.metric

    def study_attrs(self) -> dict[str, Any]:
        """What the study records of its objectives: `objectives` always; `metric` and `direction`
        for a single one (what older tuner versions and single-objective outputs read)."""
        if self.multi_objective:
            return {
                "objectives": [o.to_dict() for o in self.objectives],
                "early_stopping_metric": self.early_stopping_metric,
            }
        return {
            "objectives": [o.to_dict() for o in self.objectives],
            "metric": self.metric,
            "direction": self.direction,
        }

    def describe(self) -> str:
        """'minimize eval_loss' or 'maximize eval_accuracy, minimize gpu_hours'."""
        return ", ".join(f"{o.direction} {o.name}" for o in self.objectives)
