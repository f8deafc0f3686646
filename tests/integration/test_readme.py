"""The README's "Everyday use" commands, run as written in a fresh workspace on the demo block.

Only the sizes shrink (budgets of 20 and 10 trials become 1, `tune pin`'s trial 7 becomes 0: the
study has two trials), so the whole walk takes a few minutes; the servers (`tune dashboard`,
`optuna-dashboard`) run until they answer, then stop. A command that fails or prints a traceback
fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.integration.conftest import FAST_CHANGES

README = Path(__file__).resolve().parents[2] / "README.md"
SMALLER = {"--budget 20": "--budget 1", "--budget 10": "--budget 1", "tune pin lr-sweep 7": "tune pin lr-sweep 0"}
SERVERS = ("tune dashboard", "optuna-dashboard")


def everyday_commands() -> list[str]:
    """The commands of the README's "Everyday use" block, comments stripped."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Everyday use\n+```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no 'Everyday use' bash block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def _argv(command: str) -> list[str]:
    for big, small in SMALLER.items():
        command = command.replace(big, small)
    argv = shlex.split(command)
    return [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_until_it_answers(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    port = _free_port()
    if argv[1] == "dashboard":
        argv = [*argv, "--port", str(port)]
    else:  # optuna-dashboard STORAGE
        argv = [*argv, "--port", str(port), "--host", "127.0.0.1"]
    server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    assert b"lr-sweep" in response.read()
                    return
            except OSError:
                time.sleep(1)
        raise AssertionError(f"{argv} never answered: {server.communicate(timeout=10)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_every_everyday_command_works_as_written(make_block, tmp_path):
    commands = everyday_commands()
    assert len(commands) >= 10 and commands[0].startswith("tune check")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for name in ("block.yaml", "v2.yaml"):  # the demo block, as a user's files in their folder
        (workspace / name).write_text(make_block(FAST_CHANGES, name=name).read_text(), encoding="utf-8")
    env = {**os.environ, "COLUMNS": "200"}
    for command in commands:
        argv = _argv(command)
        if command.startswith(SERVERS):
            _serve_until_it_answers(argv, workspace, env)
            continue
        done = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=900)
        said = done.stdout + done.stderr
        assert done.returncode == 0 and "Traceback" not in said, f"$ {command}\n{said[-4000:]}"
    assert (workspace / "prod.yaml").is_file() and (
        workspace / "trials" / "lr-sweep" / "report" / "report.html"
    ).is_file()
