"""Best-so-far curves of a search run: `run["best"][i]` is the best value after the i-th finished
trial and `run["compute"][i]` the compute spent by then (minimization); and the ranks the benchmarks
compare strategies and rules by."""

from __future__ import annotations

import math


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


def ranks(values: list[float]) -> list[float]:
    """1 = lowest value; ties share the mean of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def regret_ratio(a: float, b: float) -> float:
    """a / b for two regrets; both 0 is a tie (1), only b 0 is inf."""
    return a / b if b > 0 else (1.0 if a == b else float("inf"))


def spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation of two lists (ties share ranks); nan below 3 points or with no spread."""
    if len(a) < 3:
        return math.nan
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var else math.nan


def sign_test(wins: int, losses: int) -> float:
    """Two-sided p of `wins` against `losses` under a fair coin."""
    n, k = wins + losses, min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


def better_worse_tied(runs: list[dict], others: list[dict]) -> tuple[int, int, int]:
    """Each run of `runs` against the run of `others` on the same (function, budget, seed): how often its
    regret was lower, higher, equal (runs without a partner are left out)."""
    theirs = {(r["function"], r["budget"], r["seed"]): r["regret"] for r in others}
    pairs = [(r["regret"], theirs[k]) for r in runs if (k := (r["function"], r["budget"], r["seed"])) in theirs]
    return sum(x < y for x, y in pairs), sum(x > y for x, y in pairs), sum(x == y for x, y in pairs)
