"""The study as a model sees it under early stopping, so `--sampler gp` keeps learning from every trial.

Optuna's GPSampler learns from COMPLETE trials only. Under ASHA most trials are PRUNED at a rung, so
GP would model a handful of finished trials and ignore everything the rungs measured (bench/asha_default.py:
plain GP under ASHA is worse than random search on the synthetic functions). Every trial of a tuner
study evaluates at the same rungs (samples seen, the study's progress points; a trial's k-th
intermediate value is its value at rung k), so the values at one rung compare like with like. GP
models, once ASHA has stopped a trial:

- once MIN_PAIRS trials finished, every trial at the final fidelity (`predicted_finals`): a stopped
  trial's final value predicted from its last rung by a line fitted to the finished trials' (rung,
  final) pairs, so the study itself measures how far a rung predicts the end (learning-curve
  extrapolation at its simplest; bench/asha_default.py: it beats Optuna's TPE under ASHA on four of
  five tasks, docs/benchmarks.md 2c);
- before that, BOHB's rule (Falkner et al. 2018), the highest fidelity with enough observations:
  `final` once `min_points` trials finished; else the furthest rung at least `min_points` trials
  reported (pruned, running or finished); else the rung most trials reported (the first); while it
  has fewer than the model's startup trials the model samples at random, as at the start of any study.
  A trial stopped below that fidelity counts as the worst value seen there (ASHA judged it worse).

Running trials without a value are pending (GP's own handling of RUNNING trials); failed trials and
infeasible markers are left out.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

FINAL = -1  # the fidelity of COMPLETE trials' values, above every rung
PREDICTED = -2  # the final values, a stopped trial's predicted from its last rung (predicted_finals)
MIN_PAIRS = 3  # finished trials with a value at a rung before that rung predicts final values
MODELLED = "gp_modelled"  # the user attribute that says what GP learnt from when it proposed a trial


def stopped_at_a_rung(trial: FrozenTrial) -> bool:
    """A healthy trial cut short, by early stopping or by the study's budget (it has rung values): not
    an infeasible marker (a constraint), nor a trial that diverged (PRUNED too: its values before the
    loss blew up would predict a good end)."""
    from optuna.trial import TrialState

    return (
        trial.state == TrialState.PRUNED
        and bool(trial.intermediate_values)
        and not trial.constraints  # Optuna 5's set_constraint: tuner's infeasible markers
        and trial.user_attrs.get("exit_class", "pruned") in ("pruned", "budget")
    )


def diverged(trial: FrozenTrial) -> bool:
    """A trial stopped because its loss blew up: the worst value wherever a model reads it."""
    return trial.user_attrs.get("exit_class") == "diverged"


def measured_finals(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The finished trials that also have rung values, the pairs a rung predicts the end from: not a
    warm start's copies (another study's final values, no rungs)."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state == TrialState.COMPLETE and t.intermediate_values]


def values_by_rung(trial: FrozenTrial) -> dict[int, float]:
    """A trial's values by rung index (0 = the first rung). Every trial evaluates exactly at the rungs
    it reaches, at the first optimizer step at or past each, so its k-th intermediate value is its
    value at rung k whatever its global batch (a rung at 33 samples is reported at 33, 34 or 36)."""
    return {k: value for k, (_, value) in enumerate(sorted(trial.intermediate_values.items()))}


def fidelity(trials: Sequence[FrozenTrial], min_points: int) -> int:
    """The fidelity to model at: FINAL, or the index of a rung."""
    from optuna.trial import TrialState

    if sum(t.state == TrialState.COMPLETE for t in trials) >= min_points:
        return FINAL
    reported = Counter(rung for t in trials for rung in values_by_rung(t))
    if not reported:
        return FINAL
    enough = [rung for rung, n in reported.items() if n >= min_points]
    return max(enough) if enough else max(reported, key=lambda rung: (reported[rung], -rung))


def at_fidelity(trials: Sequence[FrozenTrial], level: int, minimize: bool) -> list[FrozenTrial]:
    """Each trial that has a value at `level` as a COMPLETE one with that value; a trial stopped
    before it, or diverged, as a COMPLETE one with the worst value seen there (early stopping judged
    it worse than the trials that went on); running trials without one stay RUNNING (pending); the rest
    (failed trials, infeasible markers: GP would need a constraint on every trial) are left out.
    Copies: the study's records are not touched."""
    from optuna.trial import TrialState

    def value_at(trial: FrozenTrial) -> float | None:
        if level == FINAL:
            return trial.value if trial.state == TrialState.COMPLETE else None
        return values_by_rung(trial).get(level)

    seen = [v for v in map(value_at, trials) if v is not None]
    worst = (max if minimize else min)(seen) if seen else None
    view = []
    for trial in trials:
        value = value_at(trial)
        if (value is None and stopped_at_a_rung(trial)) or diverged(trial):
            value = worst
        if value is not None:
            copied = copy.copy(trial)
            copied.state, copied.values = TrialState.COMPLETE, [value]
            view.append(copied)
        elif trial.state == TrialState.RUNNING:
            view.append(trial)
    return view


