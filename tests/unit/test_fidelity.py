"""The study as GP sees it under early stopping (tuner.study.fidelity): which fidelity it models,
what each trial becomes there, and `--sampler gp` using it once ASHA has stopped trials."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tuner.outputs.summary import modelled_text
from tuner.study.fidelity import (
    FINAL,
    MODELLED,
    PREDICTED,
    StudyAtFidelity,
    at_fidelity,
    fidelity,
    predicted_finals,
    rung_aware_gp,
    stopped_at_a_rung,
)
from tuner.study.samplers import make_sampler

SPACE = {"x": FloatDistribution(0.0, 1.0)}
RUNG_1, RUNG_2 = 17, 50  # samples seen
FIRST, SECOND = 0, 1  # their indexes: the fidelities below FINAL


def trial(state: str, curve: dict[int, float], value: float | None = None, x: float = 0.5) -> optuna.trial.FrozenTrial:
    if state == "PRUNED" and value is None and curve:
        value = curve[max(curve)]
    return create_trial(
        state=TrialState[state],
        params={"x": x},
        distributions=SPACE,
        value=value if state != "RUNNING" else None,
        intermediate_values=curve,
    )


def stopped(at_first: float) -> optuna.trial.FrozenTrial:
    return trial("PRUNED", {RUNG_1: at_first})


def test_the_final_values_once_enough_trials_finished():
    trials = [trial("COMPLETE", {RUNG_1: 3.0, RUNG_2: 2.0}, 1.0)] * 3 + [stopped(5.0)]
    assert fidelity(trials, min_points=3) == FINAL
    assert fidelity(trials, min_points=4) == FIRST  # 3 finished, 4 values at the first rung


def test_the_furthest_rung_with_enough_values_before_that():
    went_on = trial("PRUNED", {RUNG_1: 3.0, RUNG_2: 2.5})
    trials = [went_on, went_on, trial("RUNNING", {RUNG_1: 3.1, RUNG_2: 2.4}), stopped(4.0), stopped(4.5)]
    assert fidelity(trials, min_points=3) == SECOND  # 3 values at the second rung
    assert fidelity(trials, min_points=4) == FIRST  # 5 at the first, 3 at the second
    assert fidelity(trials, min_points=6) == FIRST  # none has enough: the rung most trials reached


def test_a_rung_is_the_kth_value_whatever_the_global_batch():
    """Trials evaluate at the first step at or past a rung: at batch 1, 4 and 16 the rung at 17 samples
    is reported at 17, 20 and 32 samples, the one at 50 at 50, 52 and 64. They are the same rungs."""
    trials = [
        trial("PRUNED", {17: 3.0, 50: 2.5}),
        trial("PRUNED", {20: 3.2, 52: 2.7}),
        trial("RUNNING", {32: 3.1, 64: 2.6}),
    ]
    assert fidelity(trials, min_points=3) == SECOND
    assert [t.value for t in at_fidelity(trials, SECOND, minimize=True)] == [2.5, 2.7, 2.6]


def test_values_at_the_fidelity_trials_stopped_before_it_count_as_its_worst():
    trials = [
        trial("COMPLETE", {RUNG_1: 3.0, RUNG_2: 2.0}, 1.0),
        trial("PRUNED", {RUNG_1: 3.5, RUNG_2: 2.8}),
        stopped(4.0),
        trial("RUNNING", {RUNG_1: 3.2}),
        trial("RUNNING", {}),
        trial("FAIL", {}),
    ]
    view = at_fidelity(trials, SECOND, minimize=True)
    assert [(t.state, t.value) for t in view] == [
        (TrialState.COMPLETE, 2.0),
        (TrialState.COMPLETE, 2.8),
        (TrialState.COMPLETE, 2.8),  # stopped at the first rung: the worst seen at the second
        (TrialState.RUNNING, None),
        (TrialState.RUNNING, None),
    ]
    assert [t.value for t in at_fidelity(trials, SECOND, minimize=False)][:3] == [2.0, 2.8, 2.0]
    assert [t.value for t in at_fidelity(trials, FINAL, minimize=True)][:3] == [1.0, 1.0, 1.0]
    assert trials[1].state == TrialState.PRUNED and trials[1].value == 2.8  # the records are untouched


def finished(at_first: float, final: float, x: float = 0.5) -> optuna.trial.FrozenTrial:
    return trial("COMPLETE", {RUNG_1: at_first, RUNG_2: final + 0.1}, final, x=x)


def test_once_three_trials_finished_a_stopped_trial_gets_the_final_value_its_rung_predicts():
    """The finished trials lie on final = 0.5 * rung 1 + 0.1: a trial stopped at rung 1 with 2.0 is
    modelled at 1.1. Running trials stay pending; failed ones and infeasible markers stay out."""
    marker = create_trial(state=TrialState.PRUNED, params={"x": 0.1}, distributions=SPACE)
    marker.set_constraint("memory", 1.0)
    line = [finished(r, 0.5 * r + 0.1) for r in (1.0, 3.0, 5.0)]
    trials = [*line, stopped(2.0), trial("RUNNING", {RUNG_1: 1.5}), trial("FAIL", {}), marker]
    assert predicted_finals(trials[:2] + trials[3:], minimize=True) is None  # 2 finished: too few
    view = predicted_finals(trials, minimize=True)
    assert [(t.state, t.value) for t in view] == [
        *[(TrialState.COMPLETE, t.value) for t in line],
        (TrialState.COMPLETE, pytest.approx(1.1)),
        (TrialState.RUNNING, None),
    ]
    assert trials[3].state == TrialState.PRUNED and trials[3].value == 2.0  # the records are untouched


def test_a_diverged_trial_is_the_worst_and_a_warm_starts_copies_predict_nothing():
    """A trial that diverged after a good first rung would be predicted the best: it is the worst. A warm
    start's copies (another study's final values, no rung values) are not pairs to fit a line on."""
    line = [finished(r, 0.5 * r + 0.1) for r in (1.0, 3.0, 5.0)]
    blown_up = stopped(0.1)
    blown_up.set_user_attr("exit_class", "diverged")
    assert not stopped_at_a_rung(blown_up) and stopped_at_a_rung(stopped(0.1))
    assert predicted_finals([*line, blown_up], minimize=True)[-1].value == pytest.approx(2.6)  # the worst
    assert at_fidelity([*line, blown_up], FINAL, minimize=True)[-1].value == pytest.approx(2.6)
    copies = [trial("COMPLETE", {}, v) for v in (0.2, 0.4, 0.6)]
    assert predicted_finals([*copies, stopped(2.0)], minimize=True) is None
    assert predicted_finals([*copies, *line, stopped(2.0)], minimize=True)[-1].value == pytest.approx(1.1)


def test_a_rung_that_ranks_the_end_backwards_predicts_the_mean_and_one_without_pairs_the_worst():
    backwards = [finished(r, 3.0 - r) for r in (0.5, 1.0, 2.0)]  # a better rung value, a worse end
    view = predicted_finals([*backwards, stopped(0.1)], minimize=True)
    assert view[-1].value == pytest.approx(sum(t.value for t in backwards) / 3)  # slope 0: no information
    only_first = [trial("COMPLETE", {RUNG_1: r}, r) for r in (1.0, 2.0, 3.0)]  # none reached rung 2
    went_on = trial("PRUNED", {RUNG_1: 0.1, RUNG_2: 0.1})
    assert predicted_finals([*only_first, went_on], minimize=True)[-1].value == 3.0
    assert predicted_finals([*only_first, went_on], minimize=False)[-1].value == 1.0


def _asha_study(n_stopped: int) -> optuna.Study:
    study = optuna.create_study()
    for i in range(n_stopped):
        study.add_trial(trial("PRUNED", {RUNG_1: float(i)}, x=i / n_stopped))
    study.add_trial(trial("COMPLETE", {RUNG_1: 0.5, RUNG_2: 0.4}, 0.3, x=0.9))
    return study


def test_gp_models_the_study_until_asha_stops_a_trial_then_the_rung_values():
    sampler = rung_aware_gp(0, 5, dimensions=1)
    whole = _asha_study(0)
    assert sampler._seen(whole) is whole
    seen = sampler._seen(_asha_study(6))
    assert isinstance(seen, StudyAtFidelity) and seen.level == FIRST
    assert len(seen.get_trials(states=(TrialState.COMPLETE,))) == 7


def test_one_ask_reads_the_trials_once(monkeypatch):
    """GP asks for its view twice per trial (the search space, then the sample): one storage read,
    and once the ask is over the sampler holds no copy of the study while the trial trains."""
    study = _asha_study(6)
    study.sampler = rung_aware_gp(0, 5, dimensions=1)
    reads = []
    real = study.get_trials
    monkeypatch.setattr(study, "get_trials", lambda *a, **k: reads.append(1) or real(*a, **k))
    study.ask(SPACE)
    assert len(reads) == 1
    assert study.sampler._last == (None, None, "")


def test_each_proposed_trial_records_what_gp_learnt_from():
    """The dashboard shows why GP proposed a point: the rung it modelled, the final values, or its
    random start-up. Enqueued trials (fixed parameters) are not GP's and record nothing."""
    study = _asha_study(6)
    study.sampler = rung_aware_gp(0, 5, dimensions=1)
    study.ask(SPACE)
    study.enqueue_trial({"x": 0.25})
    study.ask(SPACE)
    attrs = [t.user_attrs.get(MODELLED) for t in study.get_trials()[-2:]]
    assert attrs == ["rung 1 of 7 trials", None]

    young = optuna.create_study(sampler=rung_aware_gp(0, 5, dimensions=1))
    young.add_trial(trial("COMPLETE", {RUNG_1: 0.5}, 0.4))
    young.ask(SPACE)
    assert young.get_trials()[-1].user_attrs[MODELLED] == "random start-up: 1 of 5 trials"

    finished = optuna.create_study(sampler=rung_aware_gp(0, 2, dimensions=1))
    for x in (0.1, 0.9, 0.5):
        finished.add_trial(trial("COMPLETE", {RUNG_1: x}, x, x=x))
    finished.ask(SPACE)
    assert finished.get_trials()[-1].user_attrs[MODELLED] == "final values of 3 trials"

    predicting = optuna.create_study(sampler=rung_aware_gp(0, 2, dimensions=1))
    for x in (0.1, 0.9, 0.5):
        predicting.add_trial(trial("COMPLETE", {RUNG_1: x}, x, x=x))
    predicting.add_trial(stopped(0.3))
    seen = predicting.sampler._seen(predicting)
    assert seen.level == PREDICTED and len(seen.trials) == 4
    predicting.ask(SPACE)
    assert predicting.get_trials()[-1].user_attrs[MODELLED] == "predicted final values of 4 trials"


