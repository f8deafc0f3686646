"""Early stopping for a multi-objective study, on the one metric `experiment.early_stopping_metric`
names. Optuna keeps no intermediate values and prunes nothing in a multi-objective study
(`Trial.report` raises NotImplementedError), so tuner applies the rule its single-objective studies
get from Optuna's SuccessiveHalvingPruner (ASHA) itself, on the same rung grid:

- at the first eval at or past rung k (samples seen), the trial's value there is recorded on the
  trial (user attribute `rung_<k>`), in the study, so every driver and a resumed one see it;
- the trial goes on if its value is among the best 1/reduction_factor of all values recorded at
  that rung so far (itself included; at least the single best), as Optuna's rule does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.study.store import StudyStore

RUNG_ATTR = "rung_{}"  # the trial's value of the early-stopping metric at rung k


def promotable(value: float, competing: Sequence[float], reduction_factor: int, minimize: bool) -> bool:
    """ASHA's rule (Optuna's `_is_trial_promotable_to_next_rung`): in the top 1/rf of the values
    recorded at the rung, and always when it is the best."""
    ranked = sorted(competing, reverse=not minimize)
    index = max(0, len(ranked) // reduction_factor - 1)
    return value <= ranked[index] if minimize else value >= ranked[index]


@dataclass(frozen=True)
class RungRule:
    """Successive halving on `points` (samples seen, the study's rung grid) for one metric."""

    points: tuple[int, ...]
    reduction_factor: int
    minimize: bool

    def should_stop(self, store: StudyStore, number: int, value: float, samples: int) -> bool:
        """Record the trial's eval at `samples`; True when it falls out at a rung it just reached."""
        if not self.points or samples < self.points[0]:
            return False  # before the first rung: nothing to compare (and nothing to read)
        with store.exclusive():  # drivers record rung values and compare them one at a time
            trials = store.trials()
            mine = next((t for t in trials if t.number == number), None)
            recorded = mine.user_attrs if mine is not None else {}
            keys = [RUNG_ATTR.format(k) for k, point in enumerate(self.points) if samples >= point]
            reached = [key for key in keys if key not in recorded]
            if not reached:
                return False
            store.set_trial_attrs(number, dict.fromkeys(reached, float(value)))
            for key in reached:
                competing = [float(t.user_attrs[key]) for t in trials if key in t.user_attrs and t.number != number]
                if not promotable(float(value), [*competing, float(value)], self.reduction_factor, self.minimize):
                    return True
        return False


def rung_values(user_attrs: dict[str, Any]) -> dict[int, float]:
    """The rung values a trial recorded: rung index -> value."""
    prefix = RUNG_ATTR.format("")
    return {
        int(k[len(prefix) :]): float(v)
        for k, v in user_attrs.items()
        if k.startswith(prefix) and k[len(prefix) :].isdigit()
    }
