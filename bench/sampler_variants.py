"""Samplers tried under ASHA in bench/asha_sim.py that are not tuner's (docs/benchmarks.md, 2c).

- `tpe_at_fidelity`: BOHB's model (Falkner et al. 2018), tuner's TPE reading the study at one fidelity
  once ASHA has stopped a trial: tried, lost to Optuna's TPE.
- `previous_default`: the default until stop 28, GP on full trials only, TPE from ASHA's first stop: the
  "before" of the default's before/after table.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from tuner.study.fidelity import StudyAtFidelity, stopped_at_a_rung
from tuner.study.samplers import GP_MAX_TRIALS, gp_then_tpe


def tpe_at_fidelity(seed: int, startup: int, dimensions: int) -> optuna.samplers.BaseSampler:
    """tuner's TPE (constant liar) on BOHB's one-fidelity view of the study, from ASHA's first stop."""

    class TPEAtFidelity(optuna.samplers.TPESampler):
        def _seen(self, study: optuna.Study) -> Any:
            trials = study.get_trials(deepcopy=False)
            if any(map(stopped_at_a_rung, trials)):
                return StudyAtFidelity(study, max(startup, dimensions + 1), trials, predict=False)
            return study

        def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
            return super().infer_relative_search_space(self._seen(study), trial)

        def sample_relative(self, study: optuna.Study, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            return super().sample_relative(self._seen(study), trial, search_space)

        def sample_independent(self, study: optuna.Study, trial: Any, name: str, distribution: Any) -> Any:
            return super().sample_independent(self._seen(study), trial, name, distribution)

    return TPEAtFidelity(seed=seed, constant_liar=True, n_startup_trials=startup)


def previous_default(seed: int, startup: int, distributions: dict) -> optuna.samplers.BaseSampler:
    """`default_sampler` until stop 28: TPE for a space with a category; else Optuna's GPSampler (full
    trials only) until a trial is PRUNED or GP_MAX_TRIALS trials have finished, TPE from then on.
    Under ASHA that is TPE after the first stop: a tie with Optuna's TPE (docs/benchmarks.md, 2c)."""
    tpe = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup)
    if any(isinstance(d, optuna.distributions.CategoricalDistribution) for d in distributions.values()):
        return tpe

    class PreviousDefault(gp_then_tpe()):
        def choose(self, study: optuna.Study) -> optuna.samplers.BaseSampler:
            finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if len(finished) >= GP_MAX_TRIALS or any(t.state == TrialState.PRUNED for t in finished):
                return self.tpe
            return self.gp

    gp = optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    return PreviousDefault(gp, tpe)
