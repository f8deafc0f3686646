"""Faults with real processes and real signals: a driver killed or interrupted mid-study, resumed;
a second driver refused; a hung trial stopped; a credential that must appear nowhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.integration.conftest import FAST_TUNABLES, processes_mentioning, run_tune
from tuner.config.block import load_block
from tuner.trial.prepare import TrialRequest
from tuner.trial.runner import run_trial
from tuner.trial.workspace import trial_paths

TUNE = str(Path(sys.executable).with_name("tune"))


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=url).get_trials()
    except KeyError:
        return []


def _checkpointed(trial: optuna.trial.FrozenTrial) -> bool:
    output = Path(trial.user_attrs.get("output_dir", "/nonexistent"))
    return any((c / "trainer_state.json").exists() for c in output.glob("checkpoint-*"))


# SIGTERM is the same graceful path as SIGINT; test_chaos.test_sigterm_during_a_checkpoint_save_then_resume
# sends it (one driver run fewer here: the suite's time is CI's budget).
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "sigint"])
def test_driver_stopped_mid_trial_then_resumed(make_block, tmp_path, sig):
    block = make_block(
        {
            "evolving.tunable_params": FAST_TUNABLES,
            "runtime_info.input.training.save_steps": 5,
            "runtime_info.input.training.save_only_model": False,
        }
    )
    url, trials_dir = f"sqlite:///{tmp_path / 'tuner.db'}", tmp_path / "trials"
    driver = subprocess.Popen(
        [
            TUNE,
            "start",
            "--config",
            str(block),
            "--budget",
            "1",
            "--study",
            "s",
            "--storage",
            url,
            "--trials-dir",
            str(trials_dir),
            "--scheduler",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    # One trial, stopped once it has a checkpoint: that a resume never runs a finished trial again is
    # test_chaos's (its kill points include right after a trial ends); one training fewer per signal here.
    def running_with_a_checkpoint() -> bool:
        trials = _trials(url, "s")
        return len(trials) == 1 and trials[0].state.name == "RUNNING" and _checkpointed(trials[0])

    _wait(running_with_a_checkpoint, 400, "trial 0 running with a checkpoint")
    if sig == signal.SIGINT:  # meanwhile a second driver is refused, naming the holder
        refused = run_tune(
            "start",
            "--config",
            str(block),
            "--budget",
            "1",
            "--study",
            "s",
            "--storage",
            url,
            "--trials-dir",
            str(trials_dir),
        )
        assert refused.returncode == 2 and "being run by another driver" in refused.stderr
        assert "PostgreSQL" in refused.stderr  # SQLite: one driver; the message says how to run several
        assert f"pid {driver.pid}" in refused.stderr
    driver.send_signal(sig)
    _, stderr = driver.communicate(timeout=120)
    if sig != signal.SIGKILL:
        assert driver.returncode == 130 and "tune resume s" in stderr
        assert _trials(url, "s")[0].state.name == "FAIL"  # recorded by the driver itself
    else:
        assert driver.returncode == -signal.SIGKILL
        assert _trials(url, "s")[0].state.name == "RUNNING"  # nobody could record it
    interrupted_dir = trials_dir / "s" / "0000"
    # The trial's processes notice their launcher is gone and end (guard poll + grace < 20 s).
    _wait(lambda: processes_mentioning(str(interrupted_dir)) == [], 30, "no process of the interrupted trial")

    resumed = run_tune("resume", "s", "--storage", url, "--trials-dir", str(trials_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "will run again, continuing from" in resumed.stderr
    trials = _trials(url, "s")
    states = [(t.state.name, t.user_attrs.get("exit_class")) for t in trials]
    assert states == [("FAIL", "interrupted"), ("COMPLETE", "ok")]  # exactly the budget
    retry = trials[1]
    assert retry.user_attrs.get("retry_of") == 0 and retry.params == trials[0].params  # re-run once
    # The retry continued from the interrupted trial's checkpoint: its steps carry on from there.
    checkpoint = Path(retry.user_attrs["resume_from"])
    saved_step = int(checkpoint.name.removeprefix("checkpoint-"))
    assert not checkpoint.exists()  # once the retry has run, the study no longer needs it: deleted
    log = (Path(retry.user_attrs["output_dir"]) / "trainer_log.jsonl").read_text().splitlines()
    assert saved_step > 0 and json.loads(log[0])["current_steps"] >= saved_step  # a fresh run logs step <= 5 first
    assert str(checkpoint) in (Path(retry.user_attrs["trial_dir"]) / "llamafactory.yaml").read_text()
    assert processes_mentioning(str(trials_dir)) == []


def test_hung_trial_is_stopped_by_the_timeout(demo, tmp_path):
    """A trial that prints nothing for longer than the timeout is stopped (LLaMA-Factory's silent
    import phase of ~10 s stands in for a hang)."""
    block = load_block(demo.block)
    paths = trial_paths(tmp_path, "hang", 0)
    result = run_trial(TrialRequest(block, {}, paths, timeout_s=3))
    assert result.exit_class == "timeout" and "no progress for 3 s" in result.reason
    assert processes_mentioning(str(paths.root)) == []


def test_credential_appears_nowhere(make_block, tmp_path):
    key = "local-" + "c0ffee" * 7  # looks like a wandb key; planted through the environment
    hf_token = "hf_" + "planted" * 5  # a hub token written where LLaMA-Factory users write it: training
    aws = "aws-" + "planted" * 5  # an unrelated secret of the driver's environment
    block = make_block(
        {
            "experiment.wandb_mode": "online",
            "credentials.wandb_api_key": "${TUNER_PLANTED_KEY}",
            "runtime_info.input.training.hf_hub_token": hf_token,
            "evolving.tunable_params": FAST_TUNABLES,
        }
    )
    url, trials_dir = f"sqlite:///{tmp_path / 'tuner.db'}", tmp_path / "trials"
    env = {**os.environ, "TUNER_PLANTED_KEY": key, "AWS_SECRET_ACCESS_KEY": aws, "WANDB_INIT_TIMEOUT": "10"}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [
            TUNE,
            "start",
            "--config",
            str(block),
            "--budget",
            "1",
            "--study",
            "secret",
            "--storage",
            url,
            "--trials-dir",
            str(trials_dir),
            "-v",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (trial,) = _trials(url, "secret")  # offline sandbox: wandb cannot log in, the trial fails
    assert trial.state.name in ("FAIL", "COMPLETE")
    db = Path(url.removeprefix("sqlite:///"))
    # Every trial file (wandb's offline run folder and driver.log included) and the database with its
    # write-ahead log, where recent writes sit until a checkpoint.
    files = [p for p in trials_dir.rglob("*") if p.is_file()] + [p for p in db.parent.glob(db.name + "*")]
    for secret in (key, hf_token, aws):
        leaks = [p for p in files if secret.encode() in p.read_bytes()]
        assert leaks == [], (secret[:6], leaks)
        assert secret not in done.stdout + done.stderr
    assert "WANDB_API_KEY" not in (trials_dir / "secret" / "0000" / "llamafactory.yaml").read_text()
