"""`tune start` / `tune resume`: from a block and a budget to a finished study.

Order matters: everything that can be wrong with the input (block, space, data, budget, flags)
is checked before the study is touched and before Ray starts. An existing study is resumed: its
orphaned trials are recovered, its budget continues, and a changed block or space is refused
unless the user allows it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuner import __version__
from tuner.config.block import Block, load_block
from tuner.config.preflight import Finding, gpus_present, run_preflight
from tuner.config.space import SearchSpace, build_space
from tuner.errors import ConfigError, PreflightError, SpaceError, TunerError
from tuner.redact import redact_url
from tuner.study.budget import Budget, Ledger, parse_budget
from tuner.study.lease import Lease
from tuner.study.recovery import Recovered, recover
from tuner.study.session import StudySession
from tuner.study.store import SAMPLERS, StudyStore, default_startup_trials, default_storage, make_sampler, study_names
from tuner.trial.dataset import PreparedData, prepare_dataset
from tuner.trial.launch import stop_recorded
from tuner.trial.workspace import TrialPaths, check_study_name, check_trials_dir, trial_paths

log = logging.getLogger(__name__)


class Interrupted(TunerError):
    """The driver was stopped by Ctrl-C or SIGTERM; the study can be resumed."""

    exit_code = 130


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


@dataclass
class Prepared:
    """A study ready to run: validated inputs, the opened study, the lease and the session."""

    session: StudySession
    plan: Any  # driver.RayPlan (driver imports Ray lazily)
    targets: dict[str, str]
    findings: list[Finding]
    budget: Budget
    resumed: bool
    lease: Lease
    recovered: Recovered | None = None
    took_over: dict[str, Any] | None = None


def _check_flags(o: StartOptions) -> None:
    if o.sampler not in SAMPLERS:
        raise ConfigError("is not a sampler", key="--sampler", value=o.sampler, fix=f"use one of {', '.join(SAMPLERS)}")
    if o.scheduler not in ("asha", "none"):
        raise ConfigError("is not a scheduler", key="--scheduler", value=o.scheduler, fix="use asha or none")
    for key, value, low in (("--gpus-per-trial", o.gpus_per_trial, 0), ("--retries", o.retries, 0),
                            ("--keep-best", o.keep_best, 0)):
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
            key="--gpus-per-trial", value=o.gpus_per_trial,
            fix="use --gpus-per-trial 0 on a CPU machine, or --address of a Ray cluster with GPUs",
        )  # fmt: skip


def local_gpus() -> int:
    """GPUs a local Ray gets: detected ones, or TUNER_RAY_NUM_GPUS (logical GPUs, e.g. in tests)."""
    logical = os.environ.get("TUNER_RAY_NUM_GPUS")
    return int(logical) if logical else gpus_present()


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
        "startup_trials": o.startup_trials,
        "metric": block.experiment.metric, "direction": block.experiment.direction,
        "storage": redact_url(url), "gpus_per_trial": o.gpus_per_trial,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _check_unchanged(attrs: dict[str, Any], block: Block, space: SearchSpace, o: StartOptions) -> list[str]:
    """What differs from the study's record; refused unless --allow-changes."""
    changes = []
    if attrs.get("block_hash") != block.content_hash:
        changes.append(f"the block changed (hash {attrs.get('block_hash')} -> {block.content_hash})")
    if not _same(attrs.get("space"), space.to_dict()):
        changes.append("the search space changed")
    if changes and not o.allow_changes:
        raise ConfigError(
            f"study {o.study!r} cannot resume: {'; '.join(changes)}", key="--study", value=o.study,
            fix="restore the original block/space, pass --allow-changes to resume anyway, or start a new --study",
        )  # fmt: skip
    return changes


