"""The budget gate: whether the study can pay for another trial, and when running trials must stop.

Spend lives in the study as increments (`StudyStore.add_spent`, atomic under the study's lock),
shared by every driver: each driver charges its running trials' GPU time at each heartbeat, from
the trial's actual start (not the time it waited for resources), and the rest when the trial ends.
So a driver killed with SIGKILL loses at most one heartbeat of spend, and several joined drivers
see each other's spend within a heartbeat. Wall time is charged by one driver at a time (the
earliest live one), so joined drivers do not count the same hour twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tuner.study.budget import Ledger
from tuner.study.store import StudyStore

HEARTBEAT_S = 10.0


class BudgetGate:
    """One driver's view of the study's budget. `running` (trial number -> when this driver
    started it) is the session's trials in flight; `started_at(number)` says when a
    trial actually started running (wall time), or None while it waits for resources."""

    def __init__(
        self,
        store: StudyStore,
        ledger: Ledger,
        processes: int,
        now: Callable[[], float] = time.time,
        *,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.store, self.ledger, self.processes = store, ledger, processes
        self._now, self.heartbeat_s = now, heartbeat_s
        self.running: dict[int, float] = {}
        self.stopped_for_budget = False
        self.started_at: Callable[[int], float | None] = lambda number: None
        self.keeps_wall_clock: Callable[[], bool] = lambda: True  # the lease says which driver does
        self._charged_to: dict[int, float] = {}  # trial -> wall time up to which its GPU time is charged
        self._wall_charged_to = now()
        self._last_flush = now()
        self._pending_durations: list[float] = []
        self._lock = threading.Lock()

    # -- what is spent --------------------------------------------------------------------
    def _trial_uncharged_s(self, number: int, now: float) -> float:
        """Seconds trial `number` has run since it was last charged (0 while it waits for resources)."""
        start = self.started_at(number)
        return max(0.0, now - max(start, self._charged_to.get(number, start))) if start is not None else 0.0

    def _uncharged(self, now: float) -> tuple[float, dict[Any, tuple[float, int]]]:
        """This driver's spend since its last charge, as the ledger counts it: wall seconds, and
        running trial -> (seconds, processes)."""
        wall = max(0.0, now - self._wall_charged_to) if self.keeps_wall_clock() else 0.0
        return wall, {n: (self._trial_uncharged_s(n, now), self.processes) for n in self.running}

    def spent(self) -> float:
        """Spent so far in the budget's unit: what the study has recorded, plus this driver's share
        since its last charge."""
        if self.ledger.budget.kind == "trials":
            return self.store.trials_used()
        wall, running = self._uncharged(self._now())
        return self.ledger.spent(session_s=wall, running=running)

    def can_start(self) -> bool:
        budget = self.ledger.budget
        if budget.kind == "trials":  # counted in the study: several drivers may share it
            return self.store.trials_used() + 1 <= budget.amount + 1e-9  # a whole trial's worth left
        self.tick()
        wall, running = self._uncharged(self._now())
        return self.ledger.can_start(session_s=wall, running=running, processes=self.processes)

    def exhausted(self) -> bool:
        """True once a time or GPU-hour budget is spent; remembered, so trials stopped from then on
        are recorded PRUNED `budget`. Also the heartbeat: charges running trials every `heartbeat_s`."""
        if self.ledger.budget.kind == "trials":
            return False
        self.tick()
        wall, running = self._uncharged(self._now())
        exhausted = self.ledger.exhausted(session_s=wall, running=running)
        self.stopped_for_budget = self.stopped_for_budget or exhausted
        return exhausted

    # -- charging --------------------------------------------------------------------------
    def tick(self, *, force: bool = False) -> None:
        """Charge what was spent since the last charge, at most every `heartbeat_s` unless forced."""
        now = self._now()
        if not force and now - self._last_flush < self.heartbeat_s:
            return
        with self._lock:
            wall, running = self._uncharged(now)
            for number in self.running:
                if self.started_at(number) is not None:
                    self._charged_to[number] = now
            self._wall_charged_to = self._last_flush = now
            self._charge(gpu_s=sum(s * p for s, p in running.values()), wall_s=wall)

    def finished(self, number: int, wall_s: float, *, counts: bool) -> None:
        """A trial ended: charge its GPU time up to now and remember its duration (an interrupted
        trial's compute is spent, but it runs again, so it does not use up a trial budget)."""
        gpu_s = self._trial_uncharged_s(number, self._now()) * self.processes
        self._charged_to.pop(number, None)
        if counts:
            self._pending_durations.append(round(wall_s, 3))
        with self._lock:
            self._charge(gpu_s=gpu_s, wall_s=0.0, trials_used=self.store.trials_used(finished_only=True))

    def _charge(self, *, gpu_s: float, wall_s: float, trials_used: float | None = None) -> None:
        """Add to the study's spend (with the durations not yet recorded) and take its new totals."""
        durations, self._pending_durations = self._pending_durations, []
        self._apply(
            self.store.add_spent(
                gpu_s=gpu_s,
                wall_s=wall_s,
                durations=durations,
                budget=self.ledger.budget,
                trials_used=trials_used,
            )
        )

    def _apply(self, spent: dict[str, Any]) -> None:
        self.ledger.gpu_s = float(spent.get("gpu_s", 0.0))
        self.ledger.wall_s = float(spent.get("wall_s", 0.0))
        self.ledger.durations = [float(d) for d in spent.get("durations", [])]
        self.ledger.trials_used = float(spent.get("trials_used", self.ledger.trials_used))

    def save(self) -> None:
        """Charge everything spent so far (the study's end, an interrupt)."""
        self.tick(force=True)
