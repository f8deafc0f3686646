"""Warm start: seed a new study with what an earlier study learnt (its trials that fit the new space).

`tune start --warm-start OLD` reads OLD's COMPLETE trials (same storage or `--warm-start-storage`)
and keeps those whose every parameter of the new space is present and inside the new range.
Parameters the new space does not tune are dropped; a trial that lacks one the new space tunes is
skipped. The kept ones are added to the new study as COMPLETE copies, marked with the user attr
`warm_start_from` = `<storage without password>/<study>#<number>`: TPE and GP take them as history
(they model the space from the first trial instead of sampling at random), while tuner's own
accounting (trial budget, best trial, promote, status, disk) reads `StudyStore.trials()`, which
leaves them out: they were measured on another model or data version, not in this study.

Only COMPLETE trials: a PRUNED trial's last intermediate value is not a final value, and its rung
records would enter the new study's early stopping; infeasible markers belong to the old space's
batch bounds or the old model's memory. No intermediate values are copied, for the same reason.
The source's `rerun` best trials are also enqueued, so they run first for real in the new study:
a measured anchor on the new model, which the study's own best and promote can use.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError, StorageError
from tuner.redact import redact_url
from tuner.study.storage import open_storage, writing
from tuner.study.store import WARM_START_ATTR, StudyStore

if TYPE_CHECKING:
    import optuna

    from tuner.config.experiment import Experiment
    from tuner.config.space import SearchSpace

log = logging.getLogger(__name__)

RERUN_ATTR = "warm_start_rerun"  # on an enqueued trial: the source trial whose parameters it re-measures


@dataclass(frozen=True)
class WarmSource:
    """What the user asked for: the study to learn from, its storage (None: the new study's own),
    and how many of its best configurations to run again first."""

    study: str
    storage: str | None = None
    rerun: int = 1


@dataclass
class WarmStart:
    """A checked warm start, ready to seed the new study."""

    study: str
    storage: str  # without password
    copies: list[optuna.trial.FrozenTrial]
    reruns: list[tuple[dict[str, Any], str]]  # (parameters, source reference), best first
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> trials
    source_trials: int = 0

    def record(self) -> dict[str, Any]:
        """What the study records about its warm start (attribute `warm_start`)."""
        return {
            "study": self.study,
            "storage": self.storage,
            "source_trials": self.source_trials,
            "added": len(self.copies),
            "skipped": sum(self.skipped.values()),
            "skipped_why": self.skipped,
            "enqueued": len(self.reruns),
        }

    def apply(self, store: StudyStore) -> None:
        """Add the copies and enqueue the re-runs, then record the warm start. Safe to run again on
        a study a crash left half-seeded: copies and re-runs already there are not added twice."""
        present = store.trials(warm=True)
        copied = {t.user_attrs.get(WARM_START_ATTR) for t in present}
        store.add_trials([t for t in self.copies if t.user_attrs[WARM_START_ATTR] not in copied])
        queued = {t.user_attrs.get(RERUN_ATTR) for t in present}
        for params, ref in self.reruns:
            if ref not in queued:
                store.enqueue(params, {RERUN_ATTR: ref})
        store.set_attrs({"warm_start": self.record()})


def describe(record: dict[str, Any]) -> str:
    """One line on a study's warm start, for `tune start` and `tune status`."""
    skipped = record.get("skipped", 0)
    why = "; ".join(f"{n} {reason}" for reason, n in (record.get("skipped_why") or {}).items())
    return (
        f"Warm start from {record['study']} ({record['storage']}): {record['added']} trials added as the "
        f"sampler's history (not counted as this study's trials), {skipped} skipped"
        + (f" ({why})" if why else "")
        + f"; its best {record['enqueued']} queued to run again"
    )


def plan_warm_start(
    source: WarmSource | None,
    url: str,
    name: str,
    space: SearchSpace,
    experiment: Experiment,
    recorded: dict[str, Any] | None,
) -> WarmStart | None:
    """Check a warm start before the new study is touched. `recorded`: the attributes of the study
    being resumed (None for a new study): a study is warm-started once, when it is created; starting
    it again with the same --warm-start continues it, with another one is refused."""
    if source is None:
        return None
    source_url = source.storage or url
    if recorded is not None:
        prior = recorded.get("warm_start")
        if prior and prior.get("study") == source.study and prior.get("storage") == redact_url(source_url):
            log.info("study %s was already warm-started from %s", name, source.study)
            return None
        was = f"it was warm-started from {prior.get('study')!r}" if prior else "it was not warm-started"
        raise ConfigError(
            f"a warm start seeds a new study; study {name!r} exists and {was}",
            key="--warm-start",
            value=source.study,
            fix=f"start a new --study, or drop --warm-start to continue {name!r}",
        )
    if source.study == name and redact_url(source_url) == redact_url(url):
        raise ConfigError(
            "a study cannot warm-start from itself", key="--warm-start", value=source.study, fix="name another --study"
        )
    study = _load_source(source, source_url)
    return _select(study, source, source_url, space, experiment)


def _load_source(source: WarmSource, source_url: str) -> optuna.Study:
    """The source study, read only. A missing SQLite file is not created, a storage that cannot be
    opened and an unknown study name are user errors naming the flag."""
    import optuna
    from sqlalchemy.exc import ArgumentError

    key = "--warm-start-storage" if source.storage else "--storage"
    shown = redact_url(source_url)
    if source_url.startswith("sqlite:///"):
        path = Path(source_url.removeprefix("sqlite:///").split("?")[0])
        if not path.is_file():
            raise ConfigError(
                f"no SQLite database at {path}", key=key, value=shown, fix="give the storage of the study to learn from"
            )
    try:
        storage = open_storage(source_url, read_only=True)
        with writing(source_url, "list the studies"):
            names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    except (StorageError, ArgumentError, ValueError, ImportError) as e:
        raise ConfigError(
            f"cannot open the warm-start storage: {str(e).splitlines()[0]}",
            key=key,
            value=shown,
            fix="check the SQLAlchemy URL (sqlite:///path/tuner.db, postgresql+psycopg://user@host/db)",
        ) from None
    if source.study not in names:
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
        raise ConfigError(
            f"no study named {source.study!r} in {shown} (its studies: {listed})",
            key="--warm-start",
            value=source.study,
            fix="name one of those studies, or point --warm-start-storage at the storage that holds it",
        )
    with writing(source_url, f"read study {source.study!r}"):
        return optuna.load_study(study_name=source.study, storage=storage)


def _select(
    study: optuna.Study, source: WarmSource, source_url: str, space: SearchSpace, experiment: Experiment
) -> WarmStart:
    """The source trials that fit the new space, as copies for the new study."""
    import optuna
    from optuna.trial import TrialState

    if experiment.multi_objective:  # not built yet: copies would need every objective's value
        raise ConfigError(
            f"warm start is for studies of one objective; the new study is to {experiment.describe()}",
            key="--warm-start",
            value=source.study,
            fix="drop --warm-start (or warm-start a single-objective study of one of these metrics)",
        )
    if len(study.directions) != 1 or study.direction.name.lower() != experiment.direction:
        raise ConfigError(
            f"study {source.study!r} optimizes {[d.name.lower() for d in study.directions]}, "
            f"the new study {experiment.direction} {experiment.metric}: its values do not carry over",
            key="--warm-start",
            value=source.study,
            fix="warm-start from a study of the same metric and direction",
        )
    with writing(source_url, f"read study {source.study!r}"):
        attrs = study.user_attrs
        metric = attrs.get("metric") or (study.metric_names or [None])[0]
        trials = study.get_trials(deepcopy=False)
    if metric is not None and metric != experiment.metric:
        raise ConfigError(
            f"study {source.study!r} measured {metric!r}, the new study {experiment.metric!r}",
            key="--warm-start",
            value=source.study,
            fix="warm-start from a study of the same metric",
        )
    where = f"{redact_url(source_url)}/{source.study}"
    distributions = space.distributions()
    skipped: Counter[str] = Counter()
    usable: list[tuple[float, dict[str, Any], str]] = []
    for t in trials:
        if t.state != TrialState.COMPLETE or t.value is None or not math.isfinite(t.value):
            skipped[f"not COMPLETE ({t.state.name.lower()})"] += 1
        elif WARM_START_ATTR in t.user_attrs:
            skipped["warm-start copies from a third study"] += 1
        else:
            params, reason = _fit(t.params, distributions)
            if params is None:
                skipped[reason] += 1
            else:
                usable.append((t.value, params, f"{where}#{t.number}"))
    if not usable:
        why = "; ".join(f"{n} {reason}" for reason, n in skipped.most_common()) or "it has no trials"
        raise ConfigError(
            f"study {source.study!r} has no COMPLETE trial that fits the new search space ({why})",
            key="--warm-start",
            value=source.study,
            fix="warm-start from a study that tuned these parameters in overlapping ranges, widen "
            "evolving.tunable_params, or drop --warm-start",
        )
    copies = [
        optuna.trial.create_trial(
            value=value,
            params=params,
            distributions={n: distributions[n] for n in params},
            user_attrs={WARM_START_ATTR: ref},
        )
        for value, params, ref in usable
    ]
    best_first = sorted(usable, key=lambda u: u[0], reverse=experiment.direction == "maximize")
    reruns = [(params, ref) for _, params, ref in best_first[: source.rerun]]
    return WarmStart(source.study, redact_url(source_url), copies, reruns, dict(skipped), len(trials))


def _fit(params: dict[str, Any], distributions: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The trial's values of the new space's parameters (others dropped), or None and why not.
    Range check: the distribution's own `_contains`, the rule `Study.add_trial` enforces (Optuna
    has no public membership test)."""
    fitted: dict[str, Any] = {}
    for name, dist in distributions.items():
        if name not in params:
            return None, f"lack {name}"
        try:
            internal = dist.to_internal_repr(params[name])
            inside = dist._contains(internal)
        except (ValueError, TypeError):
            inside = False
        if not inside:
            return None, f"have {name} outside the new space's {_describe(dist)}"
        fitted[name] = dist.to_external_repr(internal)
    return fitted, ""


def _describe(dist: Any) -> str:
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return f"choices {list(choices)}"
    return f"range [{dist.low}, {dist.high}]" + (
        f" step {dist.step}" if getattr(dist, "step", None) not in (None, 1) else ""
    )