def prepare_study(block: Block | None, o: StartOptions, *, must_exist: bool = False) -> Prepared:
    """Validate everything, open (or resume) the study, take its lease, recover orphans."""
    from tuner.orchestrate.driver import RayPlan

    _check_flags(o)
    if o.sampler == "gp" and o.scheduler == "asha":
        log.warning("--sampler gp learns only from completed trials and ASHA stops most trials early, "
                    "so GP learns little (docs/benchmarks.md): use --sampler gp with --scheduler none, "
                    "or the default tpe")  # fmt: skip
    trials_dir = check_trials_dir(o.trials_dir)
    url = o.storage or default_storage(trials_dir)
    existing = o.study is not None and o.study in study_names(url)
    if o.join and not existing:
        raise ConfigError(f"--join needs an existing study; {o.study!r} is not in {redact_url(url)}", key="--study",
                          value=o.study, fix="start it first without --join")  # fmt: skip
    if o.join and o.budget is not None:
        raise ConfigError("a joining driver shares the study's budget and cannot change it", key="--budget",
                          value=o.budget, fix="drop --budget (extend it later with tune resume --budget)")  # fmt: skip
    if must_exist and not existing:
        raise ConfigError(f"no study named {o.study!r} in {redact_url(url)}", key="STUDY", value=o.study,
                          fix="run `tune status` to list the studies, or `tune start` to create one")  # fmt: skip
    attrs: dict[str, Any] = StudyStore.open(url, o.study, create=False).attrs() if existing else {}  # type: ignore[arg-type]
    if existing and "tuner_version" in attrs:
        if block is None:
            block = load_block(attrs["block_file"])
        o = replace(o, sampler=attrs.get("sampler", o.sampler), scheduler=attrs.get("scheduler", o.scheduler),
                    space=o.space or (Path(attrs["space_file"]) if attrs.get("space_file") else None))  # fmt: skip
    if block is None:
        raise ConfigError("a block is needed to start a study", key="--config", fix="pass --config block.yaml")
    resumed = existing and "tuner_version" in attrs
    stored_budget = Budget.from_dict(attrs["budget"]) if resumed else None
    if o.budget is None and stored_budget is None:
        raise ConfigError("a new study needs a budget", key="--budget", fix="add e.g. --budget 20 (trials) or 8h")
    budget = stored_budget.extended(parse_budget(o.budget)) if stored_budget and o.budget else (  # type: ignore[union-attr]
        stored_budget or parse_budget(o.budget))  # type: ignore[arg-type]  # fmt: skip

    findings = run_preflight(block, space_path=o.space)
    if any(f.severity == "error" for f in findings):
        raise PreflightError(findings)
    name = check_study_name(o.study or f"{block.conversion.data_name}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    space = build_space(block, o.space)
    # Converting the data now checks it before any trial, and warms the cache the trials share.
    data = prepare_dataset(block.conversion, block.training.template, TrialPaths(trials_dir / name / "x").data_cache)
    space = _fit_space_to_data(space, data, block)
    if not space.params:
        raise SpaceError("names no parameter to tune", file=block.file, key="evolving.tunable_params", value={},
                         fix="list e.g. [learning_rate, num_train_epochs]")  # fmt: skip
    changes = _check_unchanged(attrs, block, space, replace(o, study=name)) if resumed else []

    secrets = tuple(filter(None, (block.secret(k) for k in block.credentials)))
    # A resumed or joining driver must not replay another driver's random draws: offset the seed by
    # the drivers the study has had and the trials it holds (still reproducible for a single driver).
    drivers_before = sum(1 for k in attrs if k.startswith("driver:"))
    seed = int(attrs.get("seed", o.seed)) + (1000 * drivers_before + len(_trial_numbers(url, name)) if resumed else 0)
    startup = int(attrs.get("startup_trials") or o.startup_trials or default_startup_trials(budget))
    o = replace(o, startup_trials=startup)  # what study_attrs records
    sampler = make_sampler(o.sampler, seed, space, startup)
    store = StudyStore.open(url, name, direction=block.experiment.direction, sampler=sampler, secrets=secrets)
    lease = Lease(store, join=o.join).acquire()
    try:
        # A joining driver leaves RUNNING trials alone: they belong to the live drivers.
        recovered = recover(store, block) if resumed and not o.join else None
        if not resumed:
            store.set_attrs(study_attrs(block, space, o, budget, url))
            store.set_metric_name(block.experiment.metric)
        elif not o.join:
            store.set_attrs({"budget": budget.to_dict()})
            if changes:
                history = [*attrs.get("changes", []), {"when": dt.datetime.now(dt.UTC).isoformat(), "what": changes}]
                store.set_attrs({"block_hash": block.content_hash, "space": space.to_dict(),
                                 "block": block.public_dict(), "changes": history})  # fmt: skip
    except BaseException:
        lease.release()
        raise
    ledger = Ledger.from_dict(attrs["spent"], budget) if resumed and "spent" in attrs else Ledger(budget)

    units = max(1, o.gpus_per_trial)
    available = local_gpus() if o.address is None else 0
    default_concurrency = max(1, available // o.gpus_per_trial) if o.gpus_per_trial else 1
    session = StudySession(store, block, space, ledger, trials_dir, units_per_trial=units,
                           gpus_per_trial=o.gpus_per_trial, retries=o.retries, keep_best=o.keep_best)  # fmt: skip
    plan = RayPlan(
        study=name, trials_dir=trials_dir, scheduler=o.scheduler, gpus_per_trial=o.gpus_per_trial,
        nproc_per_trial=units, max_concurrent=o.max_concurrent or default_concurrency,
        max_samples=_max_samples(space, block, data), mode="min" if block.experiment.direction == "minimize" else "max",
        address=o.address, verbose=o.verbose, timeout_s=o.trial_timeout_s,
    )  # fmt: skip
    targets = {n: p.target for n, p in space.params.items()}
    return Prepared(session, plan, targets, findings, budget, resumed, lease, recovered, lease.took_over)


def _trial_numbers(url: str, name: str) -> list[int]:
    return [t.number for t in StudyStore.open(url, name, create=False).trials()]


def resume_command(prepared: Prepared) -> str:
    s = prepared.session
    return f"tune resume {s.store.name} --storage '{redact_url(s.store.url)}' --trials-dir {s.trials_dir}"


def run_study(prepared: Prepared, on_step: Callable[[], None], on_signal: Callable[[int], None]) -> None:
    """Run until the budget is spent. The first Ctrl-C/SIGTERM stops gracefully (running trials are
    stopped and recorded FAIL interrupted, so a resume runs them again); a second kills at once."""
    from tuner.orchestrate import driver

    session = prepared.session
    signals = 0

    def handle(signum: int, frame: Any) -> None:
        nonlocal signals
        signals += 1
        session.interrupted = True
        on_signal(signals)
        if signals > 1:
            for number in list(session.running):
                stop_recorded(trial_paths(session.trials_dir, session.store.name, number).pid, grace_s=2)
            prepared.lease.release()
            os._exit(130)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours above: Ray's would end the run its own way
    try:
        driver.run(session, session.block, prepared.targets, prepared.plan, on_step)
    except Exception:
        if not session.interrupted:
            raise
        log.info("Ray stopped with an error after the interrupt", exc_info=True)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        try:
            session.finish_running(interrupted=session.interrupted)
            session.save_spent()
        finally:
            prepared.lease.release()
    if session.interrupted:
        raise Interrupted(
            f"study {session.store.name!r} was interrupted; its running trials are recorded FAIL interrupted "
            f"and run again on resume. Resume with: {resume_command(prepared)}"
        )

