"""The study's run shape and scheduler settings, decided before Ray starts (no Ray import here).

The one owner of the scheduler's settings: which scheduler, its time axis (samples seen), and ASHA's
max_t, grace period and reduction factor. `driver.py` only translates them into Ray objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.config.block import Block
from tuner.config.experiment import Experiment
from tuner.config.space import SearchSpace
from tuner.errors import ConfigError
from tuner.study.rungs import RungRule
from tuner.trial.dataset import PreparedData

if TYPE_CHECKING:
    import optuna

SCHEDULERS = ("asha", "none")
OBJECTIVE = "objective"  # Ray result key of the study's metric
PROGRESS = "samples"  # Ray result key of training progress (samples seen): the scheduler's time axis
PLANNED = "planned_samples"  # Ray result key of the samples the trial sees if it runs to its end


@dataclass(frozen=True)
class SchedulerSettings:
    """Successive halving on a grid of progress points shared by every trial of the study.

    Rung k sits at `grace_period * reduction_factor**k` samples seen, up to the longest trial of the
    space (`max_t`). Every trial evaluates exactly at the rungs it reaches (plus at its own end), so a
    rung compares trials at identical absolute progress; a trial that ends before a rung is never
    compared there. No trial is stopped for its length: only the pruner's comparisons stop trials.
    """

    kind: str  # asha | none
    max_t: int = 0  # samples seen by the longest trial the space allows
    grace_period: int = 0  # the first rung, in samples seen
    reduction_factor: int = 3

    @classmethod
    def for_study(
        cls, kind: str, max_samples: int, warmup: int = 0, grace_period: int | None = None
    ) -> SchedulerSettings:
        """`max_samples`: the most samples any trial of the space can see; `warmup`: the samples seen
        when the longest warm-up of the space ends; `grace_period`: a study's recorded first rung (a
        resumed or joined study keeps its grid). The grid is the same with or without early stopping,
        so studies' curves stay comparable."""
        if kind not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {kind!r}")
        max_t = max(1, int(max_samples))
        # Hyperband's standard eta = 3 with rungs at 1/9 and 1/3 of the longest trial (its end is
        # the third), but no rung inside a warm-up: there a trial's loss measures how far its learning
        # rate has ramped, not the configuration (docs/benchmarks.md 2d: on the demo, a rung at 1/9 put
        # its best configuration, warm-up 0.1, behind six configurations without a warm-up).
        first = grace_period if grace_period is not None else max(1, max_t // 9, int(warmup))
        return cls(kind, max_t=max_t, grace_period=first, reduction_factor=3)

    def progress_points(self) -> tuple[int, ...]:
        """The rungs below the longest trial's end, in samples seen: where every trial evaluates."""
        points, point = [], self.grace_period
        while point < self.max_t:
            points.append(point)
            point *= self.reduction_factor
        return tuple(points)

    def warning(self) -> str | None:
        """What a user should know before ASHA runs on this grid: a warm-up that leaves it one
        comparison or none (the first rung waits for the longest warm-up)."""
        if self.kind != "asha" or len(self.progress_points()) > 1:
            return None
        what = "compares trials only once" if self.progress_points() else "stops no trial early"
        return (
            f"ASHA {what}: no trial is compared before the space's longest warm-up ends, at "
            f"{self.grace_period} of {self.max_t} samples; a shorter warm-up (warmup_ratio) leaves it more rungs"
        )

    def pruner(self) -> optuna.pruners.BasePruner:
        """The study's early-stopping rule (asynchronous successive halving, ASHA's rule, on the
        intermediate values stored in the study); Ray only carries out its decisions."""
        import optuna

        if self.kind == "none":
            return optuna.pruners.NopPruner()
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.grace_period, reduction_factor=self.reduction_factor, min_early_stopping_rate=0
        )

    def rung_rule(self, experiment: Experiment) -> RungRule | None:
        """The same successive halving for a multi-objective study, on its early_stopping_metric
        (Optuna prunes single-objective studies only); None when nothing is stopped early there."""
        if self.kind == "none" or not experiment.multi_objective or experiment.early_stopping_metric is None:
            return None
        name = experiment.early_stopping_metric
        direction = next(o.direction for o in experiment.objectives if o.name == name)
        return RungRule(self.progress_points(), self.reduction_factor, minimize=direction == "minimize")


def scheduler_for(experiment: Experiment, kind: str, *, explicit: str | None) -> str:
    """The study's scheduler. A multi-objective study stops trials early only on the one metric
    `early_stopping_metric` names: without it the default (asha) becomes none, and an explicit
    `--scheduler asha` is refused (it could compare trials on nothing)."""
    if not experiment.multi_objective or experiment.early_stopping_metric is not None or kind == "none":
        return kind
    if explicit == "asha":
        raise ConfigError(
            f"cannot stop trials early in a study of several objectives ({experiment.describe()}) "
            "without one metric to compare them on",
            key="--scheduler",
            value=explicit,
            fix="name it under experiment (`early_stopping_metric: eval_loss`), or drop --scheduler asha",
        )
    return "none"


@dataclass(frozen=True)
class RayPlan:
    """Everything the driver needs beyond the session: resources, scheduler, concurrency."""

    study: str
    trials_dir: Path
    scheduler: SchedulerSettings
    gpus_per_trial: int  # over all the trial's nodes
    max_concurrent: int  # at most this many trials at once
    mode: str  # min | max
    nodes_per_trial: int = 1
    follow_cluster: bool = False  # re-read the cluster's GPUs: concurrency grows and shrinks with its nodes
    address: str | None = None
    verbose: bool = False
    timeout_s: float | None = None
    reuse_actors: bool = False  # LLaMA-Factory trials want fresh workers; cheap Python objectives do not


def max_samples(space: SearchSpace, block: Block, data: PreparedData) -> int:
    """The most samples a trial of this space can see: most epochs x largest training set (a
    `max_instances` range or choice list, capped at the training pool, or the block's own set)."""
    return int(_most(space, "num_train_epochs", block.training.num_train_epochs) * _most_instances(space, data))


def warmup_samples(space: SearchSpace, block: Block, max_t: int, processes: int) -> int:
    """The samples seen when the longest warm-up of the space ends: the largest `warmup_ratio` of the
    longest trial, or a passed-through `warmup_steps` (optimizer steps, or a ratio below 1 as
    transformers reads it) at the largest global batch of the space."""
    ratio = _most(space, "warmup_ratio", block.training.warmup_ratio)
    given = block.training.passthrough.get("warmup_steps")
    steps = float(given) if isinstance(given, int | float) and not isinstance(given, bool) else 0.0
    if steps < 1:  # transformers reads a warmup_steps below 1 as a ratio
        return math.ceil(max(ratio, steps) * max_t)
    per_device = _most(space, "per_device_train_batch_size", block.training.per_device_train_batch_size)
    accumulation = _most(space, "gradient_accumulation_steps", block.training.gradient_accumulation_steps)
    return max(math.ceil(ratio * max_t), int(steps * per_device * accumulation * max(1, processes)))


def _most(space: SearchSpace, name: str, default: float) -> float:
    param = space.params.get(name)
    if param is None:
        return float(default)
    if param.choices is not None:
        return float(max(param.choices))
    return float(param.high if param.high is not None else default)


def _most_instances(space: SearchSpace, data: PreparedData) -> int:
    if "max_instances" not in space.params:
        return data.n_train
    return int(min(_most(space, "max_instances", data.n_train), data.n_pool))
