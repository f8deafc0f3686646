"""What a failed trial leads to: a retry of a crash or hang, an infeasible mark for an OOM."""

from __future__ import annotations

import logging

from tuner.study.store import StudyStore

log = logging.getLogger(__name__)


# Failures run again with the same parameters: their cause may pass. Never an OOM (the sampler
# learns the point is infeasible instead) or a `metric_missing` (the same block misses the metric
# again); interrupted trials are requeued by recovery.py.
RETRIED = frozenset({"crashed", "timeout", "killed"})


class RetryPolicy:
    """Crashed, hung or killed trials run again up to `retries` times with the same parameters; an OOM or
    a missing metric is never retried (the same parameters would fail the same way): for an OOM the
    sampler learns instead that the point is infeasible."""

    def __init__(self, store: StudyStore, retries: int = 0) -> None:
        self.store, self.retries = store, retries

    def after(self, number: int, exit_class: str) -> None:
        if exit_class == "oom":
            self._mark_infeasible(number)
        elif exit_class in RETRIED:
            self._maybe_retry(number)

    def _maybe_retry(self, number: int) -> None:
        trial = next(t for t in self.store.trials() if t.number == number)
        first = int(trial.user_attrs.get("retry_of", number))
        attempt = int(trial.user_attrs.get("attempt", 0)) + 1
        if attempt <= self.retries:
            self.store.enqueue(dict(trial.params), {"retry_of": first, "attempt": attempt})
            log.info(
                "trial %d %s: retry %d of %d enqueued",
                number,
                trial.user_attrs.get("exit_class"),
                attempt,
                self.retries,
            )

    def _mark_infeasible(self, number: int) -> None:
        """Feed an OOM back to the sampler: Optuna's samplers read constraints only from COMPLETE or
        PRUNED trials, so the FAIL record stays the truth and a zero-cost PRUNED marker with the same
        parameters carries the infeasibility (user attr marker_for names the trial)."""
        trial = next(t for t in self.store.trials() if t.number == number)
        self.store.add_infeasible(
            trial.params,
            trial.distributions,
            {"exit_class": "infeasible", "reason": f"trial {number} ran out of memory", "marker_for": number},
            constraint="memory",
        )
