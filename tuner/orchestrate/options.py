"""`tune start` / `tune resume` options, and the rules every flag must follow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.config.memory_check import parse_memory
from tuner.errors import ConfigError
from tuner.orchestrate.plan import SCHEDULERS
from tuner.redact import redact_url
from tuner.study.samplers import SAMPLERS
from tuner.study.warm import WarmSource


@dataclass(frozen=True)
class StartOptions:
    """What the user typed. None means "not given": a new study then takes the default, a resumed
    or joined one its recorded value (tuner/study/shape.py)."""

    budget: str | None
    study: str | None = None
    storage: str | None = None
    space: Path | None = None
    sampler: str = "auto"  # tuner.study.samplers.default_sampler
    scheduler: str | None = None
    gpus_per_trial: int | None = None
    nodes_per_trial: int | None = None
    max_concurrent: int | None = None
    address: str | None = None
    trials_dir: Path = Path("trials")
    seed: int = 0
    startup_trials: int | None = None  # None: default_startup_trials(budget)
    verbose: bool = False
    trial_timeout_s: float | None = None
    retries: int | None = None
    allow_changes: bool = False
    keep_best: int | None = None
    join: bool = False  # run next to the study's live drivers (PostgreSQL), sharing its budget
    warm_start: WarmSource | None = None  # seed a new study with another study's trials
    gpu_memory: str | None = None  # one GPU's memory ("80GiB"); None: what nvidia-smi reports

    def shape_flags(self) -> dict[str, Any]:
        """The run-shape flags as given (None: not given), by RunShape field."""
        return {
            "gpus_per_trial": self.gpus_per_trial,
            "nodes_per_trial": self.nodes_per_trial,
            "max_concurrent": self.max_concurrent,
            "trial_timeout_s": self.trial_timeout_s,
            "retries": self.retries,
            "keep_best": self.keep_best,
            "scheduler": self.scheduler,
            "gpu_memory_gib": parse_memory(self.gpu_memory) / 2**30 if self.gpu_memory else None,
        }


def check_options(o: StartOptions) -> None:
    """Every flag's rule, checked before the study is touched."""
    if o.gpu_memory is not None:
        parse_memory(o.gpu_memory)
    if o.sampler not in SAMPLERS:
        raise ConfigError("is not a sampler", key="--sampler", value=o.sampler, fix=f"use one of {', '.join(SAMPLERS)}")
    if o.scheduler is not None and o.scheduler not in SCHEDULERS:
        raise ConfigError(
            "is not a scheduler", key="--scheduler", value=o.scheduler, fix=f"use one of {', '.join(SCHEDULERS)}"
        )
    for key, value, low in (
        ("--gpus-per-trial", o.gpus_per_trial, 0),
        ("--nodes-per-trial", o.nodes_per_trial, 1),
        ("--retries", o.retries, 0),
        ("--keep-best", o.keep_best, 0),
        ("--startup-trials", o.startup_trials, 1),
        ("--max-concurrent", o.max_concurrent, 1),
    ):
        if value is not None and value < low:
            raise ConfigError(f"must be >= {low}", key=key, value=value, fix=f"use {low} or more")
    if o.warm_start is not None and o.warm_start.rerun < 0:
        raise ConfigError(
            "must be >= 0", key="--warm-start-rerun", value=o.warm_start.rerun, fix="use 0 (none) or more"
        )
    if o.trial_timeout_s is not None and o.trial_timeout_s <= 0:
        raise ConfigError("must be > 0 seconds", key="--trial-timeout", value=o.trial_timeout_s, fix="e.g. 1800")


def warm_source(study: str | None, storage: str | None, rerun: int | None) -> WarmSource | None:
    """`--warm-start STUDY [--warm-start-storage URL] [--warm-start-rerun K]` as one value."""
    if study is None:
        if storage is not None or rerun is not None:
            raise ConfigError(
                "needs --warm-start STUDY",
                key="--warm-start-storage" if storage is not None else "--warm-start-rerun",
                value=redact_url(storage) if storage is not None else rerun,
                fix="name the study to learn from with --warm-start, or drop the flag",
            )
        return None
    return WarmSource(study, storage, 1 if rerun is None else rerun)
