"""Scale out for real: two drivers on one PostgreSQL study, a two-node Ray cluster on localhost,
and GPUs per trial with Ray's logical GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.integration.conftest import cluster_env, processes_mentioning
from tests.storage import POSTGRES_URL, require_postgres, unique_name

TUNE = str(Path(sys.executable).with_name("tune"))
RAY = str(Path(sys.executable).with_name("ray"))
TINY = {
    "evolving.tunable_params": ["learning_rate"],
    "runtime_info.input.training.num_train_epochs": 1,
    "runtime_info.input.conversion.max_instances": 100,
    "runtime_info.input.training.per_device_train_batch_size": 8,  # 13 steps: the cluster is under test
}


def _tune(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [TUNE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def _finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return err


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


@pytest.mark.postgres
def test_two_drivers_share_one_postgres_study_and_its_budget(make_block, tmp_path):
    require_postgres()
    block, name, trials_dir = make_block(TINY), unique_name("shared"), tmp_path / "trials"
    first = _tune(
        "start",
        "--config",
        str(block),
        "--budget",
        "2",
        "--study",
        name,
        "--storage",
        POSTGRES_URL,
        "--trials-dir",
        str(trials_dir),
        "--scheduler",
        "none",
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if any(
                k.startswith("driver:") for k in optuna.load_study(study_name=name, storage=POSTGRES_URL).user_attrs
            ):
                break
        except KeyError:
            pass
        time.sleep(1)
    second = _tune(
        "start",
        "--config",
        str(block),
        "--study",
        name,
        "--storage",
        POSTGRES_URL,
        "--trials-dir",
        str(trials_dir),
        "--scheduler",
        "none",
        "--join",
    )
    _finish(first), _finish(second)
    trials = _trials(POSTGRES_URL, name)
    ran = [t for t in trials if t.user_attrs.get("exit_class") != "infeasible"]
    assert len(ran) == 2 and all(t.state.name == "COMPLETE" for t in ran)  # exactly the budget
    assert len({t.params["learning_rate"] for t in ran}) == 2  # none duplicated
    assert len({t.user_attrs["driver"] for t in ran}) == 2  # both drivers ran trials
    assert processes_mentioning(str(trials_dir)) == []


def _ray_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "raylet" in cmd or "gcs_server" in cmd:
                found.append(cmd[:120])
    return found


def test_trials_run_on_both_nodes_of_a_ray_cluster(make_block, tmp_path):
    assert _ray_processes() == [], "another Ray cluster is running on this machine"
    port = "6391"
    env = cluster_env()
    started = time.monotonic()
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--resources",
            '{"node_a": 1}',
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        subprocess.run(
            [
                RAY,
                "start",
                f"--address=127.0.0.1:{port}",
                "--num-cpus=1",
                "--resources",
                '{"node_b": 1}',
                "--disable-usage-stats",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        cluster_up_s = time.monotonic() - started
        url = f"sqlite:///{tmp_path / 'tuner.db'}"
        proc = _tune(
            "start",
            "--config",
            str(make_block(TINY)),
            "--budget",
            "2",
            "--study",
            "cluster",
            "--storage",
            url,
            "--trials-dir",
            str(tmp_path / "trials"),
            "--scheduler",
            "none",
            "--address",
            f"127.0.0.1:{port}",
            "--max-concurrent",
            "2",
            env=env,
        )
        _finish(proc)
        trials = _trials(url, "cluster")
        assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
        assert len({t.user_attrs["ray_node_id"] for t in trials}) == 2  # one trial per node
        (tmp_path / "timings.json").write_text(
            json.dumps({"cluster_up_s": cluster_up_s, "study_s": time.monotonic() - started - cluster_up_s})
        )
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
    deadline = time.monotonic() + 30
    while _ray_processes() and time.monotonic() < deadline:
        time.sleep(1)
    assert _ray_processes() == []
    assert processes_mentioning(str(tmp_path / "trials")) == []


def test_two_logical_gpus_per_trial(make_block, tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    proc = _tune(
        "start",
        "--config",
        str(make_block(TINY)),
        "--budget",
        "3",
        "--study",
        "gpus",
        "--storage",
        url,
        "--trials-dir",
        str(tmp_path / "trials"),
        "--scheduler",
        "none",
        "--gpus-per-trial",
        "2",
        env={"TUNER_RAY_NUM_GPUS": "4"},
    )
    _finish(proc)
    trials = sorted(_trials(url, "gpus"), key=lambda t: t.datetime_start)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    first, second, third = trials
    assert first.datetime_start < second.datetime_complete and second.datetime_start < first.datetime_complete
    devices = [set(t.user_attrs["cuda_visible_devices"].split(",")) for t in (first, second)]
    assert all(len(d) == 2 for d in devices) and not devices[0] & devices[1]  # disjoint device sets
    assert third.datetime_start >= min(first.datetime_complete, second.datetime_complete)  # it waited
    assert all(t.user_attrs["processes"] == 2 for t in trials)
    assert len({t.user_attrs["master_port"] for t in trials}) == 3
    yaml_env = (Path(first.user_attrs["trial_dir"]) / "train.log").read_text()
    assert "world size: 2" in yaml_env  # torchrun started two LLaMA-Factory workers
