"""One study's record in SQL: ask, report, tell, attributes. The only code that talks to Optuna
storage (opening it is `storage.py`).

Attribute values are masked of the block's secrets (`tuner.redact`) before they are written.
Public Optuna API throughout, except where Optuna has none (see `_trial`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError
from tuner.redact import Redactor, redact_url
from tuner.study.budget import trial_share
from tuner.study.storage import open_storage, study_lock, writing

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

log = logging.getLogger(__name__)

# Marks a trial copied from another study by a warm start (a user attr, shown in the dashboard).
WARM_START_ATTR = "warm_start_from"


class StudyStore:
    """One study: ask, report, tell, attributes. Errors become StorageError."""

    def __init__(self, study: optuna.Study, url: str, secrets: tuple[str, ...] = ()) -> None:
        self.study, self.url = study, url
        self._redactor = Redactor(secrets)
        self._handles: dict[int, optuna.trial.Trial] = {}  # trials this process asked for
        self._lock: Callable[[], contextlib.AbstractContextManager[None]] | None = None

    @classmethod
    def open(
        cls,
        url: str,
        name: str,
        *,
        direction: str | Sequence[str] = "minimize",
        sampler: optuna.samplers.BaseSampler | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
        secrets: tuple[str, ...] = (),
        create: bool = True,
    ) -> StudyStore:
        """`pruner`: the study's early-stopping rule; none prunes (never Optuna's default MedianPruner).
        `direction`: one, or a sequence of them for a multi-objective study."""
        import optuna

        storage = open_storage(url)
        pruner = pruner or optuna.pruners.NopPruner()
        with writing(url, f"open study {name!r}"):
            if create:
                study = optuna.create_study(
                    storage=storage,
                    study_name=name,
                    directions=[direction] if isinstance(direction, str) else list(direction),
                    sampler=sampler,
                    pruner=pruner,
                    load_if_exists=True,
                )
            else:
                try:
                    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
                except KeyError:
                    raise ConfigError(
                        f"no study named {name!r} in {redact_url(url)}",
                        key="STUDY",
                        value=name,
                        fix="run `tune status` to list the studies",
                    ) from None
        return cls(study, url, secrets)

    @property
    def name(self) -> str:
        return self.study.study_name

    # -- attributes ------------------------------------------------------------------------
    def attrs(self) -> dict[str, Any]:
        with writing(self.url, "read study attributes"):
            return dict(self.study.user_attrs)

    def set_attrs(self, attrs: dict[str, Any]) -> None:
        with writing(self.url, "write study attributes"):
            for key, value in attrs.items():
                self.study.set_user_attr(key, self._redactor.value(value))

    def add_spent(
        self,
        *,
        gpu_s: float,
        wall_s: float,
        durations: list[float],
        budget: Any,
        trials_used: float | None = None,
    ) -> dict[str, Any]:
        """Add to what the study has spent, atomically across drivers (read, add, write under the
        study's lock), and return the new totals. Increments, never a driver's own total: the last
        writer must not erase what another driver charged."""
        with self.exclusive():
            spent = dict(self.attrs().get("spent") or {})
            spent["gpu_s"] = round(float(spent.get("gpu_s", 0.0)) + gpu_s, 3)
            spent["wall_s"] = round(float(spent.get("wall_s", 0.0)) + wall_s, 3)
            spent["durations"] = [*spent.get("durations", []), *durations]
            spent["budget"] = budget.to_dict()
            if trials_used is not None:  # the study's own count, not an increment (see trials_used)
                spent["trials_used"] = round(trials_used, 3)
            self.set_attrs({"spent": spent})
        return spent

    def sampler_exhausted(self) -> bool:
        """A sampler with a finite set of points (the grid) has started every one of them."""
        remaining = getattr(self.study.sampler, "remaining", None)
        if remaining is None:
            return False
        with writing(self.url, "read the sampler's remaining points"):
            return remaining(self.study) == 0

    def pinned(self, trials: list[optuna.trial.FrozenTrial] | None = None) -> set[int]:
        """Trials whose weights are never deleted. Kept on the study, not on the trials: Optuna's
        finished trials are immutable, and pins are set after a trial has finished. `trials`: the
        study's trials when the caller has just read them."""
        trials = self.trials() if trials is None else trials
        legacy = {t.number for t in trials if t.user_attrs.get("pinned")}  # pins of older studies
        return {int(n) for n in self.attrs().get("pinned_trials", [])} | legacy

    def set_pinned(self, number: int, pinned: bool) -> None:
        with self.exclusive():  # several drivers and `tune pin` may write the list at once
            current = {int(n) for n in self.attrs().get("pinned_trials", [])}
            current = current | {number} if pinned else current - {number}
            self.set_attrs({"pinned_trials": sorted(current)})

    @property
    def directions(self) -> list[str]:
        """'minimize' / 'maximize' for each objective (one unless the study is multi-objective)."""
        return [d.name.lower() for d in self.study.directions]

    @property
    def multi_objective(self) -> bool:
        return len(self.study.directions) > 1

    def metric_names(self) -> list[str]:
        """The objectives' names as the study records them (Optuna's metric names)."""
        with writing(self.url, "read the study's metric names"):
            names = self.study.metric_names
        if names:
            return list(names)
        if not self.multi_objective:  # a study named only in its attrs (older tuner, tests)
            return [str(self.attrs().get("metric", "value"))]
        return [f"objective {i}" for i in range(len(self.study.directions))]

    def set_metric_names(self, names: Sequence[str]) -> None:
        """Name the objectives (the dashboard and plots show them instead of 'Objective 0')."""
        import warnings

        with writing(self.url, "name the study's metrics"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental in Optuna since 3.2, and what its dashboard reads
            self.study.set_metric_names(list(names))

    def set_trial_attrs(self, number: int, attrs: dict[str, Any]) -> None:
        with writing(self.url, f"write attributes of trial {number}"):
            trial = self._trial(number)
            for key, value in attrs.items():
                trial.set_user_attr(key, self._redactor.value(value))

    # -- trials ----------------------------------------------------------------------------
    def ask(self, distributions: dict[str, BaseDistribution]) -> tuple[int, dict[str, Any]]:
        number, params, _ = self.ask_with_attrs(distributions)
        return number, params

    def ask_with_attrs(self, distributions: dict[str, BaseDistribution]) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """A new trial: number, parameters, and the user attrs an enqueued trial carries."""
        with writing(self.url, "start a trial"):
            trial = self.study.ask(distributions)
            attrs = dict(trial.user_attrs)
        self._handles[trial.number] = trial
        return trial.number, dict(trial.params), attrs

    def enqueue(self, params: dict[str, Any], attrs: dict[str, Any]) -> None:
        """Run these parameters next (a retry); `attrs` go onto the trial that runs them."""
        with writing(self.url, "enqueue a trial"):
            self.study.enqueue_trial(params, user_attrs=self._redactor.value(attrs), skip_if_exists=False)

    def _trial(self, number: int) -> optuna.trial.Trial:
        """A writable handle on trial `number`. Trials this process asked for keep the handle
        `study.ask()` returned. Any other (a dead driver's trial being recovered, a peer driver's)
        needs its storage id: Optuna has no public way to get a trial by number for writing
        (optuna/optuna#6365; `Study.get_trial_by_number` was proposed in #6366 and not merged), so
        this one lookup uses the storage's id mapping, private to Optuna."""
        import optuna

        if number not in self._handles:
            trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
            self._handles[number] = optuna.trial.Trial(self.study, trial_id)
        return self._handles[number]

    def should_prune(self, number: int) -> bool:
        """The study's pruner on the trial's stored intermediate values. Its rungs (which trials
        reached which resource with which value) live in the study too, so every driver of the
        study, and a resumed one, prunes against the same history."""
        with writing(self.url, f"decide whether to prune trial {number}"):
            return self._trial(number).should_prune()

    def report(self, number: int, value: float, step: int) -> None:
        """An intermediate value (against training progress) for pruning and the dashboard."""
        with writing(self.url, f"report an intermediate value of trial {number}"):
            self._trial(number).report(float(value), int(step))

    def tell(
        self,
        number: int,
        state: str,
        value: float | Sequence[float] | None = None,
        attrs: dict[str, Any] | None = None,
        infeasible: str | None = None,
    ) -> None:
        """Finish a trial: state is COMPLETE (with value: one number, or one per objective), PRUNED
        or FAIL. `infeasible` names a violated constraint, recorded before the state so samplers see it."""
        import optuna
        from optuna.trial import TrialState

        with writing(self.url, f"record the outcome of trial {number}"):
            try:
                if attrs:
                    self.set_trial_attrs(number, attrs)
                if infeasible:
                    self._trial(number).set_constraint(infeasible, 1.0)
                values = (list(value) if isinstance(value, Sequence) else value) if state == "COMPLETE" else None
                self.study.tell(number, values, state=TrialState[state])
            except optuna.exceptions.UpdateFinishedTrialError:
                # Another driver recorded it first: recovery of a driver it took for dead (this one).
                log.warning("trial %d was already recorded by another driver; its record stands", number)
        self._handles.pop(number, None)

    def add_infeasible(
        self, params: dict[str, Any], distributions: dict[str, BaseDistribution], attrs: dict[str, Any], constraint: str
    ) -> None:
        """A zero-cost PRUNED record that tells constraint-aware samplers this point is infeasible."""
        import optuna

        marker = optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            params=params,
            distributions=distributions,
            user_attrs=self._redactor.value(attrs),
        )
        marker.set_constraint(constraint, 1.0)
        with writing(self.url, "record an infeasible point"):
            self.study.add_trial(marker)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Serialize "check the budget, then ask for a trial" across the drivers of a study, so a
        trial budget of N gives exactly N trials however many drivers share it (storage.study_lock)."""
        if self._lock is None:
            self._lock = study_lock(self.url, self.name)
        return self._lock()

    def trials_used(self, *, finished_only: bool = False) -> float:
        """What the study's trials use up of a trial budget, in full-trial equivalents (`trial_share`:
        a trial stopped early counts the fraction it ran; infeasible and interrupted ones nothing)."""
        states = {"COMPLETE", "PRUNED", "FAIL"} | (set() if finished_only else {"RUNNING"})
        return sum(
            trial_share(t.state.name, t.user_attrs, t.last_step) for t in self.trials() if t.state.name in states
        )

    def trials(self, *, warm: bool = False) -> list[optuna.trial.FrozenTrial]:
        """This study's trials. Warm-start copies (another study's trials, history for the sampler:
        tuner/study/warm.py) only with `warm=True`: budgets, best, promote and disk never see them."""
        with writing(self.url, "read trials"):
            trials = self.study.get_trials(deepcopy=False)
        return trials if warm else [t for t in trials if WARM_START_ATTR not in t.user_attrs]

    def add_trials(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        with writing(self.url, "add warm-start trials"):
            self.study.add_trials(trials)

    def best(self) -> optuna.trial.FrozenTrial | None:
        """The best COMPLETE trial; None when there is none, or when the study is multi-objective
        (it has a Pareto front instead: `pareto_front`)."""
        if self.multi_objective:
            return None
        from tuner.study.front import best_of

        return best_of(self.trials(), self.directions[0])

    def pareto_front(self) -> list[optuna.trial.FrozenTrial]:
        """The COMPLETE trials no other trial beats on every objective (one trial, the best, for a
        single-objective study), by trial number."""
        from tuner.study.front import pareto_front

        return pareto_front(self.trials(), self.directions)
