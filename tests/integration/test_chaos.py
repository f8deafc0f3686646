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
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from tests.integration.conftest import FAST_TUNABLES, processes_mentioning

TUNE = str(Path(sys.executable).with_name("tune"))
SEED = 20261129
KILLS = 3  # rounds of kill -9 before the last resume runs the study to its end (bounded for CI)
BUDGET = 2  # the seed draws: before Ray, right after a trial ends, mid-trial; then the last resume
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
    trials = _check_study(url, "chaos", trials_dir)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == BUDGET, [(t.number, t.state.name, t.user_attrs.get("exit_class")) for t in trials]
    print(f"chaos rounds (seed {SEED}): {history}; trials {len(trials)}, complete {len(complete)}")


def _check_study(url: str, name: str, trials_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """What every chaos round asserts, whatever happened: nothing left running, no parameter set
    completed twice, each COMPLETE value is the eval_loss in its trial's own files, no process left."""
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert all(t.state.name != "RUNNING" for t in trials), [(t.number, t.state.name) for t in trials]
    for t in complete:
        results = json.loads((Path(t.user_attrs["output_dir"]) / "all_results.json").read_text())
        assert t.value == results["eval_loss"]
    params = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(set(params)) == len(params), "a parameter set completed twice"
    assert processes_mentioning(str(trials_dir)) == []
    return trials


def test_two_joined_drivers_share_a_process_hours_budget_and_one_is_killed(make_block, tmp_path):
    """(b) Two drivers on one PostgreSQL study with a process-hours budget; the joined one is killed
    with SIGKILL mid-trial. The other runs on; a resume recovers the dead driver's trial; the spend
    stays within one trial of the budget."""
    from tests.storage import POSTGRES_URL, require_postgres, unique_name

    require_postgres()
    name, trials_dir = unique_name("chaos-join"), tmp_path / "trials"
    block = make_block(
        {
            "evolving.tunable_params": ["learning_rate"],
            "runtime_info.input.training.num_train_epochs": 1,
            "runtime_info.input.conversion.max_instances": 100,
        }
    )
    where = ["--storage", POSTGRES_URL, "--trials-dir", str(trials_dir)]
    budget_s = 90.0  # 0.025 process-hours: three or four of these trials
    first = subprocess.Popen(
        [
            TUNE,
            "start",
            "--config",
            str(block),
            "--budget",
            "0.025gpu-h",
            "--study",
            name,
            "--scheduler",
            "none",
            *where,
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "first.err").open("w"),
    )
    study = lambda: optuna.load_study(study_name=name, storage=POSTGRES_URL).get_trials()  # noqa: E731
    _wait_for("the first driver's trial", lambda: any(t.state.name == "RUNNING" for t in _safe(study)), first)
    second = subprocess.Popen(
        [TUNE, "start", "--config", str(block), "--study", name, "--join", *where],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def second_is_training() -> bool:
        return any(
            t.state.name == "RUNNING"
            and t.user_attrs.get("driver", "").endswith(f":{second.pid}")
            and (Path(t.user_attrs["trial_dir"]) / "placement.json").exists()
            for t in _safe(study)
        )

    assert _wait_for("the joined driver's trial", second_is_training, second), "the joined driver never trained"
    second.kill()
    second.wait(timeout=60)
    first.wait(timeout=1200)
    assert first.returncode == 0, (tmp_path / "first.err").read_text()[-3000:]
    resumed = subprocess.run([TUNE, "resume", name, *where], capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = _check_study(POSTGRES_URL, name, trials_dir)
    dead = [t for t in trials if t.user_attrs.get("driver", "").endswith(f":{second.pid}")]
    assert dead and all(t.state.name != "RUNNING" for t in dead)
    spent = optuna.load_study(study_name=name, storage=POSTGRES_URL).user_attrs["spent"]
    longest = max(float(t.user_attrs.get("gpu_s", 0)) for t in trials)
    assert spent["gpu_s"] <= budget_s + longest, (spent["gpu_s"], budget_s, longest)  # within one trial


def _safe(read):
    try:
        return read()
    except KeyError:
        return []


def test_sigterm_during_a_checkpoint_save_then_resume(make_block, tmp_path):
    """(c) SIGTERM while a trial saves a checkpoint: the driver stops gracefully, the trial is FAIL
    interrupted, and the resume continues from a complete checkpoint (never a half-written one).
    SIGTERM, not SIGINT: ray.init installs a SIGTERM handler in the driver that once replaced tuner's,
    and the trials were then stopped but recorded PRUNED instead of FAIL interrupted."""
    block = make_block(
        {
            "evolving.tunable_params": FAST_TUNABLES,
            "runtime_info.input.training.save_steps": 2,
            "runtime_info.input.training.save_only_model": False,
        }
    )
    url, trials_dir = f"sqlite:///{tmp_path / 'tuner.db'}", tmp_path / "trials"
    where = ["--storage", url, "--trials-dir", str(trials_dir), "--scheduler", "none"]
    driver = subprocess.Popen(
        [TUNE, "start", "--config", str(block), "--budget", "1", "--study", "chaos", *where],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "driver.err").open("w"),
    )
    log = trials_dir / "chaos" / "0000" / "train.log"
    saving = lambda: "Saving model checkpoint" in (log.read_text() if log.exists() else "")  # noqa: E731
    assert _wait_for("a checkpoint save", saving, driver), "the trial ended before saving a checkpoint"
    driver.send_signal(signal.SIGTERM)
    driver.wait(timeout=300)
    stderr = (tmp_path / "driver.err").read_text()
    assert driver.returncode == 130 and "tune resume chaos" in stderr, stderr[-3000:]
    resumed = subprocess.run([TUNE, "resume", "chaos", *where[:4]], capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = _check_study(url, "chaos", trials_dir)
    assert sum(t.state.name == "COMPLETE" for t in trials) == 1
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["exit_class"] == "interrupted"
    # A retry that continued from a checkpoint completed: the checkpoint it chose was whole (a
    # half-written one has no trainer_state.json and is never chosen; LLaMA-Factory would fail on it).
    assert all(t.state.name == "COMPLETE" for t in trials if "resume_from" in t.user_attrs)
