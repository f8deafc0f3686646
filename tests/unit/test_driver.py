"""Ray-facing pieces without a Ray cluster: the searcher's contract with the session."""

from __future__ import annotations

from tuner.errors import StorageError
from tuner.orchestrate.driver import BudgetStopper, StudyScheduler, StudySearcher
from tuner.orchestrate.plan import OBJECTIVE, PROGRESS


class FakeSession:
    def __init__(self, fail: bool = False) -> None:
        self.fatal, self.fail, self.running, self.events = None, fail, {}, []

    def next_trial(self):
        if self.fail:
            raise StorageError("study storage sqlite:///x: cannot start a trial: disk I/O error")
        return None

    def on_eval(self, number, value, samples, planned=None):
        self.events.append(("eval", number, value, samples))

    def on_complete(self, number, final, error=None):
        self.events.append(("complete", number, final, error))

    def budget_exhausted(self):
        return False

    def check_lease(self):
        return True

    def should_prune(self, number):
        self.events.append(("prune?", number))
        return number == 13


def test_storage_failure_stops_the_study_and_is_kept():
    session = FakeSession(fail=True)
    searcher = StudySearcher(session, "min")
    assert searcher.suggest("t1") == "FINISHED"
    assert isinstance(session.fatal, StorageError)
    assert BudgetStopper(session).stop_all()


def test_result_that_made_the_scheduler_stop_is_still_reported():
    session = FakeSession()
    searcher = StudySearcher(session, "min")
    searcher.numbers["t1"] = 4
    searcher.on_trial_complete("t1", {OBJECTIVE: 3.5, PROGRESS: 80})  # stopped by the budget: not final
    assert session.events == [("eval", 4, 3.5, 80), ("complete", 4, None, None)]


def test_final_result_is_passed_on_and_worker_errors_become_crashes():
    session = FakeSession()
    searcher = StudySearcher(session, "min")
    searcher.numbers.update({"a": 1, "b": 2})
    final = {"final": True, "exit_class": "ok", "value": 1.0, OBJECTIVE: 1.0, PROGRESS: 300}
    searcher.on_trial_complete("a", final)
    searcher.on_trial_complete("b", None, error=True)
    assert session.events[0] == ("complete", 1, final, None)
    assert session.events[1][0:3] == ("complete", 2, None) and "failed" in session.events[1][3]


def test_searcher_survives_pickling_without_the_session():
    import pickle

    searcher = pickle.loads(pickle.dumps(StudySearcher(FakeSession(), "min")))
    assert not hasattr(searcher, "_live_session")


class FakeTrial:
    def __init__(self, number):
        self.config = {"number": number}


def test_the_scheduler_records_each_eval_and_carries_out_the_studys_decision():
    session = FakeSession()
    scheduler = StudyScheduler(session)
    assert scheduler.on_trial_result(None, FakeTrial(4), {OBJECTIVE: 2.0, PROGRESS: 64}) == "CONTINUE"
    assert scheduler.on_trial_result(None, FakeTrial(13), {OBJECTIVE: 9.0, PROGRESS: 64}) == "STOP"
    assert scheduler.on_trial_result(None, FakeTrial(4), {"final": True, OBJECTIVE: 1.0, PROGRESS: 99}) == "CONTINUE"
    assert session.events == [("eval", 4, 2.0, 64), ("prune?", 4), ("eval", 13, 9.0, 64), ("prune?", 13)]
