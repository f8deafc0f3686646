"""Chaos, bounded and seeded: the driver is killed with SIGKILL at random moments and resumed each
time, until the study's budget is spent. Whatever the kill points, nothing is lost or duplicated.

Kill points (drawn from a seeded RNG): before Ray starts, mid-trial, right after a trial ends, and
early in a resume. Each round asserts: the finished trials are exactly the budget, every COMPLETE
value equals the eval metric in that trial's own files, no parameter set completed twice, and no
trial process is left 20 s after a kill.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import optuna

from tests.integration.conftest import FAST_TUNABLES, processes_mentioning

TUNE = str(Path(sys.executable).with_name("tune"))
SEED = 20261129
KILLS = 3  # rounds of kill -9 before the last resume runs the study to its end (bounded for CI)
BUDGET = 3
KILL_POINTS = ("before_ray", "mid_trial", "after_a_trial", "early_in_resume")


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="chaos", storage=url).get_trials()
    except KeyError:
        return []


def _finished(url: str) -> int:
    return sum(1 for t in _trials(url) if t.state.name == "COMPLETE")


def _wait_for(what: str, predicate, driver: subprocess.Popen, timeout: float = 400) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if driver.poll() is not None:
            return False  # the driver finished first: nothing left to kill at this point
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_at_random_moments_then_resume_until_the_budget_is_spent(make_block, tmp_path):
    rng = random.Random(SEED)
    block = make_block({"evolving.tunable_params": FAST_TUNABLES})
    url, trials_dir = f"sqlite:///{tmp_path / 'tuner.db'}", tmp_path / "trials"
    start = [TUNE, "start", "--config", str(block), "--budget", str(BUDGET), "--study", "chaos"]
    resume = [TUNE, "resume", "chaos"]
    where = ["--storage", url, "--trials-dir", str(trials_dir), "--scheduler", "none"]
    history = []
    for round_ in range(KILLS):
        point = rng.choice(KILL_POINTS)
        command = start if not _trials(url) else resume
        args = [*command, *where] if command is start else [*command, "--storage", url, "--trials-dir", str(trials_dir)]
        driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done_before = _finished(url)
        if point in ("before_ray", "early_in_resume"):
            time.sleep(rng.uniform(0.5, 4.0))
            reached = driver.poll() is None
        elif point == "mid_trial":
            reached = _wait_for(
                "a trial to train", lambda: any(t.state.name == "RUNNING" for t in _trials(url)), driver
            )
            time.sleep(rng.uniform(1.0, 8.0))
        else:
            reached = _wait_for("a trial to end", lambda done=done_before: _finished(url) > done, driver)
        driver.kill()
        driver.wait(timeout=60)
        history.append((round_, point, reached))
        deadline = time.monotonic() + 20
        while processes_mentioning(str(trials_dir)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_mentioning(str(trials_dir)) == [], f"trial processes left after the kill at {point}"

    final = subprocess.run(
        [*resume, "--storage", url, "--trials-dir", str(trials_dir)] if _trials(url) else [*start, *where],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert final.returncode == 0, final.stderr[-3000:]
    trials = _trials(url)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == BUDGET, [(t.number, t.state.name, t.user_attrs.get("exit_class")) for t in trials]
    for t in complete:  # the study's value is the metric in the trial's own files
        results = json.loads((Path(t.user_attrs["output_dir"]) / "all_results.json").read_text())
        assert t.value == results["eval_loss"]
    params = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(set(params)) == len(params), "a parameter set completed twice"
    assert all(t.state.name != "RUNNING" for t in trials)
    assert processes_mentioning(str(trials_dir)) == []
    print(f"chaos rounds (seed {SEED}): {history}; trials {len(trials)}, complete {len(complete)}")
