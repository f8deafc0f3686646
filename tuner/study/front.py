"""Best trials of a study: the best one (one objective) or the Pareto front (several), and the rule
that picks one trial of a front (`tune promote --best M --where "M2<=x"`).

Pure functions of frozen trials and directions, so status, report, promote and the weights
cleanup agree on what "best" means.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tuner.errors import ConfigError


def _complete(trials: Sequence[Any]) -> list[Any]:
    return [
        t
        for t in trials
        if t.state.name == "COMPLETE" and t.values is not None and all(math.isfinite(v) for v in t.values)
    ]


def ranked(trials: Sequence[Any], directions: Sequence[str]) -> list[Any]:
    """COMPLETE trials best first (the lower number on a tie); for several objectives, the Pareto
    front by number (no order among trade-offs). What best, promote and the weights cleanup read."""
    if len(directions) > 1:
        return pareto_front(trials, directions)
    sign = 1.0 if directions[0] == "minimize" else -1.0
    return sorted(_complete(trials), key=lambda t: (sign * t.values[0], t.number))


def best_of(trials: Sequence[Any], direction: str) -> Any | None:
    """The COMPLETE trial with the best value (the lowest number on a tie); None when none is complete."""
    best = ranked(trials, [direction])
    return best[0] if best else None


def _losses(values: Sequence[float], directions: Sequence[str]) -> tuple[float, ...]:
    return tuple(v if d == "minimize" else -v for v, d in zip(values, directions, strict=True))


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """`a` is at least as good as `b` on every objective and better on one."""
    la, lb = _losses(a, directions), _losses(b, directions)
    return all(x <= y for x, y in zip(la, lb, strict=True)) and la != lb


def pareto_front(trials: Sequence[Any], directions: Sequence[str]) -> list[Any]:
    """COMPLETE trials no other COMPLETE trial dominates, by trial number. Trials with equal values
    are all on the front (neither dominates the other)."""
    done = _complete(trials)
    front = [t for t in done if not any(dominates(o.values, t.values, directions) for o in done if o is not t)]
    return sorted(front, key=lambda t: t.number)


_CONDITION = re.compile(r"^\s*([\w.\-/]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Condition:
    """`metric <= number` (or >=, <, >) on one objective of a multi-objective study."""

    metric: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: str, names: Sequence[str]) -> Condition:
        match = _CONDITION.match(text)
        if not match:
            raise ConfigError(
                "is not a condition of the form METRIC<=NUMBER (or >=, <, >)",
                key="--where",
                value=text,
                fix=f'write e.g. --where "{names[-1]}<=0.5"',
            )
        metric, op, bound = match.groups()
        _check_name(metric, names, "--where")
        try:
            return cls(metric, op, float(bound))
        except ValueError:
            raise ConfigError(
                "has a bound that is not a number", key="--where", value=text, fix="write a number after the operator"
            ) from None

    def holds(self, values: dict[str, float]) -> bool:
        return _OPERATORS[self.op](values[self.metric], self.bound)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def _check_name(metric: str, names: Sequence[str], key: str) -> None:
    if metric not in names:
        raise ConfigError(
            f"is not one of the study's objectives ({', '.join(names)})",
            key=key,
            value=metric,
            fix=f"use one of {', '.join(names)}",
        )


def pick_by_rule(
    trials: Sequence[Any], names: Sequence[str], directions: Sequence[str], best: str, where: Sequence[Condition]
) -> Any:
    """The trial with the best `best` among the COMPLETE trials that meet every condition. The
    winner is on the Pareto front unless a condition cuts the front away; a tie goes to the trial
    that is better on the other objectives (the front's), then to the lower number."""
    _check_name(best, names, "--best")
    index = list(names).index(best)
    sign = 1.0 if directions[index] == "minimize" else -1.0

    def values(t: Any) -> dict[str, float]:
        return dict(zip(names, t.values, strict=True))

    eligible = [t for t in _complete(trials) if all(c.holds(values(t)) for c in where)]
    if not eligible:
        met = " and ".join(str(c) for c in where)
        raise ConfigError(
            f"no COMPLETE trial meets {met}",
            key="--where",
            value=met,
            fix="loosen the condition (`tune status STUDY` lists the Pareto front's values)",
        )
    front = {t.number for t in pareto_front(eligible, directions)}
    return min(eligible, key=lambda t: (sign * t.values[index], t.number not in front, t.number))


def describe_front(front: Sequence[Any], names: Sequence[str]) -> str:
    """One line per trial of a front: '#3  eval_loss=2.7260  gpu_hours=0.0041'."""
    return "\n".join(
        f"  #{t.number}  " + "  ".join(f"{n}={v:.6g}" for n, v in zip(names, t.values, strict=True)) for t in front
    )
