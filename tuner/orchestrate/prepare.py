"""Preparing a study: validate the input, open (or resume) the study, take its lease, recover orphans.

Order matters: everything that can be wrong with the input (block, space, data, budget, flags)
is checked before the study is touched and before Ray starts. An existing study is resumed: its
orphaned trials are recovered, its budget continues, and a changed block or space is refused
unless the user allows it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuner import __version__
from tuner.config.block import Block, load_block
from tuner.config.findings import Finding
from tuner.config.metrics import check_same_objectives
from tuner.config.preflight import run_preflight
from tuner.config.space import SearchSpace, build_space
from tuner.errors import ConfigError, PreflightError, SpaceError
from tuner.orchestrate.cluster import cluster_machine
from tuner.orchestrate.options import StartOptions, check_options
from tuner.orchestrate.placement import default_concurrency, local_machine, resolve_shape
from tuner.orchestrate.plan import RayPlan, SchedulerSettings, max_samples, scheduler_for, warmup_samples
from tuner.redact import redact_url
from tuner.study.budget import Budget, Ledger, parse_budget
from tuner.study.lease import Lease
from tuner.study.recovery import Recovered, recover
from tuner.study.samplers import default_startup_trials, driver_seed, make_sampler
from tuner.study.session import StudySession
from tuner.study.shape import RunShape, stored_shape
from tuner.study.storage import default_storage, study_names
from tuner.study.store import StudyStore
from tuner.study.warm import plan_warm_start
from tuner.trial.dataset import PreparedData, prepare_dataset
from tuner.trial.workspace import TrialPaths, check_study_name, check_trials_dir

log = logging.getLogger(__name__)

# Ray's limit on trials at once when concurrency follows the cluster's GPUs (the searcher holds
# back whatever the cluster cannot place now).
FOLLOW_CLUSTER_LIMIT = 256


@dataclass
class Prepared:
    """A study ready to run: validated inputs, the opened study, the lease and the session."""

    session: StudySession
    plan: RayPlan
    targets: dict[str, str]
    findings: list[Finding]
    budget: Budget
    resumed: bool
    lease: Lease
    recovered: Recovered | None = None
    took_over: dict[str, Any] | None = None


def _fit_space_to_data(space: SearchSpace, data: PreparedData, block: Block) -> SearchSpace:
    """max_instances above the training pool trains on the same data: cap the range at the pool."""
    param = space.params.get("max_instances")
    if param is None or param.high is None or param.high <= data.n_pool:
        return space
    if param.low is not None and param.low >= data.n_pool:
        raise SpaceError(
            f"the training pool has only {data.n_pool} samples (after holding out "
            f"{data.n_eval} for eval), below the range's low end",
            file=block.file,
            key="evolving.tunable_params.max_instances",
            value={"low": param.low, "high": param.high},
            fix=f"narrow max_instances to at most {data.n_pool}",
        )
    log.warning(
        "max_instances narrowed to [%s, %s]: the training pool has %s samples", param.low, data.n_pool, data.n_pool
    )
    params = {**space.params, "max_instances": replace(param, high=float(data.n_pool))}
    return replace(space, params=params)


def study_attrs(
    block: Block, space: SearchSpace, o: StartOptions, budget: Budget, url: str, shape: RunShape
) -> dict[str, Any]:
    """What a study records about itself (never a secret: the block is stored masked)."""
    return {
        "tuner_version": __version__,
        "block_hash": block.content_hash,
        "block_file": block.file,
        "block": block.public_dict(),
        "space": space.to_dict(),
        "space_file": space.source,
        "budget": budget.to_dict(),
        "sampler": o.sampler,
        "scheduler": shape.scheduler,
        "shape": shape.to_dict(),
        "seed": o.seed,
        "startup_trials": o.startup_trials,
        **block.experiment.study_attrs(),
        "storage": redact_url(url),
        "gpus_per_trial": shape.gpus_per_trial,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _check_unchanged(
    attrs: dict[str, Any], block: Block, space: SearchSpace, o: StartOptions, shape_changes: list[str]
) -> list[str]:
    """What differs from the study's record; refused unless --allow-changes. A joining driver runs
    the study's shape as recorded: its trials must be comparable with the live drivers' trials."""
    check_same_objectives(attrs, block.experiment.objectives, study=str(o.study))
    if shape_changes and o.join:
        raise ConfigError(
            f"a joining driver runs study {o.study!r} with its recorded shape, not {'; '.join(shape_changes)}",
            key="--join",
            value=o.study,
            fix="drop --gpus-per-trial/--nodes-per-trial when joining",
        )
    changes = [f"{change} (the global batch size and the progress unit change with it)" for change in shape_changes]
    if attrs.get("block_hash") != block.content_hash:
        changes.append(f"the block changed (hash {attrs.get('block_hash')} -> {block.content_hash})")
    if not _same(attrs.get("space"), space.to_dict()):
        changes.append("the search space changed")
    if changes and not o.allow_changes:
        raise ConfigError(
            f"study {o.study!r} cannot resume: {'; '.join(changes)}",
            key="--study",
            value=o.study,
            fix="restore the original block/space/shape, pass --allow-changes to resume anyway, or start a new --study",
        )
    return changes


def prepare_study(block: Block | None, o: StartOptions, *, must_exist: bool = False) -> Prepared:
    """Validate everything, open (or resume) the study, take its lease, recover orphans."""
    check_options(o)
    trials_dir = check_trials_dir(o.trials_dir)
    url = o.storage or default_storage(trials_dir)
    existing = o.study is not None and o.study in study_names(url)
    if o.join and not existing:
        raise ConfigError(
            f"--join needs an existing study; {o.study!r} is not in {redact_url(url)}",
            key="--study",
            value=o.study,
            fix="start it first without --join",
        )
    if o.join and o.budget is not None:
        raise ConfigError(
            "a joining driver shares the study's budget and cannot change it",
            key="--budget",
            value=o.budget,
            fix="drop --budget (extend it later with tune resume --budget)",
        )
    if must_exist and not existing:
        raise ConfigError(
            f"no study named {o.study!r} in {redact_url(url)}",
            key="STUDY",
            value=o.study,
            fix="run `tune status` to list the studies, or `tune start` to create one",
        )
    attrs: dict[str, Any] = StudyStore.open(url, o.study, create=False).attrs() if existing else {}  # type: ignore[arg-type]
    if existing and "tuner_version" in attrs:
        if block is None:
            block = load_block(attrs["block_file"])
        o = replace(
            o,
            sampler=attrs.get("sampler", o.sampler),
            space=o.space or (Path(attrs["space_file"]) if attrs.get("space_file") else None),
        )
    if block is None:
        raise ConfigError("a block is needed to start a study", key="--config", fix="pass --config block.yaml")
    resumed = existing and "tuner_version" in attrs
    stored_budget = Budget.from_dict(attrs["budget"]) if resumed else None
    if o.budget is None and stored_budget is None:
        raise ConfigError("a new study needs a budget", key="--budget", fix="add e.g. --budget 20 (trials) or 8h")
    if stored_budget is None:
        budget = parse_budget(o.budget)  # type: ignore[arg-type]
    elif o.budget and must_exist:  # `tune resume --budget`: adds to the budget
        budget = stored_budget.extended(parse_budget(o.budget))
    elif o.budget and parse_budget(o.budget) != stored_budget:
        raise ConfigError(
            f"study {o.study!r} already has a budget of {stored_budget.describe()}; `tune start` does not change it",
            key="--budget",
            value=o.budget,
            fix=f"`tune resume {o.study} --budget N` adds N to it, or start a new --study",
        )
    else:  # `tune start` again with the same budget continues the study, it does not add to it
        budget = stored_budget

    findings = run_preflight(block, space_path=o.space)
    if any(f.severity == "error" for f in findings):
        raise PreflightError(findings)
    name = check_study_name(o.study or f"{block.conversion.data_name}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    space = build_space(block, o.space)
    # Converting the data now checks it before any trial, and warms the cache the trials share.
    data = prepare_dataset(block.conversion, block.training.template, TrialPaths(trials_dir / name / "x").data_cache)
    space = _fit_space_to_data(space, data, block)
    if not space.params:
        raise SpaceError(
            "names no parameter to tune",
            file=block.file,
            key="evolving.tunable_params",
            value={},
            fix="list e.g. [learning_rate, num_train_epochs]",
        )
    machine = cluster_machine(o.address, o.verbose) if o.address else local_machine()
    shape, shape_changes, shape_warnings = resolve_shape(o.shape_flags(), block, machine, stored_shape(attrs, resumed))
    for warning in shape_warnings:
        log.warning("%s", warning)
    shape = replace(shape, scheduler=scheduler_for(block.experiment, shape.scheduler, explicit=o.scheduler))
    changes = _check_unchanged(attrs, block, space, replace(o, study=name), shape_changes) if resumed else []
    warm = plan_warm_start(o.warm_start, url, name, space, block.experiment, attrs if resumed else None)

    secrets = tuple(filter(None, (block.secret(k) for k in block.credentials)))
    seed = driver_seed(attrs if resumed else {}, o.seed, len(_trial_numbers(url, name)) if resumed else 0)
    startup = int(attrs.get("startup_trials") or o.startup_trials or default_startup_trials(budget))
    o = replace(o, startup_trials=startup, scheduler=shape.scheduler)  # what study_attrs records
    sampler = make_sampler(o.sampler, seed, space, startup, len(block.experiment.objectives))
    most = max_samples(space, block, data)
    # A resumed study keeps its grid: the first rung it recorded, or, made before the warm-up rule, none.
    warmup = 0 if resumed else warmup_samples(space, block, most, shape.processes)
    first = attrs.get("grace_period") if resumed else None
    scheduler = SchedulerSettings.for_study(shape.scheduler, most, warmup, grace_period=first)
    if warning := scheduler.warning():
        log.warning("%s", warning)
    directions = [objective.direction for objective in block.experiment.objectives]
    store = StudyStore.open(
        url, name, direction=directions, sampler=sampler, pruner=scheduler.pruner(), secrets=secrets
    )
    lease = Lease(store, join=o.join).acquire()
    try:
        # A joining driver recovers only a dead peer's trials: the others belong to live drivers.
        live = lease.live_addresses() if o.join else None
        recovered = recover(store, block, live_drivers=live) if resumed else None
        if not resumed:
            if warm:  # before the study's attrs: a crash in between leaves a study `tune start` seeds again
                warm.apply(store)
            store.set_attrs(
                {**study_attrs(block, space, o, budget, url, shape), "grace_period": scheduler.grace_period}
            )
            store.set_metric_names([objective.name for objective in block.experiment.objectives])
        elif not o.join:
            store.set_attrs(
                {"budget": budget.to_dict(), "shape": shape.to_dict(), "gpus_per_trial": shape.gpus_per_trial}
            )
            if changes:
                history = [*attrs.get("changes", []), {"when": dt.datetime.now(dt.UTC).isoformat(), "what": changes}]
                store.set_attrs(
                    {
                        "block_hash": block.content_hash,
                        "space": space.to_dict(),
                        "block": block.public_dict(),
                        "changes": history,
                    }
                )
    except BaseException:
        lease.release()
        raise
    ledger = Ledger.from_dict(attrs["spent"], budget) if resumed and "spent" in attrs else Ledger(budget)

    session = StudySession(
        store,
        block,
        space,
        ledger,
        trials_dir,
        shape=shape,
        rungs=scheduler.rung_rule(block.experiment),
    )
    session.gate.keeps_wall_clock = lease.keeps_wall_clock
    session.lease_lost = lambda: lease.lost
    plan = RayPlan(
        study=name,
        trials_dir=trials_dir,
        scheduler=scheduler,
        gpus_per_trial=shape.gpus_per_trial,
        nodes_per_trial=shape.nodes_per_trial,
        max_concurrent=shape.max_concurrent
        or (FOLLOW_CLUSTER_LIMIT if o.address else default_concurrency(shape, machine)),
        follow_cluster=bool(o.address) and shape.max_concurrent is None,
        mode="min" if block.experiment.objectives[0].direction == "minimize" else "max",
        address=o.address,
        verbose=o.verbose,
        timeout_s=shape.trial_timeout_s,
    )
    targets = {n: p.target for n, p in space.params.items()}
    return Prepared(session, plan, targets, findings, budget, resumed, lease, recovered, lease.took_over)


def _trial_numbers(url: str, name: str) -> list[int]:
    return [t.number for t in StudyStore.open(url, name, create=False).trials()]
