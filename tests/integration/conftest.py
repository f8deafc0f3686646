from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def cluster_env() -> dict[str, str]:
    """The environment of a test's own Ray cluster's nodes and drivers: token authentication with a
    token of its own (`ray start` never creates one, and ~/.ray/auth_token exists only once some local
    `ray.init()` wrote it: a test run alone on a fresh machine failed), and guards, not Ray, end a
    trial's process tree."""
    return {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": uuid.uuid4().hex,
        "RAY_kill_child_processes_on_worker_exit": "0",
    }


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains `text` (a trial's YAML path identifies its processes)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split()[2]
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


FAST_TUNABLES = {
    "learning_rate": {},
    "num_train_epochs": {"low": 1, "high": 2},
    "max_instances": {"low": 100, "high": 150},
}


# The demo block with a smaller space, so that a study's trials take ~40 s each on CPU.
FAST_CHANGES = {"evolving.tunable_params": FAST_TUNABLES, "runtime_info.input.training.per_device_train_batch_size": 8}


@pytest.fixture()
def fast_block(make_block):
    return make_block(FAST_CHANGES)


def run_tune(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    import subprocess

    tune = str(Path(sys.executable).with_name("tune"))
    return subprocess.run(
        [tune, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"}
    )
