"""`tune start`: from a block and a budget to a finished study.

Order matters: everything that can be wrong with the input (block, space, data, budget, flags)
is checked before the study is created and before Ray starts.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuner import __version__
from tuner.block import Block
from tuner.budget import Budget, Ledger, parse_budget
from tuner.dataset import PreparedData, prepare_dataset
from tuner.errors import ConfigError, PreflightError, SpaceError
from tuner.preflight import Finding, gpus_present, run_preflight
from tuner.session import StudySession
from tuner.space import SearchSpace, build_space
from tuner.study import SAMPLERS, StudyStore, default_storage, make_sampler, redact
from tuner.workspace import TrialPaths, check_study_name, check_trials_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartOptions:
    budget: str
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
    verbose: bool = False
    trial_timeout_s: float | None = None


@dataclass
class Prepared:
    """A study ready to run: validated inputs, the opened study and the session."""

    session: StudySession
    plan: Any  # driver.RayPlan (driver imports Ray lazily)
    targets: dict[str, str]
    findings: list[Finding]
    budget: Budget
    resumed: bool


def _check_flags(o: StartOptions) -> None:
    if o.sampler not in SAMPLERS:
        raise ConfigError("is not a sampler", key="--sampler", value=o.sampler, fix=f"use one of {', '.join(SAMPLERS)}")
    if o.scheduler not in ("asha", "none"):
        raise ConfigError("is not a scheduler", key="--scheduler", value=o.scheduler, fix="use asha or none")
    if o.gpus_per_trial < 0:
        raise ConfigError("must be >= 0", key="--gpus-per-trial", value=o.gpus_per_trial, fix="use 0 on CPU")
    if o.max_concurrent is not None and o.max_concurrent < 1:
        raise ConfigError("must be >= 1", key="--max-concurrent", value=o.max_concurrent, fix="use 1 or more")
    if o.address is None and o.gpus_per_trial > 0 and gpus_present() < o.gpus_per_trial:
        raise ConfigError(
            f"asks for {o.gpus_per_trial} GPU(s) per trial but this machine has {gpus_present()}",
            key="--gpus-per-trial", value=o.gpus_per_trial,
            fix="use --gpus-per-trial 0 on a CPU machine, or --address of a Ray cluster with GPUs",
        )  # fmt: skip


def _fit_space_to_data(space: SearchSpace, data: PreparedData, block: Block) -> SearchSpace:
    """max_instances above the training pool trains on the same data: cap the range at the pool."""
    param = space.params.get("max_instances")
    if param is None or param.high is None or param.high <= data.n_pool:
        return space
    if param.low is not None and param.low >= data.n_pool:
        raise SpaceError(
            f"the training pool has only {data.n_pool} samples (after holding out "
            f"{data.n_eval} for eval), below the range's low end", file=block.file,
            key="evolving.tunable_params.max_instances", value={"low": param.low, "high": param.high},
            fix=f"narrow max_instances to at most {data.n_pool}",
        )  # fmt: skip
    log.warning("max_instances narrowed to [%s, %s]: the training pool has %s samples",
                param.low, data.n_pool, data.n_pool)  # fmt: skip
    params = {**space.params, "max_instances": replace(param, high=float(data.n_pool))}
    return replace(space, params=params)


def _max_samples(space: SearchSpace, block: Block, data: PreparedData) -> int:
    epochs = space.params.get("num_train_epochs")
    most_epochs = epochs.high if epochs and epochs.high else max(epochs.choices) if epochs and epochs.choices else (
        block.training.num_train_epochs)  # fmt: skip
    cap = space.params.get("max_instances")
    most_samples = int(cap.high) if cap and cap.high else data.n_train
    return int(most_samples * float(most_epochs))  # type: ignore[arg-type]


def study_attrs(block: Block, space: SearchSpace, o: StartOptions, budget: Budget, url: str) -> dict[str, Any]:
    """What a study records about itself (never a secret: the block is stored masked)."""
    return {
        "tuner_version": __version__, "block_hash": block.content_hash, "block_file": block.file,
        "block": block.public_dict(), "space": space.to_dict(), "space_file": space.source,
        "budget": budget.to_dict(), "sampler": o.sampler, "scheduler": o.scheduler, "seed": o.seed,
        "metric": block.experiment.metric, "direction": block.experiment.direction,
        "storage": redact(url), "gpus_per_trial": o.gpus_per_trial,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def prepare_study(block: Block, o: StartOptions) -> Prepared:
    from tuner.driver import RayPlan

    _check_flags(o)
    budget = parse_budget(o.budget)
    findings = run_preflight(block, space_path=o.space)
    if any(f.severity == "error" for f in findings):
        raise PreflightError(findings)
    trials_dir = check_trials_dir(o.trials_dir)
    name = check_study_name(o.study or f"{block.conversion.data_name}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    space = build_space(block, o.space)
    # Converting the data now checks it before any trial, and warms the cache the trials share.
    data = prepare_dataset(block.conversion, block.training.template, TrialPaths(trials_dir / name / "x").data_cache)
    space = _fit_space_to_data(space, data, block)
    if not space.params:
        raise SpaceError("names no parameter to tune", file=block.file, key="evolving.tunable_params", value={},
                         fix="list e.g. [learning_rate, num_train_epochs]")  # fmt: skip

    url = o.storage or default_storage(trials_dir)
    secrets = tuple(filter(None, (block.secret(k) for k in block.credentials)))
    sampler = make_sampler(o.sampler, o.seed, space)
    store = StudyStore.open(url, name, direction=block.experiment.direction, sampler=sampler, secrets=secrets)
    attrs = store.attrs()
    resumed = "tuner_version" in attrs
    if resumed and attrs.get("block_hash") != block.content_hash:
        raise ConfigError(
            f"study {name!r} was started with a different block (hash {attrs.get('block_hash')} vs "
            f"{block.content_hash})", key="--study", value=name, fix="choose a new --study name",
        )  # fmt: skip
    if not resumed:
        store.set_attrs(study_attrs(block, space, o, budget, url))
    ledger = Ledger.from_dict(attrs["spent"], budget) if resumed and "spent" in attrs else Ledger(budget)

    units = max(1, o.gpus_per_trial)
    available = gpus_present() if o.address is None else 0
    default_concurrency = max(1, available // o.gpus_per_trial) if o.gpus_per_trial else 1
    session = StudySession(store, block, space, ledger, trials_dir, units_per_trial=units,
                           gpus_per_trial=o.gpus_per_trial)  # fmt: skip
    plan = RayPlan(
        study=name, trials_dir=trials_dir, scheduler=o.scheduler, gpus_per_trial=o.gpus_per_trial,
        nproc_per_trial=units, max_concurrent=o.max_concurrent or default_concurrency,
        max_samples=_max_samples(space, block, data), mode="min" if block.experiment.direction == "minimize" else "max",
        address=o.address, verbose=o.verbose, timeout_s=o.trial_timeout_s,
    )  # fmt: skip
    targets = {n: p.target for n, p in space.params.items()}
    return Prepared(session, plan, targets, findings, budget, resumed)


def run_study(prepared: Prepared, on_step: Any) -> None:
    from tuner import driver

    session = prepared.session
    try:
        driver.run(session, session.block, prepared.targets, prepared.plan, on_step)
    except BaseException:
        session.finish_running(interrupted=True)
        raise
    finally:
        session.finish_running()
        session.save_spent()
