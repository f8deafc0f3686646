"""Budgets: parse `--budget` and account what a study has spent.

Three kinds: a number of trials (`20`), wall-clock time (`90m`, `8h`, `1h30m`, `45s`), or
GPU-hours (`16gpu-h`; on CPU each trial's process-hours are counted instead). What was spent is
stored in the study, so a resumed study continues the same budget.

A trial budget counts full-trial equivalents of training (`trial_share`): a trial stopped early by
the scheduler uses up only the fraction of its training it ran, so early stopping buys further trials
instead of throwing away final values. A running trial is reserved in full; a trial starts only
while a whole trial's worth is left.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

from tuner.errors import ConfigError

Kind = Literal["trials", "wall", "gpu"]
_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$")
_GPU_HOURS = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*gpu-?h(?:ours?)?$")
PLANNED_SAMPLES = "planned_samples"  # trial attribute: samples it sees if it runs to its end
# Trial attribute: samples seen at its latest eval, where Optuna keeps no intermediate values (a
# multi-objective study); a single-objective trial's progress is its last intermediate value's step.
SAMPLES_SEEN = "samples_seen"
_FIX = "write a trial count (20), a duration (90m, 8h, 1h30m) or GPU-hours (16gpu-h)"


@dataclass(frozen=True)
class Budget:
    kind: Kind
    amount: float  # trials, seconds, or GPU-seconds

    def describe(self) -> str:
        if self.kind == "trials":
            return f"{int(self.amount)} trials"
        if self.kind == "wall":
            return _duration(self.amount)
        return f"{self.amount / 3600:g} GPU-hours"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "amount": self.amount}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budget:
        return cls(data["kind"], float(data["amount"]))

    def extended(self, more: Budget) -> Budget:
        if more.kind != self.kind:
            raise ConfigError(
                f"a {self.kind} budget can only be extended by the same kind",
                key="--budget",
                value=more.describe(),
                fix=f"give more {self.kind}, e.g. {_example(self.kind)}",
            )
        return Budget(self.kind, self.amount + more.amount)


def _example(kind: Kind) -> str:
    return {"trials": "10", "wall": "2h", "gpu": "8gpu-h"}[kind]


def _duration(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def parse_budget(text: str) -> Budget:
    raw = text.strip().lower().replace(" ", "")
    if raw.isdigit():
        if int(raw) < 1:
            raise ConfigError("a trial budget must be at least 1", key="--budget", value=text, fix=_FIX)
        return Budget("trials", float(int(raw)))
    gpu = _GPU_HOURS.match(raw)
    if gpu:
        hours = float(gpu.group("n"))
        if hours <= 0:
            raise ConfigError("a GPU-hour budget must be positive", key="--budget", value=text, fix=_FIX)
        return Budget("gpu", hours * 3600)
    duration = _DURATION.match(raw)
    if raw and duration and any(duration.groupdict().values()):
        seconds = sum(float(duration.group(u) or 0) * f for u, f in (("h", 3600), ("m", 60), ("s", 1)))
        if seconds <= 0:
            raise ConfigError("a time budget must be positive", key="--budget", value=text, fix=_FIX)
        return Budget("wall", seconds)
    raise ConfigError("is not a budget", key="--budget", value=text, fix=_FIX)


def trial_share(state: str, attrs: dict[str, Any], last_step: int | None) -> float:
    """What one trial uses up of a trial budget, in full-trial equivalents. Never run (infeasible) or
    to be run again (interrupted): 0. Stopped early (PRUNED): the fraction of its training it ran,
    from its own step count when it recorded one, else from its last intermediate value's progress
    (samples seen) over its planned samples. Everything else (finished, failed, running): 1."""
    if attrs.get("exit_class") in ("infeasible", "interrupted"):
        return 0.0
    if state != "PRUNED":
        return 1.0
    steps, total = attrs.get("steps"), attrs.get("total_steps")
    if steps and total:
        return min(1.0, float(steps) / float(total))
    planned = attrs.get(PLANNED_SAMPLES)
    last_step = last_step or attrs.get(SAMPLES_SEEN)
    if last_step and planned:
        return min(1.0, float(last_step) / float(planned))
    return 1.0


@dataclass
class Ledger:
    """What a study has spent against its budget, as recorded in the study by every driver (the
    gate keeps it current: tuner/study/gate.py), and the rule for what it can still pay for."""

    budget: Budget
    trials_used: float = 0.0  # full-trial equivalents of finished trials (trial_share)
    wall_s: float = 0.0  # wall time charged so far
    gpu_s: float = 0.0  # GPU- (or process-) seconds charged so far
    durations: list[float] = field(default_factory=list)  # wall seconds of finished trials

    def spent(self, *, session_s: float, running: dict[Any, tuple[float, int]]) -> float:
        """Spent so far in the budget's unit. `session_s`: wall seconds not charged yet; `running`:
        trial -> (seconds not charged yet, GPUs or processes)."""
        if self.budget.kind == "trials":
            return self.trials_used + len(running)
        if self.budget.kind == "wall":
            return self.wall_s + session_s
        return self.gpu_s + sum(elapsed * processes for elapsed, processes in running.values())

    def estimate(self, processes: int) -> float:
        """What one more trial is expected to cost (median of the finished ones; 0 if none)."""
        if self.budget.kind == "trials":
            return 1.0
        typical = statistics.median(self.durations) if self.durations else 0.0
        return typical * (processes if self.budget.kind == "gpu" else 1)

    def can_start(self, *, session_s: float, running: dict[Any, tuple[float, int]], processes: int) -> bool:
        """No trial starts once the budget cannot pay for it."""
        spent = self.spent(session_s=session_s, running=running)
        return spent + self.estimate(processes) <= self.budget.amount

    def exhausted(self, *, session_s: float, running: dict[Any, tuple[float, int]]) -> bool:
        """For time and GPU budgets: running trials must stop now."""
        if self.budget.kind == "trials":
            return False
        return self.spent(session_s=session_s, running=running) >= self.budget.amount

    @classmethod
    def from_dict(cls, data: dict[str, Any], budget: Budget | None = None) -> Ledger:
        return cls(
            budget or Budget.from_dict(data["budget"]),
            float(data.get("trials_used", data.get("finished_trials", 0))),
            float(data.get("wall_s", 0.0)),
            float(data.get("gpu_s", 0.0)),
            [float(d) for d in data.get("durations", [])],
        )
