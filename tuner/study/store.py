"""The Optuna study in SQL: the source of truth of a tuning run. The only module that talks to
Optuna storage.

Every write goes through `_writing`, which turns SQLAlchemy/Optuna storage failures into a
`StorageError` naming the URL (password hidden): a study that cannot record an outcome stops
instead of silently losing it. Attribute values are scrubbed of the block's secrets.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError, StorageError
from tuner.redact import Redactor, redact_url

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

    from tuner.config.space import SearchSpace

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "gp", "random", "grid", "cmaes")


def default_storage(trials_dir: Path) -> str:
    return f"sqlite:///{trials_dir.expanduser().resolve() / 'tuner.db'}"


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
        return optuna.samplers.GridSampler(grid_points(space), seed=seed)
    raise ConfigError("is not a sampler", key="--sampler", value=name, fix=f"use one of {', '.join(SAMPLERS)}")


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


@contextlib.contextmanager
def _writing(url: str, what: str) -> Iterator[None]:
    import sqlite3

    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError, sqlite3.Error) as e:
        reason = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise StorageError(
            f"study storage {redact_url(url)}: cannot {what}: {reason}. Fix: check that the database is reachable "
            "and writable (for several drivers use PostgreSQL: --storage postgresql+psycopg://...)"
        ) from e


def _use_wal(path: Path) -> None:
    """WAL journal: readers (the dashboard, `tune status`) never block the driver's writes."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path, timeout=60)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def open_storage(url: str, *, read_only: bool = False) -> optuna.storages.BaseStorage:
    import optuna

    if not logging.getLogger("tuner").isEnabledFor(logging.INFO):
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" chatter

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        engine_kwargs["connect_args"] = {"timeout": 60}
        if not read_only:
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            with _writing(url, "open the storage"):
                _use_wal(path)
    else:
        engine_kwargs["pool_pre_ping"] = True
    with _writing(url, "open the storage"):
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=read_only,
                                             skip_table_creation=read_only)  # fmt: skip
    if url.startswith("sqlite:///") and not read_only:
        _relax_sync(storage)
    return storage


def _relax_sync(storage: optuna.storages.RDBStorage) -> None:
    """In WAL mode, synchronous=NORMAL still survives a crashed process (a power cut may lose the
    last commits; every trial also keeps its result.json). It makes each commit ~10x cheaper, and a
    trial's bookkeeping is dozens of commits (Optuna writes one attribute per transaction)."""
    from sqlalchemy import event

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened before the listener get replaced


