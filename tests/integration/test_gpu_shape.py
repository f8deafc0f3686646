"""The shape users run, simulated on the CPU: an 8-GPU node (a fake `nvidia-smi` and 8 Ray logical
GPUs) and a two-node Ray cluster on localhost where one trial spans both nodes.

The trials are real (torchrun, LLaMA-Factory, DeepSpeed ZeRO-3 over gloo on the CPU); only the GPUs
are simulated: the devices a trial is given are Ray's logical ones, and the processes train on the CPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from tests.integration.conftest import cluster_env, processes_mentioning
from tuner.config import yaml_io

TUNE = str(Path(sys.executable).with_name("tune"))
RAY = str(Path(sys.executable).with_name("ray"))
SMALL = {
    "evolving.tunable_params": ["learning_rate"],
    "runtime_info.input.training.num_train_epochs": 1,
    "runtime_info.input.conversion.max_instances": 100,
    "runtime_info.input.training.per_device_train_batch_size": 1,
    "runtime_info.input.training.gradient_accumulation_steps": 2,
}


def _tune(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TUNE, *args], capture_output=True, text=True, timeout=timeout, env={**env, "COLUMNS": "200"})


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return sorted(optuna.load_study(study_name=name, storage=url).get_trials(), key=lambda t: t.number)


def test_an_8_gpu_node_trains_with_the_blocks_gpus_and_resume_and_promote_keep_them(gpu_node, make_block, tmp_path):
    env = {**os.environ, **gpu_node(8)}
    block = make_block({**SMALL, "n_gpus_per_node": 8})
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    where = ["--storage", url, "--trials-dir", str(tmp_path / "trials")]

    done = _tune(
        "start", "--config", str(block), "--budget", "1", "--study", "g8", "--scheduler", "none", *where, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Each trial: 8 GPU(s) per trial, 8 process(es)" in done.stderr  # no flag: the block's n_gpus_per_node
    (first,) = _trials(url, "g8")
    assert first.state.name == "COMPLETE" and first.value is not None
    attrs = first.user_attrs
    assert (attrs["gpus"], attrs["processes"], attrs["global_batch_size"]) == (8, 8, 1 * 2 * 8)
    assert attrs["cuda_visible_devices"] == "0,1,2,3,4,5,6,7"
    assert "world size: 8" in (Path(attrs["trial_dir"]) / "train.log").read_text()

    # The study remembers its shape: resume without any flag plans the same trial shape (its budget is
    # spent, so no second 8-process training: the suite's time is CI's budget; the shape a trial is
    # launched with is the one planned, as the first trial showed).
    done = _tune("resume", "g8", *where, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Each trial: 8 GPU(s) per trial, 8 process(es)" in done.stderr
    assert len(_trials(url, "g8")) == 1

    # Changing the GPUs per trial changes the global batch: refused without --allow-changes.
    done = _tune("resume", "g8", "--budget", "1", "--gpus-per-trial", "4", *where, env=env)
    assert done.returncode == 2 and "--gpus-per-trial 8 -> 4 (the global batch size" in done.stderr
    # A GPU study on a machine without GPUs: refused before Ray starts, with the numbers.
    cpu_env = {k: v for k, v in os.environ.items() if k != "TUNER_RAY_NUM_GPUS"}
    cpu_env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "fake-gpu-bin" not in p)
    done = _tune("resume", "g8", "--budget", "1", *where, env=cpu_env)
    assert (
        done.returncode == 2 and "a trial asks for 8 GPU(s) but the largest node of this machine has 0" in done.stderr
    )
    assert "Traceback" not in done.stderr

    # Promote keeps the tuned global batch size on the production node.
    target = tmp_path / "prod.yaml"
    done = _tune("promote", "g8", "--to", str(target), *where, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    training = yaml_io.load(target)["runtime_info"]["input"]["training"]
    per_device, accum = training["per_device_train_batch_size"], training["gradient_accumulation_steps"]
    assert per_device * accum * 8 == first.user_attrs["global_batch_size"]


def _ray_cluster(port: str, gpus_per_node: int, env: dict[str, str]) -> None:
    common = ["--num-cpus=1", f"--num-gpus={gpus_per_node}", "--disable-usage-stats"]
    subprocess.run(
        [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], check=True, capture_output=True, env=env)


def test_one_trial_spans_two_nodes_of_a_cluster_and_stops_on_both(make_block, tmp_path):
    """Two Ray nodes on localhost with 2 logical GPUs each; a 4-GPU trial is one torchrun per node."""
    port = "6393"
    env = cluster_env()
    block = make_block({**SMALL, "n_gpus_per_node": 2})
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    where = ["--storage", url, "--trials-dir", str(tmp_path / "trials"), "--address", f"127.0.0.1:{port}"]
    _ray_cluster(port, 2, env)
    try:
        started = time.monotonic()
        done = _tune(
            "start",
            "--config",
            str(block),
            "--budget",
            "1",
            "--study",
            "span",
            "--scheduler",
            "none",
            "--gpus-per-trial",
            "4",
            *where,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "4 GPU(s) on 2 nodes per trial" in done.stderr
        (trial,) = _trials(url, "span")
        why = {k: trial.user_attrs.get(k) for k in ("exit_class", "reason")}  # a failure explains itself
        for log in sorted(Path(trial.user_attrs.get("trial_dir", tmp_path)).glob("*.log")):
            why[log.name] = log.read_text(errors="replace")[-1500:]  # the logs go with pytest's temp dirs
        assert trial.state.name == "COMPLETE" and trial.value is not None and trial.value > 0, why
        attrs = trial.user_attrs
        assert len(set(attrs["ray_node_ids"])) == 2  # the trial's attributes name both nodes
        assert (attrs["nodes"], attrs["processes"], attrs["global_batch_size"]) == (2, 4, 1 * 2 * 4)
        trial_dir = Path(attrs["trial_dir"])
        assert "world size: 4" in (trial_dir / "train.node1.log").read_text()  # ranks 2 and 3 ran on node 1
        print(f"two-node trial: {trial.user_attrs['wall_s']:.0f} s; study {time.monotonic() - started:.0f} s")

        # Interrupting the driver mid-trial ends the trial's processes on both nodes.
        driver = subprocess.Popen(
            [
                TUNE,
                "start",
                "--config",
                str(block),
                "--budget",
                "1",
                "--study",
                "stop",
                "--scheduler",
                "none",
                "--gpus-per-trial",
                "4",
                *where,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "COLUMNS": "200"},
        )
        node1_log = tmp_path / "trials" / "stop" / "0000" / "train.node1.log"
        deadline = time.monotonic() + 300
        while "world size" not in (node1_log.read_text() if node1_log.exists() else ""):
            assert driver.poll() is None and time.monotonic() < deadline, "the second node's part never started"
            time.sleep(1)
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=300)
        assert driver.returncode == 130, err[-3000:]
        (stopped,) = _trials(url, "stop")
        assert stopped.state.name == "FAIL" and stopped.user_attrs["exit_class"] == "interrupted"
        assert processes_mentioning(str(tmp_path / "trials" / "stop")) == []

        # A driver killed with SIGKILL mid-trial: Ray ends its workers, and each node's guard then
        # ends that node's part of the trial; nothing is left on either node.
        driver = subprocess.Popen(
            [
                TUNE,
                "start",
                "--config",
                str(block),
                "--budget",
                "1",
                "--study",
                "kill",
                "--scheduler",
                "none",
                "--gpus-per-trial",
                "4",
                *where,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**env, "COLUMNS": "200"},
        )
        node1_log = tmp_path / "trials" / "kill" / "0000" / "train.node1.log"
        deadline = time.monotonic() + 300
        while "world size" not in (node1_log.read_text() if node1_log.exists() else ""):
            assert driver.poll() is None and time.monotonic() < deadline, "the second node's part never started"
            time.sleep(1)
        driver.kill()
        driver.wait(timeout=60)
        deadline = time.monotonic() + 90
        while processes_mentioning(str(tmp_path / "trials" / "kill")) and time.monotonic() < deadline:
            time.sleep(1)
        assert processes_mentioning(str(tmp_path / "trials" / "kill")) == []
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
    assert processes_mentioning(str(tmp_path / "trials")) == []
