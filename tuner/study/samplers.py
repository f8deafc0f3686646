"""Optuna samplers by name, the default one (`default_sampler`), the grid, and the startup trials."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from tuner.config.space import SearchSpace

SAMPLERS = ("auto", "tpe", "gp", "random", "grid", "cmaes", "nsga2")
MULTI_OBJECTIVE_SAMPLERS = ("auto", "tpe", "gp", "random", "grid", "nsga2")  # CMA-ES optimizes one number


def make_sampler(
    name: str, seed: int | None, space: SearchSpace, startup_trials: int | None = None, objectives: int = 1
) -> optuna.samplers.BaseSampler:
    """Samplers by name. TPE and GP read the trials' constraints (Optuna 5 `set_constraint`), so
    points tuner marks infeasible (OOM, broken space constraints) steer them away. `auto` is
    `default_sampler`: with the startup trials default_startup_trials(budget) gives (what
    prepare_study passes unless --startup-trials is given) it is exactly default_sampler's sampler."""
    import optuna

    if objectives > 1 and name not in MULTI_OBJECTIVE_SAMPLERS:
        raise ConfigError(
            f"cannot search a study of {objectives} objectives (it optimizes one number)",
            key="--sampler",
            value=name,
            fix=f"use one of {', '.join(MULTI_OBJECTIVE_SAMPLERS)} (auto: GP or TPE, both multi-objective)",
        )
    if name == "auto":
        return _auto_sampler(space.distributions(), 10 if startup_trials is None else startup_trials, seed)
    startup = {} if startup_trials is None else {"n_startup_trials": startup_trials}
    if name == "tpe":  # constant liar: concurrent trials (and drivers) do not all pile on one point
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, **startup)
    if name == "gp":  # learns from every trial once ASHA stops trials (tuner.study.fidelity)
        from tuner.study.fidelity import rung_aware_gp

        return rung_aware_gp(seed, 10 if startup_trials is None else startup_trials, len(space.params))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":  # Optuna's default for multi-objective studies: needs generations of 50 trials
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return _study_grid()(grid_points(space), seed=seed)
    raise ConfigError("is not a sampler", key="--sampler", value=name, fix=f"use one of {', '.join(SAMPLERS)}")


GP_MAX_TRIALS = 100  # past this many finished trials the default hands over to TPE (GP's cost grows cubically)


def default_sampler(
    space: dict[str, optuna.distributions.BaseDistribution], budget: int | None, seed: int | None
) -> optuna.samplers.BaseSampler:
    """The sampler `tune start` builds by default (`--sampler auto`), for any outside benchmark too.

    `space`: the study's Optuna distributions by name; `budget`: its trial count (None when the
    budget is wall time or GPU-hours); `seed`: the sampler's seed. Chosen by bench/default_sampler.py
    at equal trials and bench/asha_default.py at equal compute under ASHA (docs/benchmarks.md, 2c).
    Each trial is proposed by:
    - GP (`--sampler gp`: Optuna's GPSampler, which under ASHA models every trial's final value, a
      stopped trial's predicted from its rung, tuner.study.fidelity) when every parameter is numeric
      and fewer than GP_MAX_TRIALS trials have finished, unless a trial is an infeasible marker (OOM,
      broken space constraints) or diverged (TPE reads them), or ASHA has stopped a trial while fewer
      than MIN_PAIRS trials finished with rung values (no rung predicts the end yet; TPE reads stopped
      trials natively). A study of several objectives keeps its rung values apart: TPE from its first
      early stop;
    - TPE otherwise: Optuna 5's multivariate TPE with constant liar (concurrent trials and drivers
      spread out).
    Both sample `default_startup_trials` points at random first (a quarter of a trial budget, 3..10;
    10 without one) and read the trials' constraints (Optuna 5 `set_constraint`)."""
    return _auto_sampler(space, startup_trials_for(budget), seed)


