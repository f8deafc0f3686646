"""One driver session of a study: what runs next, and how each outcome is recorded.

No Ray here: `driver.py` calls these methods from Ray Tune's searcher, stopper and callbacks, and
the unit tests call them directly. The Optuna study is the source of truth; this object only
keeps what the running session needs (trials in flight, the budget ledger).

State rules (DESIGN.md 4): a finished trial with its metric is COMPLETE; one stopped early by the
scheduler, the divergence guard or the budget is PRUNED (never COMPLETE with a partial value);
a crash, OOM, timeout or kill is FAIL with its exit class.
"""

from __future__ import annotations

import json
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
from tuner.config.space import SearchSpace
from tuner.errors import TunerError
from tuner.study.budget import Ledger
from tuner.study.disk import prune_weights
from tuner.study.store import StudyStore
from tuner.trial.launch import stop_recorded
from tuner.trial.runner import run_name, wandb_run_id
from tuner.trial.workspace import TrialPaths, create_fresh, trial_paths

log = logging.getLogger(__name__)

PRUNED_CLASSES = frozenset({"pruned", "diverged", "budget"})
MAX_INFEASIBLE_IN_A_ROW = 50


@dataclass(frozen=True)
class Ticket:
    """A trial the study decided to run."""

    number: int
    params: dict[str, Any]
    paths: TrialPaths
    global_batch_size: int
    resume_from: str | None = None  # a checkpoint of an interrupted trial to continue from


@dataclass
class Outcome:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    exit_class: str
    value: float | None
    reason: str
    wall_s: float