def predicted_finals(trials: Sequence[FrozenTrial], minimize: bool) -> list[FrozenTrial] | None:
    """Every trial at the final fidelity, once MIN_PAIRS trials finished (else None): a finished trial
    with its value; a trial stopped at a rung with the final value predicted from its value there, by a
    straight line fitted to the finished trials' (value at that rung, final value) pairs, its slope at
    least 0 (a rung that ranks the end backwards predicts the mean: it says nothing), or with the worst
    final value when too few finished trials reached that rung; a diverged trial with the worst final
    value; running trials stay pending; the rest are left out, as in at_fidelity. "Finished" counts
    only trials with rung values (measured_finals). How far a rung predicts the end is measured on the study
    itself, so a rung that misranks (the demo's first, bench/asha_default.py) weighs little."""
    import numpy as np
    from optuna.trial import TrialState

    finished = measured_finals(trials)
    if len(finished) < MIN_PAIRS:
        return None
    lines = {}
    for rung in {rung for t in trials if stopped_at_a_rung(t) for rung in values_by_rung(t)}:
        pairs = [(values_by_rung(t)[rung], t.value) for t in finished if rung in values_by_rung(t)]
        if len(pairs) >= MIN_PAIRS:
            x, y = np.array(pairs, dtype=float).T
            slope = max(float(np.polyfit(x, y, 1)[0]), 0.0) if np.ptp(x) > 0 else 0.0
            lines[rung] = (float(y.mean() - slope * x.mean()), slope)
    worst = (max if minimize else min)(t.value for t in finished)
    view = []
    for trial in trials:
        if trial.state == TrialState.COMPLETE or trial.state == TrialState.RUNNING:
            view.append(trial)
        elif diverged(trial):
            copied = copy.copy(trial)
            copied.state, copied.values = TrialState.COMPLETE, [worst]
            view.append(copied)
        elif stopped_at_a_rung(trial):
            by_rung = values_by_rung(trial)
            last = max(by_rung)
            intercept, slope = lines.get(last, (worst, 0.0))
            copied = copy.copy(trial)
            copied.state, copied.values = TrialState.COMPLETE, [intercept + slope * by_rung[last]]
            view.append(copied)
    return view


def modelled_label(level: int, seen: Sequence[FrozenTrial], startup: int) -> str:
    """What GP proposes a trial from, for the trial's MODELLED attribute (the dashboard shows it): why
    `--sampler gp` under ASHA proposes what the early rungs liked is then on the record."""
    from optuna.trial import TrialState

    points = sum(t.state == TrialState.COMPLETE for t in seen)
    if points < startup:
        return f"random start-up: {points} of {startup} trials"
    source = {FINAL: "final values", PREDICTED: "predicted final values"}.get(level, f"rung {level + 1}")
    return f"{source} of {points} trials"


def modelled_source(label: str) -> str:
    """The source part of a modelled_label ("rung 1", "final values", "predicted final values",
    "random start-up"), read next to the function that writes it, so that `tune status` groups trials
    without knowing the wording."""
    return label.split(":")[0].split(" of ")[0]


class StudyAtFidelity:
    """A study whose trial list is the view at one fidelity; everything else is the study's own
    (storage, directions), so a sampler that writes to its trial still writes to the real one."""

    def __init__(
        self, study: optuna.Study, min_points: int, trials: Sequence[FrozenTrial], predict: bool = True
    ) -> None:
        from optuna.study import StudyDirection

        self._study = study
        (direction,) = study.directions  # one objective: a study of several stops no trial at a rung
        minimize = direction == StudyDirection.MINIMIZE
        predicted = predicted_finals(trials, minimize) if predict else None
        if predicted is not None:
            self.level, self._view = PREDICTED, predicted
        else:
            self.level = fidelity(trials, min_points)
            self._view = at_fidelity(trials, self.level, minimize)

    def _get_trials(
        self, deepcopy: bool = False, states: Container[Any] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        return [t for t in self._view if states is None or t.state in states]

    def get_trials(self, deepcopy: bool = False, states: Container[Any] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return list(self._view)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def rung_aware_gp(
    seed: int | None, startup_trials: int, dimensions: int, min_points: int | None = None, predict: bool = True
) -> optuna.samplers.GPSampler:
    """`--sampler gp`: Optuna's GPSampler, on the study while no trial was stopped early and, once one
    was, on its predicted final values (`predict`; else BOHB's view at one fidelity throughout, as
    bench/asha_sim.py's gp-one-fidelity and gp-minN do). `min_points`: the BOHB view's, by default the
    startup trials and at least one point more than the space has dimensions."""
    import optuna

    class RungAwareGP(optuna.samplers.GPSampler):
        def __init__(self, min_points: int, startup: int, seed: int | None) -> None:
            super().__init__(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
            self.min_points, self.startup = min_points, startup
            # The trial being asked (held, so no other object can share its identity), its view, its label:
            # Optuna passes the same FrozenTrial to both calls of one ask, so the study is read once.
            self._last: tuple[FrozenTrial | None, Any, str] = (None, None, "")

        def _seen(self, study: optuna.Study, trial: FrozenTrial | None = None) -> Any:
            if trial is not None and self._last[0] is trial:
                return self._last[1]
            trials = study.get_trials(deepcopy=False)
            stopped = any(map(stopped_at_a_rung, trials))
            seen = StudyAtFidelity(study, self.min_points, trials, predict) if stopped else study
            level, modelled = (seen.level, seen.trials) if stopped else (FINAL, trials)
            self._last = (trial, seen, modelled_label(level, modelled, self.startup))
            return seen

        def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
            seen = self._seen(study, trial)
            return super().infer_relative_search_space(seen, trial)  # GP reads COMPLETE trials

        def sample_relative(
            self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
        ) -> dict[str, Any]:
            seen = self._seen(study, trial)
            study._storage.set_trial_user_attr(trial._trial_id, MODELLED, self._last[2])  # trials GP proposes
            try:
                return super().sample_relative(seen, trial, search_space)
            finally:  # the ask is over: hold no copy of the study while the trial trains
                self._last = (None, None, "")

    return RungAwareGP(min_points or max(startup_trials, dimensions + 1), startup_trials, seed)