def startup_trials_for(budget: int | None) -> int:
    """Random trials before a model: a quarter of a trial budget, 3..10; Optuna's 10 without one."""
    return 10 if budget is None else min(10, max(3, budget // 4))


def _auto_sampler(
    space: dict[str, optuna.distributions.BaseDistribution], startup: int, seed: int | None
) -> optuna.samplers.BaseSampler:
    """default_sampler's choice with an explicit number of startup trials (`--startup-trials`)."""
    import optuna

    tpe = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup)
    numeric = all(not isinstance(d, optuna.distributions.CategoricalDistribution) for d in space.values())
    if not numeric:
        return tpe
    from tuner.study.fidelity import rung_aware_gp

    return gp_then_tpe()(rung_aware_gp(seed, startup, len(space)), tpe)


def gp_then_tpe() -> type:
    """GP while the study is short and its rungs can be read as final values, TPE otherwise (built
    lazily)."""
    import optuna
    from optuna.trial import TrialState

    from tuner.study.fidelity import MIN_PAIRS, measured_finals, stopped_at_a_rung

    class GPThenTPE(optuna.samplers.BaseSampler):
        """Delegates each trial, from `before_trial` to `after_trial`, to one of two samplers."""

        def __init__(self, gp: optuna.samplers.BaseSampler, tpe: optuna.samplers.BaseSampler) -> None:
            self.gp, self.tpe = gp, tpe
            self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}

        def choose(self, study: optuna.Study) -> optuna.samplers.BaseSampler:
            """GP unless GP_MAX_TRIALS trials have finished, a trial is an infeasible marker or diverged,
            or early stopping has stopped a trial while fewer than MIN_PAIRS trials finished with rung
            values (a warm start's copies have none)."""
            trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            pruned = [t for t in trials if t.state == TrialState.PRUNED]
            if len(trials) >= GP_MAX_TRIALS or not all(map(stopped_at_a_rung, pruned)):
                return self.tpe  # long, or an infeasible marker or a diverged trial: TPE reads them
            return self.tpe if pruned and len(measured_finals(trials)) < MIN_PAIRS else self.gp

        def _for(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
            if trial._trial_id not in self._by_trial:
                self._by_trial[trial._trial_id] = self.choose(study)
            return self._by_trial[trial._trial_id]

        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            self._by_trial[trial._trial_id] = self.choose(study)
            self._by_trial[trial._trial_id].before_trial(study, trial)

        def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
            return self._for(study, trial).infer_relative_search_space(study, trial)

        def sample_relative(
            self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]
        ) -> dict[str, Any]:
            return self._for(study, trial).sample_relative(study, trial, search_space)

        def sample_independent(
            self, study: optuna.Study, trial: optuna.trial.FrozenTrial, name: str, distribution: Any
        ) -> Any:
            return self._for(study, trial).sample_independent(study, trial, name, distribution)

        def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: Any, values: Any) -> None:
            self._by_trial.pop(trial._trial_id, self.tpe).after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.gp.reseed_rng()
            self.tpe.reseed_rng()

    return GPThenTPE


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
    return startup_trials_for(trial_count(budget))


def trial_count(budget: Any) -> int | None:
    """A study budget's trial count (`tuner.study.budget.Budget`), None for time or GPU-hours."""
    return int(budget.amount) if getattr(budget, "kind", None) == "trials" else None


def driver_seed(attrs: dict[str, Any], seed: int, trials_so_far: int) -> int:
    """The sampler seed of this driver. A resumed or joining driver must not replay another driver's
    random draws: the study's seed is offset by the drivers it has had and the trials it holds (still
    reproducible for a single driver). `attrs`: the study's attributes ({} for a new study)."""
    if not attrs:
        return seed
    drivers_before = sum(1 for k in attrs if k.startswith("driver:"))
    return int(attrs.get("seed", seed)) + 1000 * drivers_before + trials_so_far
