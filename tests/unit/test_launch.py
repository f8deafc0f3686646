"""Process handling with a stand-in for llamafactory-cli: a parent that spawns a grandchild."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

from tuner.trial.launch import LaunchSpec, TrialProcess, child_env, group_alive

SPAWNER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
print("token=" + sys.argv[2], flush=True)
print("starting", flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    # a zombie still answers kill(0); it holds no memory, so it counts as gone
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _spawn(tmp_path: Path, secret: str = "") -> tuple[TrialProcess, int]:
    script = tmp_path / "spawner.py"
    script.write_text(SPAWNER)
    pid_file = tmp_path / "grandchild.pid"
    spec = LaunchSpec(
        tmp_path / "x.yaml", tmp_path / "train.log", secret_env={"WANDB_API_KEY": secret} if secret else {}
    )
    proc = TrialProcess(spec, argv=[sys.executable, str(script), str(pid_file), secret]).start()
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, int(pid_file.read_text())


def test_stop_kills_the_whole_process_tree(tmp_path):
    proc, grandchild = _spawn(tmp_path)
    assert _alive(proc.pid) and _alive(grandchild)
    code = proc.stop("pruned", grace_s=2)
    assert code != 0
    assert not _alive(proc.pid) and not _alive(grandchild)
    assert not group_alive(proc.pid)
    assert proc.stop_reason == "pruned"


def test_output_goes_to_train_log_with_secrets_redacted(tmp_path):
    proc, _ = _spawn(tmp_path, secret="s3cr3t-value-42")
    deadline = time.monotonic() + 10
    while "starting" not in (tmp_path / "train.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.stop(grace_s=1)
    log = (tmp_path / "train.log").read_text()
    assert "token=***" in log and "s3cr3t-value-42" not in log
    assert "starting" in proc.tail


def test_child_env_for_cpu_trial(tmp_path):
    env = child_env(LaunchSpec(tmp_path / "x.yaml", tmp_path / "l", nproc=1), master_port=29555)
    assert env["FORCE_TORCHRUN"] == "1" and env["NNODES"] == "1" and env["NPROC_PER_NODE"] == "1"
    assert env["MASTER_PORT"] == "29555" and env["CUDA_VISIBLE_DEVICES"] == "" and env["DS_ACCELERATOR"] == "cpu"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)  # torchrun of this venv
    gpu = child_env(LaunchSpec(tmp_path / "x.yaml", tmp_path / "l", nproc=2, gpu_ids=("3", "5")), 29556)
    assert gpu["CUDA_VISIBLE_DEVICES"] == "3,5" and gpu["NPROC_PER_NODE"] == "2" and "DS_ACCELERATOR" not in gpu


def test_worker_exceptions_are_collected_in_order(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        "print('[rank0]: Traceback (most recent call last):')\n"
        'print("[rank0]: huggingface_hub.errors.HFValidationError: Repo id must be in the form")\n'
        "print('[rank0]: OSError: Failed to load tokenizer.')\n"
        "print('torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ')\n"
        "raise SystemExit(1)\n"
    )
    spec = LaunchSpec(tmp_path / "x.yaml", tmp_path / "train.log")
    proc = TrialProcess(spec, argv=[sys.executable, str(script)]).start()
    assert proc.wait() == 1
    assert proc.errors == [
        "huggingface_hub.errors.HFValidationError: Repo id must be in the form",
        "OSError: Failed to load tokenizer.",
    ]


def test_guard_kills_the_trial_when_its_launcher_dies(tmp_path):
    """A launcher killed with SIGKILL (no cleanup) must not leave the trial's processes behind."""
    import signal
    import subprocess

    script = tmp_path / "spawner.py"
    script.write_text(SPAWNER)
    pid_file = tmp_path / "grandchild.pid"
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import os, subprocess, sys, time\n"
                f"subprocess.Popen([sys.executable, '-m', 'tuner.trial.guard', str(os.getpid()), '--', sys.executable, {str(script)!r}, {str(pid_file)!r}, 'x'], start_new_session=True)\n"
                "time.sleep(600)\n"
            ),
        ]
    )
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 15
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)


