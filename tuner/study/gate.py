"""The budget gate: whether the study can pay for another trial, and when running trials must stop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tuner.study.budget import Ledger
from tuner.study.store import StudyStore


class BudgetGate:
    """One driver's view of the study's budget. `running` (trial number -> start time) is the
    session's trials in flight; a trial budget is counted in the study itself, because several
    drivers may share it."""

    def __init__(
        self, store: StudyStore, ledger: Ledger, processes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.ledger, self.processes = store, ledger, processes
        self._clock = clock
        self._started = clock()
        self.running: dict[int, float] = {}
        self.stopped_for_budget = False

    @property
    def session_s(self) -> float:
        return self._clock() - self._started

    def _running_costs(self) -> dict[Any, tuple[float, int]]:
        now = self._clock()
        return {n: (now - start, self.processes) for n, start in self.running.items()}

    def can_start(self) -> bool:
        if self.ledger.budget.kind == "trials":
            return self.store.count_trials() + 1 <= self.ledger.budget.amount
        return self.ledger.can_start(session_s=self.session_s, running=self._running_costs(), processes=self.processes)

    def exhausted(self) -> bool:
        """True once a time or GPU-hour budget is spent; remembered, so trials stopped from then on
        are recorded PRUNED `budget`."""
        exhausted = self.ledger.exhausted(session_s=self.session_s, running=self._running_costs())
        self.stopped_for_budget = self.stopped_for_budget or exhausted
        return exhausted

    def charge(self, wall_s: float, *, counts: bool) -> None:
        self.ledger.record(wall_s, self.processes, counts=counts)

    def save(self) -> None:
        self.ledger.finished_trials = self.store.count_trials(finished_only=True)
        self.store.set_attrs({"spent": self.ledger.to_dict(self.session_s)})
