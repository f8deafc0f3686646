"""`tune start` / `tune resume` options, and the rules every flag must follow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuner.errors import ConfigError
from tuner.orchestrate.plan import SCHEDULERS, local_gpus
from tuner.study.samplers import SAMPLERS


@dataclass(frozen=True)
class StartOptions:
    budget: str | None
    study: str | None = None
    storage: str | None = None
    space: Path | None = None
    sampler: str = "tpe"
    scheduler: str = "asha"
    gpus_per_trial: int = 0
    max_concurrent: int | None = None
    address: str | None = None
    trials_dir: Path = Path("trials")
    seed: int = 0
    startup_trials: int | None = None  # None: default_startup_trials(budget)
    verbose: bool = False
    trial_timeout_s: float | None = None
    retries: int = 0
    allow_changes: bool = False
    keep_best: int = 1
    join: bool = False  # run next to the study's live drivers (PostgreSQL), sharing its budget


def check_options(o: StartOptions) -> None:
    """Every flag's rule, checked before the study is touched."""
    if o.sampler not in SAMPLERS:
        raise ConfigError("is not a sampler", key="--sampler", value=o.sampler, fix=f"use one of {', '.join(SAMPLERS)}")
    if o.scheduler not in SCHEDULERS:
        raise ConfigError(
            "is not a scheduler", key="--scheduler", value=o.scheduler, fix=f"use one of {', '.join(SCHEDULERS)}"
        )
    for key, value, low in (
        ("--gpus-per-trial", o.gpus_per_trial, 0),
        ("--retries", o.retries, 0),
        ("--keep-best", o.keep_best, 0),
    ):
        if value < low:
            raise ConfigError(f"must be >= {low}", key=key, value=value, fix=f"use {low} or more")
    if o.startup_trials is not None and o.startup_trials < 1:
        raise ConfigError("must be >= 1", key="--startup-trials", value=o.startup_trials, fix="use 1 or more")
    if o.max_concurrent is not None and o.max_concurrent < 1:
        raise ConfigError("must be >= 1", key="--max-concurrent", value=o.max_concurrent, fix="use 1 or more")
    if o.trial_timeout_s is not None and o.trial_timeout_s <= 0:
        raise ConfigError("must be > 0 seconds", key="--trial-timeout", value=o.trial_timeout_s, fix="e.g. 1800")
    gpus = local_gpus() if o.address is None and o.gpus_per_trial > 0 else None  # nvidia-smi: ask once
    if gpus is not None and gpus < o.gpus_per_trial:
        raise ConfigError(
            f"asks for {o.gpus_per_trial} GPU(s) per trial but this machine has {gpus}",
            key="--gpus-per-trial",
            value=o.gpus_per_trial,
            fix="use --gpus-per-trial 0 on a CPU machine, or --address of a Ray cluster with GPUs",
        )