def test_infeasible_markers_stay_out_of_the_view_and_gp_still_proposes():
    """A marker is PRUNED with a constraint and no rung values: imputing it would leave GP with a
    constraint on some trials only, which it refuses."""
    study = _asha_study(6)
    marker = create_trial(state=TrialState.PRUNED, params={"x": 0.1}, distributions=SPACE)
    marker.set_constraint("memory", 1.0)
    study.add_trial(marker)
    study.sampler = rung_aware_gp(0, 5, dimensions=1)
    assert not stopped_at_a_rung(marker) and len(StudyAtFidelity(study, 5, study.get_trials()).trials) == 7
    assert 0.0 <= study.ask(SPACE).params["x"] <= 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_gp_proposes_near_the_best_rung_values(seed):
    """12 trials stopped at the first rung, values rising away from x = 0.2: plain GP sees no COMPLETE
    trial and samples at random; on the rung values it proposes next to 0.2."""
    study = optuna.create_study(sampler=rung_aware_gp(seed, 5, dimensions=1))
    for i in range(12):
        x = (i + 0.5) / 12
        study.add_trial(trial("PRUNED", {RUNG_1: (x - 0.2) ** 2}, x=x))
    proposals = []
    for _ in range(3):
        proposed = study.ask(SPACE)
        proposals.append(proposed.params["x"])
        study.tell(proposed, state=TrialState.FAIL)  # no value: it stays out of the view
    assert all(abs(x - 0.2) < 0.05 for x in proposals), proposals


