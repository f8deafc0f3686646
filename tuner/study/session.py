"""One driver session of a study: which trial runs next, and how each trial's end is recorded.

No Ray here: `orchestrate/driver.py` calls these methods from Ray Tune's searcher, stopper and
callbacks, and the unit tests call them directly. The Optuna study is the source of truth; this
object only keeps what the running session needs (trials in flight, the budget gate). The rules it
applies live beside it: outcome.py (states and exit classes), gate.py (budget), retry.py (retries
and OOM), disk.py (weights of trials no longer needed).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.config.block import Block
from tuner.config.memory_check import MemoryCheck, refit_from_trials
from tuner.config.space import SearchSpace
from tuner.errors import TunerError
from tuner.study.budget import PLANNED_SAMPLES, SAMPLES_SEEN, Ledger
from tuner.study.disk import free_weights
from tuner.study.gate import BudgetGate
from tuner.study.outcome import Outcome, exit_class_of, outcome_attrs, read_json, state_of
from tuner.study.retry import RetryPolicy
from tuner.study.rungs import RungRule
from tuner.study.shape import RunShape
from tuner.study.store import StudyStore
from tuner.trial.launch import stop_recorded
from tuner.trial.peak_memory import peak_attrs
from tuner.trial.prepare import run_name, wandb_run_id
from tuner.trial.workspace import TrialPaths, create_fresh, trial_paths

log = logging.getLogger(__name__)

MAX_INFEASIBLE_IN_A_ROW = 50


@dataclass(frozen=True)
class Ticket:
    """A trial the study decided to run."""

    number: int
    params: dict[str, Any]
    paths: TrialPaths
    global_batch_size: int
    resume_from: str | None = None  # a checkpoint of an interrupted trial to continue from


class StudySession:
    def __init__(
        self,
        store: StudyStore,
        block: Block,
        space: SearchSpace,
        ledger: Ledger,
        trials_dir: Path,
        *,
        shape: RunShape | None = None,
        rungs: RungRule | None = None,
        clock: Callable[[], float] = time.time,  # wall time: spend is compared with trials' start times
    ) -> None:
        """`rungs`: early stopping of a multi-objective study on its early_stopping_metric (Optuna's
        pruner, the study's, does it for a single objective)."""
        self.store, self.block, self.space = store, block, space
        self.trials_dir = trials_dir
        self.shape = shape or RunShape()
        # What GPU-hours count: GPUs, or on the CPU the trial's processes.
        self.gate = BudgetGate(store, ledger, self.shape.processes, clock)
        self._starts: dict[int, float] = {}  # trial -> when it started running (wall time)
        self.gate.started_at = self._started_at
        self.retry = RetryPolicy(store, self.shape.retries)
        self.interrupted = False  # Ctrl-C / SIGTERM: start nothing more
        self._clock = clock
        self.outcomes: list[Outcome] = []
        self._planned: set[int] = set()  # trials whose planned samples are recorded (the budget's unit)
        self.rungs = rungs
        self._latest: dict[int, tuple[float, int]] = {}  # trial -> its latest eval (value, samples), for `rungs`
        self._weightless: set[int] = set()  # finished trials whose weights are gone (see prune_weights)
        self.fatal: TunerError | None = None  # a storage failure: the study must stop
        self.space_exhausted = False  # every point of a finite space (the grid) has been started
        self.lease_lost: Callable[[], str | None] = lambda: None  # set by whoever holds the study's lease
        # Ends a trial's processes on its other nodes (set by the driver for multi-node trials).
        self.stop_elsewhere: Callable[[Path, dict[str, Any]], None] | None = None
        self._distributions = space.distributions()
        gib = self.shape.gpu_memory_gib
        limit = int(gib * 2**30) if gib and self.shape.gpus_per_trial else None  # no check on the CPU
        # Configurations predicted not to fit are not run; `memory.unavailable` says why nothing is checked.
        self.memory = MemoryCheck(block, limit, self.shape.gpus_per_node, self.shape.nodes_per_trial)

    @property
    def running(self) -> dict[int, float]:
        """Trials this session started and has not recorded yet: number -> start time."""
        return self.gate.running

    @property
    def ledger(self) -> Ledger:
        return self.gate.ledger

    def budget_exhausted(self) -> bool:
        return self.gate.exhausted()

    def check_lease(self) -> bool:
        """False once this driver has lost the study (taken over, or its heartbeat failed): it then
        starts nothing more, and its running trials are stopped and recorded as interrupted."""
        lost = self.lease_lost()
        if lost and self.fatal is None:
            self.fatal = TunerError(f"{lost}. This driver stopped its trials; the study goes on under its new driver")
            self.interrupted = True
        return lost is None

    def save_spent(self) -> None:
        self.gate.save()

    # -- trials ----------------------------------------------------------------------------
    def next_trial(self) -> Ticket | None:
        """The next trial to run, or None when the budget cannot pay for another one."""
        if self.interrupted or not self.check_lease():
            return None
        with self.store.exclusive():
            return self._next_trial_locked()

    def _next_trial_locked(self) -> Ticket | None:
        if not self.gate.can_start():
            return None
        if self.store.sampler_exhausted():
            self.space_exhausted = True
            return None
        margin = refit_from_trials([t.user_attrs for t in self.store.trials()]) if self.memory.shape else None
        for _ in range(MAX_INFEASIBLE_IN_A_ROW):
            number, params, attrs = self.store.ask_with_attrs(self._distributions)
            violation, constraint = self.space.violation(params, self.block, self.gate.processes), "global_batch_size"
            verdict = self.memory.verdict(params, margin) if violation is None else None
            if verdict is not None and not verdict.fits:
                violation, constraint = verdict.reason(), "memory"
            if violation is None:
                ticket = self._start(number, params, attrs.get("resume_from"))
                if verdict is not None:
                    self.store.set_trial_attrs(number, verdict.attrs())
                return ticket
            # Not run: costs nothing, and the sampler learns the region is infeasible.
            self.store.tell(
                number,
                "PRUNED",
                attrs={"exit_class": "infeasible", "reason": violation, **(verdict.attrs() if verdict else {})},
                infeasible=constraint,
            )
            log.info("trial %d not run: %s", number, violation)
        raise TunerError(
            f"the last {MAX_INFEASIBLE_IN_A_ROW} sampled trials all broke the space's constraints; "
            "widen evolving.global_batch_size or the batch-size choices, or, where they did not fit the "
            "GPU's memory (`tune check` shows the estimate), narrow per_device_train_batch_size or lower "
            "per_device_eval_batch_size"
        )

    def _start(self, number: int, params: dict[str, Any], resume_from: str | None = None) -> Ticket:
        paths = create_fresh(trial_paths(self.trials_dir, self.store.name, number))
        gbs = self.space.global_batch_size(params, self.block, self.gate.processes)
        attrs: dict[str, Any] = {
            "trial_dir": str(paths.root),
            "output_dir": str(paths.output_dir),
            "global_batch_size": gbs,
            "gpus": self.shape.gpus_per_trial,
            "nodes": self.shape.nodes_per_trial,
            "processes": self.gate.processes,
            "driver": f"{socket.gethostname()}:{os.getpid()}",
        }
        experiment = self.block.experiment
        if experiment.wandb_mode != "disabled":  # where this trial's wandb run lives
            attrs.update(
                {
                    "wandb_mode": experiment.wandb_mode,
                    "wandb_project": experiment.wandb_project,
                    "wandb_group": self.store.name,
                    "wandb_dir": str(paths.root / "wandb"),
                    "wandb_run_id": wandb_run_id(run_name(self.store.name, number)),
                }
            )
        self.store.set_trial_attrs(number, attrs)
        self.running[number] = self._clock()
        return Ticket(number, params, paths, gbs, resume_from)

    def on_eval(self, number: int, value: float, samples: int, planned: int | None = None) -> None:
        """An intermediate value at `samples` seen. `planned`: the samples the trial sees if it runs
        to its end, recorded once: a trial stopped early uses up only that fraction of a trial budget."""
        if planned and number not in self._planned:
            self.store.set_trial_attrs(number, {PLANNED_SAMPLES: int(planned)})
            self._planned.add(number)
        if not math.isfinite(value):
            return
        if self.store.multi_objective:  # Optuna keeps no intermediate values there: see rungs.py
            self._latest[number] = (value, samples)
            self.store.set_trial_attrs(number, {SAMPLES_SEEN: int(samples)})  # what a stopped trial used
        else:
            self.store.report(number, value, samples)

    def should_prune(self, number: int) -> bool:
        """The study's early-stopping decision for a running trial, after its latest eval."""
        if not self.store.multi_objective:
            return self.store.should_prune(number)
        latest = self._latest.pop(number, None)
        return self.rungs is not None and latest is not None and self.rungs.should_stop(self.store, number, *latest)

    def on_complete(self, number: int, final: dict[str, Any] | None, error: str | None = None) -> Outcome:
        """Record a trial's end. `final`: the trainable's last report if it ran to its own end;
        None when Ray stopped it (scheduler or budget) or it raised (`error`)."""
        started = self.running.pop(number, self._clock())
        wall_s = self._clock() - started
        paths = trial_paths(self.trials_dir, self.store.name, number)
        if final is None:
            # Stopped from outside (scheduler, budget, a dead worker): its processes may still be
            # winding down; the record is only written once they are gone.
            stopped = self._stop(paths)
            log.info("trial %d stopped from outside; processes %s", number, "ended" if stopped else "already gone")
        result = {**read_json(paths.result), **(final or {})}
        exit_class, reason = exit_class_of(
            final, error, stopped_for_budget=self.gate.stopped_for_budget, interrupted=self.interrupted
        )
        value = final.get("value") if final and exit_class == "ok" else None
        state = state_of(exit_class, value)
        wall = float(result.get("wall_s") or wall_s)
        attrs = outcome_attrs(exit_class, reason, state, wall, self.gate.processes, result, read_json(paths.placement))
        attrs.update(peak_attrs(paths.output_dir))  # measured peak GPU memory, beside its estimate
        self.store.tell(number, state, value, attrs)
        self.gate.finished(number, wall, counts=exit_class != "interrupted")
        self.retry.after(number, exit_class)
        free_weights(self.store, self.shape.keep_best, self._weightless)
        outcome = Outcome(number, state, exit_class, value, reason, wall)
        self.outcomes.append(outcome)
        return outcome

    def _started_at(self, number: int) -> float | None:
        """When trial `number` started running (its worker wrote placement.json): queue time before
        that is no GPU time. Asked at every step of Ray's loop: a start once seen is remembered."""
        if number not in self._starts:
            try:
                self._starts[number] = trial_paths(self.trials_dir, self.store.name, number).placement.stat().st_mtime
            except OSError:
                return None
        return self._starts[number]

    def _stop(self, paths: TrialPaths) -> bool:
        """End what is left of a trial's processes, on this host and on its other nodes."""
        if self.stop_elsewhere is not None:
            self.stop_elsewhere(paths.root, read_json(paths.placement))
        return stop_recorded(paths.pid)

    def finish_running(self, *, interrupted: bool = False) -> list[Outcome]:
        """Record trials the driver started but got no completion for (Ray stops the running trials
        of a study whose budget ran out without reporting them; Ctrl-C stops everything)."""
        outcomes = []
        for number in list(self.running):
            self._stop(trial_paths(self.trials_dir, self.store.name, number))
            if interrupted:
                outcome = self.on_complete(
                    number, {"final": True, "exit_class": "interrupted", "reason": "the study's driver was interrupted"}
                )
            else:
                outcome = self.on_complete(number, None)
            outcomes.append(outcome)
        return outcomes
