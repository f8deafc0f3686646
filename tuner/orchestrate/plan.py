"""The study's run shape and scheduler settings, decided before Ray starts (no Ray import here).

The one owner of the scheduler's settings: which scheduler, its time axis (samples seen), and ASHA's
max_t, grace period and reduction factor. `driver.py` only translates them into Ray objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.config.block import Block
from tuner.config.space import SearchSpace
from tuner.trial.dataset import PreparedData

if TYPE_CHECKING:
    import optuna

SCHEDULERS = ("asha", "none")
OBJECTIVE = "objective"  # Ray result key of the study's metric
PROGRESS = "samples"  # Ray result key of training progress (samples seen): the scheduler's time axis


@dataclass(frozen=True)
class SchedulerSettings:
    kind: str  # asha | none
    max_t: int = 0  # in samples seen
    grace_period: int = 0
    reduction_factor: int = 3

    @classmethod
    def for_study(cls, kind: str, max_samples: int) -> SchedulerSettings:
        """`max_samples`: the most samples any trial of the space can see."""
        if kind == "none":
            return cls("none")
        # max_t just above the largest trial, so ASHA never stops a trial for having finished.
        max_t = int(max_samples * 1.05) + 1
        return cls("asha", max_t=max_t, grace_period=max(1, max_t // 9), reduction_factor=3)

    def pruner(self) -> optuna.pruners.BasePruner:
        """The study's early-stopping rule (asynchronous successive halving, ASHA's rule, on the
        intermediate values stored in the study); Ray only carries out its decisions."""
        import optuna

        if self.kind == "none":
            return optuna.pruners.NopPruner()
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.grace_period, reduction_factor=self.reduction_factor, min_early_stopping_rate=0
        )


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
    """The most samples a trial of this space can see: most epochs x largest training set."""
    epochs = space.params.get("num_train_epochs")
    most_epochs = (
        epochs.high
        if epochs and epochs.high
        else max(epochs.choices)
        if epochs and epochs.choices
        else (block.training.num_train_epochs)
    )
    cap = space.params.get("max_instances")
    most_samples = int(cap.high) if cap and cap.high else data.n_train
    return int(most_samples * float(most_epochs))  # type: ignore[arg-type]
