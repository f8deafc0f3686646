"""Ray Tune wiring: the only module that imports Ray Tune.

A `Tuner` whose searcher asks the Optuna study (through `StudySession`), whose trainable runs
`trial.run_trial` in a Ray worker, whose scheduler carries out the study's own pruning decisions
(successive halving on the intermediate evals stored in the study), and whose stopper ends the
study when its time or GPU-hour budget runs out. Ray's own console output is
off unless `verbose`; the live view (`live.py`) shows progress instead.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from tuner.config.block import Block
from tuner.errors import StorageError
from tuner.files import write_json_atomic
from tuner.orchestrate.cluster import ClusterCapacity, init_ray
from tuner.orchestrate.multinode import RayOtherNodes, placement_bundles, stop_other_nodes
from tuner.orchestrate.plan import OBJECTIVE, PLANNED, PROGRESS, RayPlan
from tuner.study.session import StudySession
from tuner.trial.launch import processes_per_trial
from tuner.trial.prepare import TrialRequest, run_name
from tuner.trial.runner import run_trial
from tuner.trial.workspace import TrialPaths

log = logging.getLogger(__name__)


def _trainable(
    config: dict[str, Any],
    block: Block,
    targets: dict[str, str],
    nproc: int,
    study: str,
    metric: str | None,
    timeout_s: float | None,
    nodes: int = 1,
    progress_points: tuple[int, ...] = (),
) -> None:
    """Runs in a Ray worker: one trial, reporting each intermediate eval, then a final result. A
    multi-node trial runs node 0's part here and the others through actors in its placement group."""
    number, gbs = config["number"], config["global_batch_size"]
    paths = TrialPaths(Path(config["trial_dir"]))
    gpu_ids = tuple(str(g) for g in ray.get_gpu_ids())
    here = {
        "rank": 0,
        "ray_node_id": ray.get_runtime_context().get_node_id(),
        "host": socket.gethostname(),
        "gpu_ids": list(gpu_ids),
    }
    others = RayOtherNodes(nodes, len(gpu_ids)) if nodes > 1 else None
    # Where Ray placed the trial; the driver records it in the study when the trial ends.
    write_json_atomic(paths.placement, {**here, "nodes": [here, *(others.placements() if others else [])]})
    request = TrialRequest(
        block,
        config["params"],
        paths,
        targets=targets,
        nproc=nproc,
        gpu_ids=gpu_ids,
        run_name=run_name(study, number),
        group=study,
        timeout_s=timeout_s,
        resume_from=config.get("resume_from"),
        other_nodes=others,
        master_addr=ray.util.get_node_ip_address() if others else "127.0.0.1",
        progress_points=progress_points,
    )

    def on_record(record: Any) -> None:
        if metric is None:  # a multi-objective study that stops no trial early: nothing to compare
            return
        value = (record.eval_metrics or {}).get(metric)
        if value is not None and math.isfinite(value):
            tune.report(
                {
                    OBJECTIVE: value,
                    PROGRESS: record.step * gbs,
                    PLANNED: record.total_steps * gbs,
                    "step": record.step,
                    "total_steps": record.total_steps,
                }
            )

    result = run_trial(request, on_record=on_record)
    final = {
        "final": True,
        "exit_class": result.exit_class,
        "reason": result.reason,
        # One objective: its number; several: one number per objective, in the block's order.
        "value": result.value
        if len(block.experiment.objectives) == 1 or not result.ok
        else list(result.values.values()),
        PROGRESS: result.steps * gbs,
        "wall_s": result.wall_s,
    }
    if result.value is not None:
        final[OBJECTIVE] = result.value
    tune.report(final)