class StudySession:
    def __init__(
        self,
        store: StudyStore,
        block: Block,
        space: SearchSpace,
        ledger: Ledger,
        trials_dir: Path,
        *,
        units_per_trial: int = 1,
        gpus_per_trial: int = 0,
        retries: int = 0,
        keep_best: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.block, self.space, self.ledger = store, block, space, ledger
        self.trials_dir = trials_dir
        self.units = max(1, units_per_trial)  # GPUs, or processes on CPU: what GPU-hours count
        self.gpus = gpus_per_trial
        self.retries = retries  # automatic re-runs of a crashed or hung trial (never of an OOM)
        self.interrupted = False  # Ctrl-C / SIGTERM: start nothing more
        self.keep_best = keep_best  # trials whose weights stay on disk (plus pinned ones)
        self._clock = clock
        self._started = clock()
        self.running: dict[int, float] = {}  # number -> start time
        self.outcomes: list[Outcome] = []
        self._weightless: set[int] = set()  # finished trials whose weights are gone (see prune_weights)
        self.stopped_for_budget = False
        self.fatal: TunerError | None = None  # a storage failure: the study must stop
        self._distributions = space.distributions()

    # -- budget ----------------------------------------------------------------------------
    @property
    def session_s(self) -> float:
        return self._clock() - self._started

    def _running_costs(self) -> dict[Any, tuple[float, int]]:
        now = self._clock()
        return {n: (now - start, self.units) for n, start in self.running.items()}

    def can_start(self) -> bool:
        if self.ledger.budget.kind == "trials":  # counted in the study: several drivers may share it
            return self.store.count_trials() + 1 <= self.ledger.budget.amount
        return self.ledger.can_start(session_s=self.session_s, running=self._running_costs(), units=self.units)

    def budget_exhausted(self) -> bool:
        exhausted = self.ledger.exhausted(session_s=self.session_s, running=self._running_costs())
        self.stopped_for_budget = self.stopped_for_budget or exhausted
        return exhausted

    def save_spent(self) -> None:
        self.ledger.finished_trials = self.store.count_trials(finished_only=True)
        self.store.set_attrs({"spent": self.ledger.to_dict(self.session_s)})

    # -- trials ----------------------------------------------------------------------------
    def next_trial(self) -> Ticket | None:
        """The next trial to run, or None when the budget cannot pay for another one."""
        if self.interrupted:
            return None
        with self.store.exclusive():
            return self._next_trial_locked()

    def _next_trial_locked(self) -> Ticket | None:
        if not self.can_start():
            return None
        for _ in range(MAX_INFEASIBLE_IN_A_ROW):
            number, params, attrs = self.store.ask_with_attrs(self._distributions)
            violation = self.space.violation(params, self.block, max(1, self.gpus))
            if violation is None:
                return self._start(number, params, attrs.get("resume_from"))
            # Not run: costs nothing, and the sampler learns the region is infeasible.
            self.store.tell(number, "PRUNED", attrs={"exit_class": "infeasible", "reason": violation},
                            infeasible="global_batch_size")
            log.info("trial %d not run: %s", number, violation)
        raise TunerError(
            f"the last {MAX_INFEASIBLE_IN_A_ROW} sampled trials all broke the space's constraints; "
            "widen evolving.global_batch_size or the batch-size choices"
        )

    def _start(self, number: int, params: dict[str, Any], resume_from: str | None = None) -> Ticket:
        paths = create_fresh(trial_paths(self.trials_dir, self.store.name, number))
        gbs = self.space.global_batch_size(params, self.block, max(1, self.gpus))
        attrs: dict[str, Any] = {
            "trial_dir": str(paths.root), "output_dir": str(paths.output_dir),
            "global_batch_size": gbs, "gpus": self.gpus, "processes": self.units,
            "driver": f"{socket.gethostname()}:{os.getpid()}",
        }  # fmt: skip
        experiment = self.block.experiment
        if experiment.wandb_mode != "disabled":  # where this trial's wandb run lives
            attrs.update({"wandb_mode": experiment.wandb_mode, "wandb_project": experiment.wandb_project,
                          "wandb_group": self.store.name, "wandb_dir": str(paths.root / "wandb"),
                          "wandb_run_id": wandb_run_id(run_name(self.store.name, number))})  # fmt: skip
        self.store.set_trial_attrs(number, attrs)
        self.running[number] = self._clock()
        return Ticket(number, params, paths, gbs, resume_from)

    def on_eval(self, number: int, value: float, samples: int) -> None:
        if math.isfinite(value):
            self.store.report(number, value, samples)

    def on_complete(self, number: int, final: dict[str, Any] | None, error: str | None = None) -> Outcome:
        """Record a trial's end. `final`: the trainable's last report if it ran to its own end;
        None when Ray stopped it (scheduler or budget) or it raised (`error`)."""
        started = self.running.pop(number, self._clock())
        wall_s = self._clock() - started
        paths = trial_paths(self.trials_dir, self.store.name, number)
        if final is None:
            # Stopped from outside (scheduler, budget, a dead worker): its processes may still be
            # winding down; the record is only written once they are gone.
            stopped = stop_recorded(paths.pid)
            log.info("trial %d stopped from outside; processes %s", number, "ended" if stopped else "already gone")
        result = {**_read_result(paths), **(final or {})}
        if error is not None:
            exit_class, reason = "crashed", error.strip().splitlines()[-1][:500] if error.strip() else "error"
        elif final is None:
            exit_class = "budget" if self.stopped_for_budget else "pruned"
            reason = ("stopped: the study's budget ran out" if exit_class == "budget"
                      else "stopped early by the scheduler (worse than its peers at the same progress)")  # fmt: skip
        else:
            exit_class, reason = final.get("exit_class", "crashed"), final.get("reason", "")
        if self.interrupted and exit_class != "ok":
            # Ctrl-C reaches Ray's workers too: whatever they report, the driver stopped this trial.
            exit_class, reason = "interrupted", "the study's driver was interrupted (Ctrl-C or SIGTERM)"
        value = final.get("value") if final and exit_class == "ok" else None
        state = "COMPLETE" if exit_class == "ok" and value is not None else (
            "PRUNED" if exit_class in PRUNED_CLASSES else "FAIL")  # fmt: skip
        wall = float(result.get("wall_s") or wall_s)
        attrs: dict[str, Any] = {"exit_class": exit_class, "reason": reason, "wall_s": round(wall, 3),
                                 "gpu_s": round(wall * self.units, 3),
                                 "gpu_hours": round(wall * self.units / 3600, 5)}  # fmt: skip
        for key in ("startup_s", "steps", "total_steps", "n_train", "master_port"):
            if result.get(key) is not None:
                attrs[key] = result[key]
        placement = _read_json(paths.placement)
        if placement:
            attrs.update({"ray_node_id": placement.get("ray_node_id"), "host": placement.get("host"),
                          "cuda_visible_devices": ",".join(placement.get("gpu_ids", []))})  # fmt: skip
        if state == "FAIL" and result.get("log_tail"):
            attrs["log_tail"] = "\n".join(result["log_tail"][-20:])[-4000:]
        self.ledger.record(wall, self.units, counts=exit_class != "interrupted")
        self.store.tell(number, state, value, attrs)
        if exit_class == "oom":
            self._mark_infeasible(number)
        elif exit_class in ("crashed", "timeout"):
            self._maybe_retry(number)
        self.save_spent()
        self.free_disk()
        outcome = Outcome(number, state, exit_class, value, reason, wall)
        self.outcomes.append(outcome)
        return outcome

    def finish_running(self, *, interrupted: bool = False) -> list[Outcome]:
        """Record trials the driver started but got no completion for (Ray stops the running trials
        of a study whose budget ran out without reporting them; Ctrl-C stops everything)."""
        outcomes = []
        for number in list(self.running):
            stop_recorded(trial_paths(self.trials_dir, self.store.name, number).pid)
            if interrupted:
                outcome = self.on_complete(number, {"final": True, "exit_class": "interrupted",
                                                    "reason": "the study's driver was interrupted"})  # fmt: skip
            else:
                outcome = self.on_complete(number, None)
            outcomes.append(outcome)
        return outcomes

    def free_disk(self) -> None:
        trials = self.store.trials()
        freed = prune_weights(trials, self.keep_best, self.block.experiment.direction == "minimize", self._weightless)
        if freed:  # finished trials are immutable in Optuna: the tally lives on the study
            tally = {str(k): v for k, v in (self.store.attrs().get("weights_freed_bytes") or {}).items()}
            for number, size in freed.items():
                tally[str(number)] = tally.get(str(number), 0) + size
            self.store.set_attrs({"weights_freed_bytes": tally})

    def _maybe_retry(self, number: int) -> None:
        trial = next(t for t in self.store.trials() if t.number == number)
        first = int(trial.user_attrs.get("retry_of", number))
        attempt = int(trial.user_attrs.get("attempt", 0)) + 1
        if attempt <= self.retries:
            self.store.enqueue(dict(trial.params), {"retry_of": first, "attempt": attempt})
            log.info("trial %d %s: retry %d of %d enqueued", number, trial.user_attrs.get("exit_class"),
                     attempt, self.retries)  # fmt: skip

    def _mark_infeasible(self, number: int) -> None:
        """Feed an OOM back to the sampler: Optuna's samplers read constraints only from COMPLETE or
        PRUNED trials, so the FAIL record stays the truth and a zero-cost PRUNED marker with the same
        parameters carries the infeasibility (user attr marker_for names the trial)."""
        trial = next(t for t in self.store.trials() if t.number == number)
        self.store.add_infeasible(trial.params, trial.distributions,
                                  {"exit_class": "infeasible", "reason": f"trial {number} ran out of memory",
                                   "marker_for": number}, constraint="memory")  # fmt: skip


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_result(paths: TrialPaths) -> dict[str, Any]:
    return _read_json(paths.result)