def test_a_real_asha_study_in_sqlite_is_modelled_at_its_rungs(tmp_path):
    """`--sampler gp` and tuner's pruner on a study in SQLite, driven by ask/report/tell as a driver
    does: trials of 90 samples evaluated at the rungs (10, 30) and their end, a landscape whose best x
    is 0.7 at every fidelity. ASHA stops trials, GP proposes from the rung values, its proposals close
    in on 0.7, and the study's records stay as they were told."""
    from tuner.config.space import Param, SearchSpace
    from tuner.orchestrate.plan import SchedulerSettings

    scheduler = SchedulerSettings.for_study("asha", 90)
    assert scheduler.progress_points() == (10, 30)
    sampler = make_sampler("gp", 0, SearchSpace({"x": Param("x", "float", "training", 0.0, 1.0)}), 5)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", sampler=sampler, pruner=scheduler.pruner())
    late = []
    for number in range(24):
        trial = study.ask(SPACE)
        x = trial.params["x"]
        for samples in (10, 30, 90):
            trial.report((x - 0.7) ** 2 + 1.0 / samples, samples)
            if samples < 90 and trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, (x - 0.7) ** 2 + 1.0 / 90)
        if number >= 14:
            late.append(abs(x - 0.7))
    trials = study.get_trials()
    assert sum(t.state == TrialState.PRUNED for t in trials) >= 5  # ASHA did stop trials
    assert isinstance(sampler._seen(study), StudyAtFidelity)  # so GP modelled the view
    assert sorted(late)[len(late) // 2] < 0.1  # random sampling's median distance here is about 0.3
    assert all(t.intermediate_values and t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def test_status_shows_what_gp_proposed_from_in_runs_of_trials():
    labels = [None, "random start-up: 0 of 2 trials", "random start-up: 1 of 2 trials", "rung 1 of 2 trials"]
    labels += ["rung 1 of 3 trials", None, "rung 1 of 5 trials", "final values of 4 trials"]
    labels += ["predicted final values of 9 trials", "predicted final values of 10 trials"]
    trials = [create_trial(state=TrialState.RUNNING, user_attrs={MODELLED: x} if x else {}) for x in labels]
    for number, t in enumerate(trials):
        t.number = number
    assert modelled_text(trials) == (
        "#1-#2 random start-up; #3-#4 rung 1; #6 rung 1; #7 final values; #8-#9 predicted final values"
    )
    assert modelled_text(trials[:1]) is None