def test_stop_recorded_finds_the_trial_even_when_its_guard_was_killed(tmp_path):
    """Ray (or anyone) may SIGKILL the guard; the driver still finds the trial by its session."""
    import signal

    from tuner.trial.launch import stop_recorded

    script = tmp_path / "spawner.py"
    script.write_text(SPAWNER)
    pid_file = tmp_path / "grandchild.pid"
    spec = LaunchSpec(tmp_path / "x.yaml", tmp_path / "train.log", pid_path=tmp_path / "trial.pid")
    guard_argv = [
        sys.executable,
        "-m",
        "tuner.trial.guard",
        str(os.getpid()),
        "--",
        sys.executable,
        str(script),
        str(pid_file),
        "x",
    ]
    proc = TrialProcess(spec, argv=guard_argv).start()
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    os.kill(proc.pid, signal.SIGKILL)  # the guard dies without cleaning up
    proc.wait()
    assert _alive(grandchild)
    assert stop_recorded(tmp_path / "trial.pid", grace_s=2)
    assert not _alive(grandchild)
    assert not stop_recorded(tmp_path / "trial.pid")  # nothing left to stop


def test_trial_runs_llamafactory_run_exp_under_torchrun_through_tuners_entry(tmp_path):
    from tuner.trial.launch import train_argv

    spec = LaunchSpec(tmp_path / "trial.yaml", tmp_path / "train.log", nproc=2)
    argv = train_argv(spec, 29555)
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"] and argv[-1] == str(spec.yaml_path)
    assert argv[-3:-1] == ["-m", "tuner.trial.lf_entry"]
    assert argv[argv.index("--nproc_per_node") + 1] == "2" and argv[argv.index("--master_port") + 1] == "29555"


def test_kill_tree_kills_what_ignores_sigterm_and_leaves_the_exit_code_to_popen(tmp_path):
    """SIGKILL after the grace; the child is not reaped by kill_tree, so Popen still sees -SIGTERM."""
    import signal
    import subprocess

    from tuner.trial.proctree import alive, descendants, kill_tree

    ready = tmp_path / "ready"
    stubborn = f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open({str(ready)!r}, 'w'); time.sleep(600)"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {stubborn!r}]); time.sleep(600)"),
        ]
    )
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    (child,) = descendants(parent.pid)
    kill_tree(parent.pid, grace_s=1)
    assert not alive(child) and not alive(parent.pid)
    assert parent.wait(timeout=5) == -signal.SIGTERM


def test_trial_env_is_an_allow_list_not_the_drivers_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNER_STORAGE", "postgresql+psycopg://u:pg-secret-pw@db/test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-123")
    monkeypatch.setenv("NCCL_DEBUG", "INFO")
    monkeypatch.setenv("HF_HOME", "/models/hf")
    env = child_env(LaunchSpec(tmp_path / "x.yaml", tmp_path / "l", secret_env={"WANDB_API_KEY": "k" * 40}), 29557)
    assert "TUNER_STORAGE" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert not any("pg-secret-pw" in v or "aws-secret-123" in v for v in env.values())
    assert env["NCCL_DEBUG"] == "INFO" and env["HF_HOME"] == "/models/hf" and env["HOME"] == os.environ["HOME"]
    assert env["WANDB_API_KEY"] == "k" * 40  # the block's own credential, by the name wandb reads


def test_jit_built_ops_live_in_this_environments_folder(tmp_path, monkeypatch):
    """install.sh builds DeepSpeed's CPU op there; a folder shared with another environment would be
    rebuilt in turn, and a trial stopped mid-build leaves a lock later trials wait on for ever."""
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    env = child_env(LaunchSpec(tmp_path / "x.yaml", tmp_path / "l"), 29558)
    assert env["TORCH_EXTENSIONS_DIR"] == str(Path(sys.prefix) / "torch_extensions")
    assert "TORCH_EXTENSIONS_DIR" in (Path(__file__).parents[2] / "install.sh").read_text()
