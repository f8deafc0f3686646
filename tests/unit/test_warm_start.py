"""Warm start (`tune start --warm-start OLD`): which of OLD's trials seed the new study, how they are
marked and recorded, and that tuner's own accounting (budget, best, promote) never takes them for
the new study's trials. Real SQLite (and PostgreSQL) studies throughout."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from tests.storage import BACKENDS, storage_url, unique_name
from tuner.config.block import load_block
from tuner.config.experiment import Experiment
from tuner.config.space import Param, SearchSpace
from tuner.errors import ConfigError
from tuner.study.store import WARM_START_ATTR, StudyStore
from tuner.study.warm import RERUN_ATTR, WarmSource, describe, plan_warm_start

LR = FloatDistribution(1e-5, 1e-3, log=True)
EPOCHS = IntDistribution(1, 5)
BS = CategoricalDistribution([1, 2, 4, 8])
WARMUP = FloatDistribution(0.0, 0.2)

SPACE = SearchSpace(
    params={
        "learning_rate": Param("learning_rate", "float", "training", 1e-5, 1e-3, log=True),
        "num_train_epochs": Param("num_train_epochs", "int", "training", 1, 3),
        "per_device_train_batch_size": Param("per_device_train_batch_size", "categorical", "training", choices=(4, 8)),
    }
)
LOSS = Experiment()


def _source(url: str, name: str = "old", direction: str = "minimize", metric: str | None = "eval_loss") -> None:
    """A finished study as tuner (or plain Optuna) leaves it: trials in every state."""
    study = optuna.create_study(storage=url, study_name=name, direction=direction)
    if metric:
        study.set_user_attr("metric", metric)
    dists = {"learning_rate": LR, "num_train_epochs": EPOCHS, "per_device_train_batch_size": BS}

    def add(value: float | None, state: TrialState = TrialState.COMPLETE, **params: object) -> None:
        used = {k: v for k, v in {**dists, "warmup_ratio": WARMUP}.items() if k in params}
        study.add_trial(create_trial(state=state, value=value, params=params, distributions=used))

    add(0.9, learning_rate=1e-4, num_train_epochs=2, per_device_train_batch_size=4)  # 0: fits
    add(0.5, learning_rate=3e-4, num_train_epochs=3, per_device_train_batch_size=8, warmup_ratio=0.1)  # 1: fits, best
    add(0.7, learning_rate=2e-4, num_train_epochs=5, per_device_train_batch_size=8)  # 2: epochs outside [1, 3]
    add(0.8, learning_rate=2e-4, num_train_epochs=2, per_device_train_batch_size=2)  # 3: bs not a choice
    add(0.6, learning_rate=2e-4, num_train_epochs=2)  # 4: lacks the batch size
    add(None, TrialState.PRUNED, learning_rate=5e-4, num_train_epochs=1, per_device_train_batch_size=4)  # 5
    add(None, TrialState.FAIL, learning_rate=5e-4, num_train_epochs=1, per_device_train_batch_size=4)  # 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_keeps_the_complete_trials_that_fit_the_new_space_and_says_why_others_not(backend, tmp_path):
    source_url, name = storage_url(backend, tmp_path), unique_name("old")
    _source(source_url, name)
    new_url = f"sqlite:///{tmp_path / 'new.db'}"
    warm = plan_warm_start(WarmSource(name, source_url, rerun=1), new_url, "new", SPACE, LOSS, None)

    assert warm is not None
    assert [t.params for t in warm.copies] == [
        {"learning_rate": 1e-4, "num_train_epochs": 2, "per_device_train_batch_size": 4},
        {"learning_rate": 3e-4, "num_train_epochs": 3, "per_device_train_batch_size": 8},  # warmup_ratio dropped
    ]
    assert [t.value for t in warm.copies] == [0.9, 0.5]
    assert all(t.state == TrialState.COMPLETE and not t.intermediate_values for t in warm.copies)
    assert warm.copies[1].user_attrs == {WARM_START_ATTR: f"{source_url}/{name}#1"}
    assert warm.skipped == {
        "have num_train_epochs outside the new space's range [1, 3]": 1,
        "have per_device_train_batch_size outside the new space's choices [4, 8]": 1,
        "lack per_device_train_batch_size": 1,
        "not COMPLETE (pruned)": 1,
        "not COMPLETE (fail)": 1,
    }
    assert warm.reruns == [(warm.copies[1].params, f"{source_url}/{name}#1")]  # the best, to measure again
    assert warm.record() == {
        "study": name,
        "storage": source_url,
        "source_trials": 7,
        "added": 2,
        "skipped": 5,
        "skipped_why": warm.skipped,
        "enqueued": 1,
    }
    assert "2 trials added" in describe(warm.record()) and "its best 1 queued to run again" in describe(warm.record())


def test_maximize_reruns_the_highest_and_zero_reruns_none(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url, direction="maximize", metric="eval_accuracy")
    accuracy = Experiment(metric="eval_accuracy")
    warm = plan_warm_start(WarmSource("old", rerun=5), url, "new", SPACE, accuracy, None)
    assert warm is not None and [p["learning_rate"] for p, _ in warm.reruns] == [1e-4, 3e-4]  # 0.9 first
    none = plan_warm_start(WarmSource("old", rerun=0), url, "new", SPACE, accuracy, None)
    assert none is not None and none.reruns == [] and none.record()["enqueued"] == 0


def test_the_storage_password_never_reaches_the_marks_or_the_record(tmp_path):
    from tuner.study import warm as warm_module

    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url)
    study = optuna.load_study(study_name="old", storage=url)
    secret_url = "postgresql+psycopg://tuner:s3cret-pw@db.example:5432/studies"
    planned = warm_module._select(study, WarmSource("old", secret_url), secret_url, SPACE, LOSS)
    shown = "postgresql+psycopg://tuner:***@db.example:5432/studies"
    assert planned.record()["storage"] == shown
    assert {t.user_attrs[WARM_START_ATTR] for t in planned.copies} == {f"{shown}/old#0", f"{shown}/old#1"}
    assert "s3cret-pw" not in repr(planned.record()) + repr([t.user_attrs for t in planned.copies])


def test_a_storage_that_cannot_be_opened_is_a_user_error_without_its_password(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    closed = "postgresql+psycopg://tuner:s3cret-pw@127.0.0.1:1/studies"
    with pytest.raises(ConfigError, match=r"--warm-start-storage: cannot open the warm-start storage") as e:
        plan_warm_start(WarmSource("old", closed), url, "new", SPACE, LOSS, None)
    assert "s3cret-pw" not in str(e.value) and "tuner:***@127.0.0.1:1" in str(e.value)
    missing = tmp_path / "typo.db"
    with pytest.raises(ConfigError, match=r"no SQLite database at .*typo.db"):
        plan_warm_start(WarmSource("old", f"sqlite:///{missing}"), url, "new", SPACE, LOSS, None)
    assert not missing.exists()  # a typo does not leave an empty database behind


def test_unknown_study_lists_the_studies_of_that_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url, "lr-sweep")
    _source(url, "qwen-v1")
    with pytest.raises(ConfigError, match=r"no study named 'qwen-v2' in .* \(its studies: lr-sweep, qwen-v1\)"):
        plan_warm_start(WarmSource("qwen-v2"), url, "new", SPACE, LOSS, None)
    with pytest.raises(ConfigError, match=r"cannot warm-start from itself"):
        plan_warm_start(WarmSource("qwen-v1"), url, "qwen-v1", SPACE, LOSS, None)


def test_other_direction_or_metric_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url, "acc", direction="maximize", metric=None)
    with pytest.raises(ConfigError, match=r"optimizes \['maximize'\], the new study minimize eval_loss"):
        plan_warm_start(WarmSource("acc"), url, "new", SPACE, LOSS, None)
    _source(url, "other-metric", metric="eval_rougeL")
    with pytest.raises(ConfigError, match=r"measured 'eval_rougeL', the new study 'eval_loss'"):
        plan_warm_start(WarmSource("other-metric"), url, "new", SPACE, LOSS, None)


def test_a_study_of_several_objectives_is_not_warm_started(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url)
    two = Experiment(metrics=[{"name": "eval_loss"}, {"name": "gpu_hours"}])
    with pytest.raises(ConfigError, match=r"--warm-start: warm start is for studies of one objective; .*gpu_hours"):
        plan_warm_start(WarmSource("old"), url, "new", SPACE, two, None)


def test_a_source_without_usable_trials_says_why(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url)
    narrow = SearchSpace(params={**SPACE.params, "warmup_ratio": Param("warmup_ratio", "float", "training", 0.0, 0.05)})
    with pytest.raises(ConfigError) as e:
        plan_warm_start(WarmSource("old"), url, "new", narrow, LOSS, None)
    message = str(e.value)
    assert "has no COMPLETE trial that fits the new search space" in message
    assert (
        "(1 lack warmup_ratio; 1 have warmup_ratio outside the new space's range [0.0, 0.05]; "
        "1 have num_train_epochs outside the new space's range [1, 3]; 1 have per_device_train_batch_size "
        "outside the new space's choices [4, 8]; 1 lack per_device_train_batch_size; 1 not COMPLETE (pruned); "
        "1 not COMPLETE (fail))"
    ) in message
    assert "Fix: warm-start from a study that tuned these parameters" in message
    optuna.create_study(storage=url, study_name="empty")
    with pytest.raises(ConfigError, match=r"'empty' has no COMPLETE trial .* \(it has no trials\)"):
        plan_warm_start(WarmSource("empty"), url, "new", SPACE, LOSS, None)


def test_seeding_is_marked_recorded_and_safe_to_repeat(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url)
    warm = plan_warm_start(WarmSource("old"), url, "new", SPACE, LOSS, None)
    assert warm is not None
    store = StudyStore.open(url, "new")
    warm.apply(store)
    warm.apply(store)  # a crash before the study's attrs were written: `tune start` seeds again
    everything = store.trials(warm=True)
    assert [t.state for t in everything] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.WAITING]
    assert store.trials() == [everything[2]]  # the enqueued re-run is this study's trial; copies are not
    assert everything[2].user_attrs == {RERUN_ATTR: f"{url}/old#1"}
    assert store.attrs()["warm_start"]["added"] == 2
    # What TPE and GP read: the copies are COMPLETE trials of the Optuna study.
    complete = store.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert [t.value for t in complete] == [0.9, 0.5]


def test_budget_best_promote_and_disk_ignore_the_copies(tmp_path):
    from tuner.outputs.promote import pick_trial
    from tuner.outputs.summary import state_counts
    from tuner.study.budget import Ledger, parse_budget
    from tuner.study.gate import BudgetGate

    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url)
    warm = plan_warm_start(WarmSource("old", rerun=0), url, "new", SPACE, LOSS, None)
    assert warm is not None
    store = StudyStore.open(url, "new")
    warm.apply(store)
    gate = BudgetGate(store, Ledger(parse_budget("1")), processes=1)
    assert gate.spent() == 0.0 and gate.can_start()  # 2 copies, budget 1
    assert store.best() is None
    with pytest.raises(ConfigError, match=r"has no COMPLETE trial to promote"):
        pick_trial(store, None)
    with pytest.raises(ConfigError, match=r"has no trial 0"):  # a copy's number is not this study's trial
        pick_trial(store, 0)
    # The study's own trial is worse than both copies, and still its best.
    number, _ = store.ask(SPACE.distributions())
    store.tell(number, "COMPLETE", 1.5)
    assert store.best().number == number == 2 and pick_trial(store, None).number == 2
    assert gate.spent() == 1.0 and not gate.can_start()
    assert state_counts(store.trials()) == {"complete": 1, "running": 0, "pruned": 0, "failed": 0, "infeasible": 0}


def test_tpe_models_from_the_first_trial_with_a_warm_start(tmp_path):
    """TPE samples its startup trials at random; warm-start copies count as history, so the first
    trial of a warm-started study is already modelled on them."""
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    study = optuna.create_study(storage=url, study_name="old")
    dists = {"learning_rate": LR, "num_train_epochs": EPOCHS, "per_device_train_batch_size": BS}
    for i in range(12):  # the lower the learning rate, the better
        lr = 1e-5 * 10 ** (2 * i / 11)
        params = {"learning_rate": lr, "num_train_epochs": 1 + i % 3, "per_device_train_batch_size": (4, 8)[i % 2]}
        study.add_trial(create_trial(value=math.log10(lr), params=params, distributions=dists))
    warm = plan_warm_start(WarmSource("old", rerun=0), url, "new", SPACE, LOSS, None)
    assert warm is not None and len(warm.copies) == 12

    def first_lrs(seeded: bool) -> list[float]:
        lrs = []
        for seed in range(5):
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=3, constant_liar=True)
            store = StudyStore.open(url, f"new-{seeded}-{seed}", sampler=sampler)
            if seeded:
                warm.apply(store)
            lrs.append(store.ask(SPACE.distributions())[1]["learning_rate"])
        return lrs

    assert max(first_lrs(True)) < 1e-4 < max(first_lrs(False))


def test_tune_start_warm_starts_a_new_study_only(make_block, tmp_path):
    from tuner.orchestrate.options import StartOptions
    from tuner.orchestrate.prepare import prepare_study

    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    old = optuna.create_study(storage=url, study_name="v1")
    old.set_user_attr("metric", "eval_loss")
    for lr, value in ((1e-4, 0.8), (3e-4, 0.6)):
        old.add_trial(create_trial(value=value, params={"learning_rate": lr}, distributions={"learning_rate": LR}))
    demo_space = {"evolving.tunable_params": {"learning_rate": {}}}
    block = load_block(make_block(demo_space))
    options = StartOptions(
        budget="2", study="v2", storage=url, trials_dir=tmp_path, warm_start=WarmSource("v1"), seed=0
    )

    def start(o: StartOptions) -> StudyStore:
        prepared = prepare_study(block, o)
        prepared.lease.release()
        return prepared.session.store

    store = start(options)
    assert store.attrs()["warm_start"] == {
        "study": "v1",
        "storage": url,
        "source_trials": 2,
        "added": 2,
        "skipped": 0,
        "skipped_why": {},
        "enqueued": 1,
    }
    assert len(store.trials(warm=True)) == 3
    assert len(start(options).trials(warm=True)) == 3  # the same command again continues: nothing added twice
    with pytest.raises(ConfigError, match=r"a warm start seeds a new study; study 'v2' exists and it was warm-started"):
        start(StartOptions(**{**vars(options), "warm_start": WarmSource("v0")}))
    start(StartOptions(**{**vars(options), "study": "plain", "warm_start": None}))
    with pytest.raises(ConfigError, match=r"--warm-start: .*'plain' exists and it was not warm-started"):
        start(StartOptions(**{**vars(options), "study": "plain"}))
    with pytest.raises(ConfigError, match=r"--warm-start-rerun: must be >= 0"):
        start(StartOptions(**{**vars(options), "study": "v3", "warm_start": WarmSource("v1", rerun=-1)}))
    assert "v3" not in optuna.get_all_study_names(url)  # refused before the study was touched


def test_warm_start_flags_without_a_study_are_refused():
    from tuner.orchestrate.options import warm_source

    assert warm_source(None, None, None) is None
    assert warm_source("v1", None, None) == WarmSource("v1", None, 1)
    with pytest.raises(ConfigError, match=r"--warm-start-storage: needs --warm-start STUDY \(got 'sqlite:///x.db'\)"):
        warm_source(None, "sqlite:///x.db", None)
    with pytest.raises(ConfigError, match=r"--warm-start-rerun: needs --warm-start STUDY"):
        warm_source(None, None, 2)
    with pytest.raises(ConfigError, match=r"--warm-start-storage: .*\*\*\*@h/db"):
        warm_source(None, "postgresql+psycopg://u:pw@h/db", None)


def test_the_storage_default_is_the_new_study_s(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _source(url)
    warm = plan_warm_start(WarmSource("old"), url, "new", SPACE, LOSS, None)
    assert warm is not None and warm.storage == url and len(warm.copies) == 2


def test_cli_refuses_a_warm_start_storage_without_a_study_and_documents_the_flags():
    import os
    import subprocess
    import sys

    tune = str(Path(sys.executable).with_name("tune"))
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [tune, "start", "--budget", "1", "--warm-start-storage", "sqlite:///elsewhere.db"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "--warm-start-storage: needs --warm-start STUDY" in done.stderr and "Traceback" not in done.stderr
    shown = subprocess.run([tune, "start", "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert all(flag in shown.stdout for flag in ("--warm-start ", "--warm-start-storage", "--warm-start-rerun"))
