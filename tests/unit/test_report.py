"""Reports on studies built with Optuna directly: degenerate cases must explain, not crash."""

from __future__ import annotations

import re

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from tuner.outputs.report import write_report
from tuner.study.store import StudyStore

DIST = {"learning_rate": FloatDistribution(1e-5, 1e-3, log=True), "num_train_epochs": IntDistribution(1, 3)}


def _study(tmp_path, states):
    store = StudyStore.open(f"sqlite:///{tmp_path / 'r.db'}", "r")
    store.set_attrs({"metric": "eval_loss", "sampler": "tpe"})
    for i, state in enumerate(states):
        number, _ = store.ask(DIST)
        for step in (10, 20):
            store.report(number, 3.0 - i * 0.1 - step / 100, step)
        store.tell(
            number,
            state,
            2.0 - i * 0.1 if state == "COMPLETE" else None,
            attrs={"exit_class": {"COMPLETE": "ok", "FAIL": "crashed", "PRUNED": "pruned"}[state], "wall_s": 30.0},
        )
    return store


def _no_external_loads(text: str) -> bool:
    return not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", text)


def test_report_with_complete_failed_and_pruned_trials(tmp_path):
    store = _study(tmp_path, ["COMPLETE", "FAIL", "PRUNED", "COMPLETE", "COMPLETE"])
    report = write_report(store, tmp_path / "out")
    text = report.html.read_text()
    assert report.skipped == {}
    assert {p.name for p in report.pngs} == {"history.png", "importances.png", "parallel.png", "curves.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000 for p in report.pngs)
    assert _no_external_loads(text) and "plotly" in text.lower()  # plotly.js embedded, not fetched
    assert text.count("<tr>") == 6 and "crashed" in text and "Best: trial #4" in text


@pytest.mark.parametrize("states", [["COMPLETE"], ["FAIL"]])
def test_report_of_a_tiny_study_says_what_it_cannot_plot(tmp_path, states):
    report = write_report(_study(tmp_path, states), tmp_path / "out")
    text = report.html.read_text()
    assert "importances" in report.skipped and "needs at least 2 COMPLETE" in report.skipped["importances"]
    assert "Not shown:" in text
    if states == ["FAIL"]:
        assert "history" in report.skipped and "No COMPLETE trial yet." in text


def test_plots_leave_out_warm_start_copies(tmp_path):
    """A warm start's copies (another study's trials) are history for the sampler, not this study's."""
    from optuna.trial import TrialState, create_trial

    from tuner.outputs.report import _own_trials
    from tuner.study.store import WARM_START_ATTR

    store = _study(tmp_path, ["COMPLETE", "COMPLETE"])
    copy = create_trial(
        state=TrialState.COMPLETE,
        value=0.1,
        params={"learning_rate": 1e-4},
        distributions={"learning_rate": DIST["learning_rate"]},
        user_attrs={WARM_START_ATTR: "old#3"},
    )
    store.add_trials([copy])
    plotted = _own_trials(store, store.trials())
    assert len(plotted.trials) == 2 and len(store.study.trials) == 3
    assert "Best: trial #1" in write_report(store, tmp_path / "out").html.read_text()
