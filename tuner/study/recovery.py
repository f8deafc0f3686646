"""Recovery when a study is resumed: orphaned trials, retries, checkpoints to continue from.

A trial left RUNNING belongs to a driver that died (the lease guarantees no live driver holds the
study now). It becomes FAIL `interrupted`, any of its processes still on this host are stopped,
and its parameters are enqueued again, once: when the block keeps optimizer state and the trial
saved a checkpoint, the retry continues from it.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.config.block import Block
from tuner.study.lease import STALE_S
from tuner.study.store import StudyStore
from tuner.trial.launch import stop_recorded
from tuner.trial.workspace import TrialPaths

log = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Recovered:
    interrupted: list[int]  # trials found RUNNING and marked FAIL interrupted now
    requeued: dict[int, str | None]  # trial number -> checkpoint its retry continues from


def keeps_optimizer_state(block: Block) -> bool:
    return block.training.save_only_model is not True


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` folder that holds a complete training state."""
    found = []
    for child in output_dir.glob("checkpoint-*"):
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def _paths(trial: Any) -> TrialPaths | None:
    trial_dir = trial.user_attrs.get("trial_dir")
    return TrialPaths(Path(trial_dir)) if trial_dir else None


def recover(store: StudyStore, block: Block, *, live_drivers: set[str] | None = None) -> Recovered:
    """Recover the study's orphans. `live_drivers` ("host:pid" of the drivers alive now), for a
    driver joining a study: only trials of drivers not among them are orphans (a dead peer's)."""
    with store.exclusive():  # two joining drivers must not both requeue one trial
        return _recover(store, block, live_drivers)


def _orphaned(trial: Any, live_drivers: set[str] | None) -> bool:
    if trial.state.name != "RUNNING":
        return False
    if live_drivers is None:
        return True
    driver = trial.user_attrs.get("driver")
    if driver is None:  # asked a moment ago, its driver has not written its attributes yet
        started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
        return time.time() - started > STALE_S
    return driver not in live_drivers


def _recover(store: StudyStore, block: Block, live_drivers: set[str] | None) -> Recovered:
    interrupted: list[int] = []
    for trial in store.trials():
        if not _orphaned(trial, live_drivers):
            continue
        paths = _paths(trial)
        wall = None
        if paths is not None:
            stop_recorded(paths.pid)  # no orphan keeps GPU memory, whatever killed the driver
            paths.pid.unlink(missing_ok=True)
            if trial.datetime_start is not None and paths.train_log.exists():
                wall = max(0.0, paths.train_log.stat().st_mtime - trial.datetime_start.timestamp())
        attrs: dict[str, Any] = {
            "exit_class": "interrupted",
            "reason": "its driver stopped (killed or interrupted) while it ran",
        }
        if wall is not None:
            attrs["wall_s"] = round(wall, 3)
        store.tell(trial.number, "FAIL", attrs=attrs)
        interrupted.append(trial.number)
        log.warning("trial %d was left running by a dead driver: recorded FAIL interrupted", trial.number)

    requeued: dict[int, str | None] = {}
    trials = store.trials()
    # Finished trials are immutable in Optuna: "requeued" is known from the retry that names it.
    already = {int(t.user_attrs["retry_of"]) for t in trials if "retry_of" in t.user_attrs}
    for trial in trials:
        if trial.user_attrs.get("exit_class") != "interrupted" or trial.number in already:
            continue
        paths = _paths(trial)
        checkpoint = latest_checkpoint(paths.output_dir) if paths and keeps_optimizer_state(block) else None
        retry_attrs: dict[str, Any] = {"retry_of": trial.number}
        if checkpoint is not None:
            retry_attrs["resume_from"] = str(checkpoint)
        store.enqueue(dict(trial.params), retry_attrs)
        requeued[trial.number] = str(checkpoint) if checkpoint else None
    return Recovered(interrupted, requeued)
