"""Best-so-far curves of a search run: `run["best"][i]` is the best value after the i-th finished
trial and `run["compute"][i]` the compute spent by then (minimization)."""

from __future__ import annotations


def compute_to_reach(run: dict, target: float) -> float | None:
    """Compute a run had spent when its best value first got to `target` (None: never)."""
    return next((c for b, c in zip(run["best"], run["compute"], strict=True) if b <= target), None)


def best_at(run: dict, compute: float) -> float:
    """Best value a run had found once it had spent `compute` (inf if none yet)."""
    found = float("inf")
    for best, spent in zip(run["best"], run["compute"], strict=True):
        if spent > compute:
            break
        found = best
    return found
