"""Samplers tried under ASHA in bench/asha_sim.py that are not tuner's (docs/benchmarks.md, 2c).

- `tpe_at_fidelity`: BOHB's model (Falkner et al. 2018), tuner's TPE reading the study at one fidelity
  once ASHA has stopped a trial: tried, lost to Optuna's TPE.
- `tpe_then_predicted_gp`: the default's construction with `--sampler gp`'s model of a study under ASHA:
  TPE while fewer than MIN_PAIRS trials finished, GP on the predicted final values from then on.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from tuner.study.fidelity import MIN_PAIRS, StudyAtFidelity, rung_aware_gp, stopped_at_a_rung
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


def tpe_then_predicted_gp(seed: int, startup: int, distributions: dict) -> optuna.samplers.BaseSampler:
    """TPE for a space with a category; else GP (`--sampler gp`) unless ASHA has stopped a trial while
    fewer than MIN_PAIRS trials finished (no rung predicts the end yet: TPE reads the stops natively),
    or GP_MAX_TRIALS trials have finished."""
    tpe = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup)
    if any(isinstance(d, optuna.distributions.CategoricalDistribution) for d in distributions.values()):
        return tpe

    class TPEThenPredictedGP(gp_then_tpe()):
        def choose(self, study: optuna.Study) -> optuna.samplers.BaseSampler:
            trials = study.get_trials(deepcopy=False)
            finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            complete = sum(t.state == TrialState.COMPLETE for t in finished)
            if len(finished) >= GP_MAX_TRIALS or (complete < MIN_PAIRS and any(map(stopped_at_a_rung, trials))):
                return self.tpe
            return self.gp

    return TPEThenPredictedGP(rung_aware_gp(seed, startup, len(distributions)), tpe)