class _Unpicklable:
    """Ray pickles the Tuner's state (searcher, stopper, callbacks) for experiment restore; ours
    hold the live session, which stays in this process. Restore goes through `tune resume`."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_live")}


def _recording(method: Any) -> Any:
    """A study that cannot record an outcome must stop, not lose it: Ray only logs exceptions
    raised in a searcher, so keep the StorageError; the stopper ends the study and `run` raises it."""

    @functools.wraps(method)
    def wrapper(self: StudySearcher, *args: Any, **kwargs: Any) -> Any:
        if self._live_session.fatal is not None:
            return Searcher.FINISHED if method.__name__ == "suggest" else None
        try:
            return method(self, *args, **kwargs)
        except StorageError as e:
            self._live_session.fatal = e
            return Searcher.FINISHED if method.__name__ == "suggest" else None

    return wrapper


class StudySearcher(_Unpicklable, Searcher):
    """Ray searcher bound to the Optuna study: asks it, tells it every outcome."""

    def __init__(self, session: StudySession, mode: str, capacity: Callable[[], int] | None = None) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        self._live_session = session
        self._live_capacity = capacity  # trials the cluster holds now (None: Ray's fixed limit only)
        self.numbers: dict[str, int] = {}

    @_recording
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        session = self._live_session
        if self._live_capacity is not None and len(session.running) >= self._live_capacity():
            return None  # no room on the cluster now: ask again later, without opening a trial
        ticket = session.next_trial()
        if ticket is None:
            return Searcher.FINISHED if not session.running else None
        self.numbers[trial_id] = ticket.number
        return {
            "number": ticket.number,
            "params": ticket.params,
            "trial_dir": str(ticket.paths.root),
            "global_batch_size": ticket.global_batch_size,
            "resume_from": ticket.resume_from,
        }

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the Optuna study is the searcher's state."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: see save."""

    @_recording
    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        number = self.numbers.pop(trial_id, None)
        if number is None:
            return
        final = result if result and result.get("final") else None
        if result and final is None and OBJECTIVE in result and PROGRESS in result:
            # The result that made the scheduler stop a trial goes only here, not to on_trial_result.
            self._live_session.on_eval(
                number, float(result[OBJECTIVE]), int(result[PROGRESS]), planned=result.get(PLANNED)
            )
        self._live_session.on_complete(number, final, error="the trial's Ray worker failed" if error else None)


class BudgetStopper(_Unpicklable, tune.Stopper):
    def __init__(self, session: StudySession) -> None:
        self._live_session = session

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        session = self._live_session
        return (
            not session.check_lease() or session.fatal is not None or session.interrupted or session.budget_exhausted()
        )


class ViewCallback(_Unpicklable, tune.Callback):
    def __init__(self, on_step: Any) -> None:
        self._live_on_step = on_step

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._live_on_step()


class StudyScheduler(_Unpicklable, FIFOScheduler):
    """Ray carries out the study's early-stopping decisions; it does not make them. Each
    intermediate eval is recorded in the study, and the study's pruner (successive halving on the
    stored values, or none) says whether the trial goes on. The rungs live in the study, so a
    resumed driver and joined drivers prune against the same history."""

    def __init__(self, session: StudySession) -> None:
        super().__init__()
        self._live_session = session

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        session = self._live_session
        number = trial.config.get("number")
        if number is None or OBJECTIVE not in result or result.get("final") or session.fatal is not None:
            return TrialScheduler.CONTINUE
        try:
            session.on_eval(number, float(result[OBJECTIVE]), int(result[PROGRESS]), planned=result.get(PLANNED))
            return TrialScheduler.STOP if session.should_prune(number) else TrialScheduler.CONTINUE
        except StorageError as e:  # Ray only logs a scheduler's exceptions: keep it, the stopper ends the study
            session.fatal = e
            return TrialScheduler.CONTINUE


def run(
    session: StudySession,
    block: Block,
    targets: dict[str, str],
    plan: RayPlan,
    on_step: Any,
    trainable: Any = None,
) -> None:
    """Run trials until the budget is spent or the space is exhausted. `trainable` replaces the
    LLaMA-Factory trial with a Python function of the trial config (bench/ harness)."""
    # Intermediate results carry the metric, progress-only and failed final results may not.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Ray's newer console output ignores verbose=0; the classic reporter is silent at 0.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1" if plan.verbose else "0")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(plan.max_concurrent))
    init_ray(plan)
    if trainable is None:
        trainable = tune.with_parameters(
            _trainable,
            block=block,
            targets=targets,
            nproc=processes_per_trial(plan.gpus_per_trial // plan.nodes_per_trial),
            nodes=plan.nodes_per_trial,
            study=plan.study,
            metric=block.experiment.progress_metric,
            timeout_s=plan.timeout_s,
            progress_points=plan.scheduler.progress_points(),
        )
    resources: Any = {"cpu": 1, "gpu": plan.gpus_per_trial}
    if plan.nodes_per_trial > 1:  # one bundle per node, never two on one node
        bundles = placement_bundles(plan.nodes_per_trial, plan.gpus_per_trial // plan.nodes_per_trial)
        resources = tune.PlacementGroupFactory(bundles, strategy="STRICT_SPREAD")
        session.stop_elsewhere = stop_other_nodes
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=StudySearcher(
                session, plan.mode, ClusterCapacity(plan.gpus_per_trial) if plan.follow_cluster else None
            ),
            scheduler=StudyScheduler(session),
            num_samples=-1,
            max_concurrent_trials=plan.max_concurrent,
            reuse_actors=plan.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=plan.study,
            storage_path=str(plan.trials_dir / ".ray"),
            stop=BudgetStopper(session),
            callbacks=[ViewCallback(on_step)],
            verbose=2 if plan.verbose else 0,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    tuner.fit()
    if session.fatal is not None:
        raise session.fatal