class StudyStore:
    """One study: ask, report, tell, attributes. Errors become StorageError."""

    def __init__(self, study: optuna.Study, url: str, secrets: tuple[str, ...] = ()) -> None:
        self.study, self.url = study, url
        self._redactor = Redactor(secrets)
        self._trial_ids: dict[int, int] = {}

    @classmethod
    def open(
        cls,
        url: str,
        name: str,
        *,
        direction: str = "minimize",
        sampler: optuna.samplers.BaseSampler | None = None,
        secrets: tuple[str, ...] = (),
        create: bool = True,
    ) -> StudyStore:
        import optuna

        storage = open_storage(url)
        with _writing(url, f"open study {name!r}"):
            if create:
                study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                            sampler=sampler, load_if_exists=True)  # fmt: skip
            else:
                try:
                    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
                except KeyError:
                    raise ConfigError(f"no study named {name!r} in {redact_url(url)}", key="STUDY", value=name,
                                      fix="run `tune status` to list the studies") from None  # fmt: skip
        return cls(study, url, secrets)

    @property
    def name(self) -> str:
        return self.study.study_name

    # -- attributes ------------------------------------------------------------------------
    def attrs(self) -> dict[str, Any]:
        with _writing(self.url, "read study attributes"):
            return dict(self.study.user_attrs)

    def set_attrs(self, attrs: dict[str, Any]) -> None:
        with _writing(self.url, "write study attributes"):
            for key, value in attrs.items():
                self.study.set_user_attr(key, self._redactor.value(value))

    def set_metric_name(self, name: str) -> None:
        """Name the objective (the dashboard and plots show it instead of 'Objective 0')."""
        with _writing(self.url, "name the study's metric"):
            self.study.set_metric_names([name])

    def set_trial_attrs(self, number: int, attrs: dict[str, Any]) -> None:
        trial_id = self._trial_id(number)
        with _writing(self.url, f"write attributes of trial {number}"):
            for key, value in attrs.items():
                self.study._storage.set_trial_user_attr(trial_id, key, self._redactor.value(value))

    # -- trials ----------------------------------------------------------------------------
    def ask(self, distributions: dict[str, BaseDistribution]) -> tuple[int, dict[str, Any]]:
        number, params, _ = self.ask_with_attrs(distributions)
        return number, params

    def ask_with_attrs(
        self, distributions: dict[str, BaseDistribution]
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """A new trial: number, parameters, and the user attrs an enqueued trial carries."""
        with _writing(self.url, "start a trial"):
            trial = self.study.ask(distributions)
            attrs = dict(trial.user_attrs)
        self._trial_ids[trial.number] = trial._trial_id
        return trial.number, dict(trial.params), attrs

    def enqueue(self, params: dict[str, Any], attrs: dict[str, Any]) -> None:
        """Run these parameters next (a retry); `attrs` go onto the trial that runs them."""
        with _writing(self.url, "enqueue a trial"):
            self.study.enqueue_trial(params, user_attrs=self._redactor.value(attrs), skip_if_exists=False)

    def _trial_id(self, number: int) -> int:
        if number not in self._trial_ids:
            with _writing(self.url, f"find trial {number}"):
                self._trial_ids[number] = self.study._storage.get_trial_id_from_study_id_trial_number(
                    self.study._study_id, number
                )
        return self._trial_ids[number]

    def report(self, number: int, value: float, step: int) -> None:
        """An intermediate value (against training progress) for pruning and the dashboard."""
        trial_id = self._trial_id(number)
        with _writing(self.url, f"report an intermediate value of trial {number}"):
            self.study._storage.set_trial_intermediate_value(trial_id, int(step), float(value))

    def tell(
        self,
        number: int,
        state: str,
        value: float | None = None,
        attrs: dict[str, Any] | None = None,
        infeasible: str | None = None,
    ) -> None:
        """Finish a trial: state is COMPLETE (with value), PRUNED or FAIL. `infeasible` names a
        violated constraint, recorded before the state so samplers see it."""
        import optuna
        from optuna.trial import TrialState

        if attrs:
            self.set_trial_attrs(number, attrs)
        with _writing(self.url, f"record the outcome of trial {number}"):
            if infeasible:
                optuna.trial.Trial(self.study, self._trial_id(number)).set_constraint(infeasible, 1.0)
            self.study.tell(number, value if state == "COMPLETE" else None, state=TrialState[state])

    def add_infeasible(
        self, params: dict[str, Any], distributions: dict[str, BaseDistribution], attrs: dict[str, Any], constraint: str
    ) -> None:
        """A zero-cost PRUNED record that tells constraint-aware samplers this point is infeasible."""
        import optuna

        marker = optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED, params=params, distributions=distributions,
            user_attrs=self._redactor.value(attrs),
        )  # fmt: skip
        marker.set_constraint(constraint, 1.0)
        with _writing(self.url, "record an infeasible point"):
            self.study.add_trial(marker)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Serialize "check the budget, then ask for a trial" across the drivers of a study, so a
        trial budget of N gives exactly N trials however many drivers share it. PostgreSQL: an
        advisory lock; SQLite allows a single driver, so nothing to do."""
        if self.url.startswith("sqlite"):
            yield
            return
        import sqlalchemy

        if getattr(self, "_lock_engine", None) is None:
            self._lock_engine = sqlalchemy.create_engine(self.url, pool_pre_ping=True)
        key = int(hashlib.sha1(f"tuner:{self.name}".encode()).hexdigest()[:15], 16)  # noqa: S324 - a lock id
        with _writing(self.url, "lock the study"), self._lock_engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()

    def count_trials(self, *, finished_only: bool = False) -> int:
        """Trials that use up a trial budget: started (or finished) ones, without infeasible points
        (never run) and interrupted ones (they run again)."""
        states = {"COMPLETE", "PRUNED", "FAIL"} | (set() if finished_only else {"RUNNING"})
        return sum(1 for t in self.trials() if t.state.name in states
                   and t.user_attrs.get("exit_class") not in ("infeasible", "interrupted"))  # fmt: skip

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        with _writing(self.url, "read trials"):
            return self.study.get_trials(deepcopy=False)

    def best(self) -> optuna.trial.FrozenTrial | None:
        from optuna.trial import TrialState

        done = [t for t in self.trials() if t.state == TrialState.COMPLETE and t.value is not None]
        if not done:
            return None
        pick = min if self.study.direction.name == "MINIMIZE" else max
        return pick(done, key=lambda t: t.value)  # type: ignore[arg-type, return-value]


def study_names(url: str) -> list[str]:
    import optuna

    storage = open_storage(url)
    with _writing(url, "list studies"):
        return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
