"""Optuna samplers by name, their grid, and how many random trials come before a model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from tuner.config.space import SearchSpace

SAMPLERS = ("tpe", "gp", "random", "grid", "cmaes")


def make_sampler(
    name: str, seed: int | None, space: SearchSpace, startup_trials: int | None = None
) -> optuna.samplers.BaseSampler:
    """Samplers by name. TPE and GP read the trials' constraints (Optuna 5 `set_constraint`), so
    points tuner marks infeasible (OOM, broken space constraints) steer them away."""
    import optuna

    startup = {} if startup_trials is None else {"n_startup_trials": startup_trials}
    if name == "tpe":  # constant liar: concurrent trials (and drivers) do not all pile on one point
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, **startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return _study_grid()(grid_points(space), seed=seed)
    raise ConfigError("is not a sampler", key="--sampler", value=name, fix=f"use one of {', '.join(SAMPLERS)}")


def _study_grid() -> type:
    """GridSampler as a study of tuner's needs it (built lazily: Optuna imports in seconds)."""
    import optuna

    class StudyGrid(optuna.samplers.GridSampler):
        """Optuna's GridSampler, minus two things that break a study driven by ask/tell: it calls
        `study.stop()` when the grid is used up, which raises outside `optimize()`; and once every
        point has started, it hands out points already run. tuner asks `remaining` first, under the
        study's lock, and ends the study itself when it is 0: no point runs twice."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

        def remaining(self, study: Any) -> int:
            """Points neither finished nor running (in any driver). Reads GridSampler's private
            `_n_min_trials` and `_same_search_space`: Optuna's public `is_exhausted` counts running
            points as open, which is what lets it hand a running point out twice."""
            started = {
                t.system_attrs["grid_id"]
                for t in study.get_trials(deepcopy=False)
                if "grid_id" in t.system_attrs and self._same_search_space(t.system_attrs["search_space"])
            }
            return len(set(range(self._n_min_trials)) - started)

    return StudyGrid


def grid_points(space: SearchSpace, per_range: int = 4) -> dict[str, list[Any]]:
    """A finite grid for GridSampler: categorical choices as they are; ranges at `per_range`
    evenly (or log-evenly) spaced points, all integers for an int range that small."""
    import numpy as np

    grid: dict[str, list[Any]] = {}
    for name, p in space.params.items():
        if p.choices is not None:
            grid[name] = list(p.choices)
            continue
        assert p.low is not None and p.high is not None
        if p.type == "int" and p.high - p.low + 1 <= per_range:
            grid[name] = list(range(int(p.low), int(p.high) + 1))
            continue
        points = np.geomspace(p.low, p.high, per_range) if p.log else np.linspace(p.low, p.high, per_range)
        grid[name] = sorted({round(v) for v in points}) if p.type == "int" else [float(v) for v in points]
    return grid


def default_startup_trials(budget: Any) -> int:
    """Random trials before TPE/GP start modelling. Optuna's fixed 10 leaves a 4..20-trial study
    mostly (or wholly) random; bench/search.py found 5 startup trials beat 10 at 30 trials on both
    synthetic functions. So: a quarter of a trial budget, 3 to 10; Optuna's 10 when the budget is
    time or GPU-hours (the trial count is unknown)."""
    if getattr(budget, "kind", None) != "trials":
        return 10
    return min(10, max(3, int(budget.amount) // 4))


def driver_seed(attrs: dict[str, Any], seed: int, trials_so_far: int) -> int:
    """The sampler seed of this driver. A resumed or joining driver must not replay another driver's
    random draws: the study's seed is offset by the drivers it has had and the trials it holds (still
    reproducible for a single driver). `attrs`: the study's attributes ({} for a new study)."""
    if not attrs:
        return seed
    drivers_before = sum(1 for k in attrs if k.startswith("driver:"))
    return int(attrs.get("seed", seed)) + 1000 * drivers_before + trials_so_far
