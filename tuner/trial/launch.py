"""Start one trial's LLaMA-Factory training under torchrun; stop it and everything it spawned.

What runs is what `llamafactory-cli train <yaml>` runs with FORCE_TORCHRUN=1 (torchrun, the same
environment, LLaMA-Factory's `run_exp`), minus the CLI's own process: it imports torch, transformers
and LLaMA-Factory only to build the torchrun command line, ≈ 3 s per trial (docs/benchmarks.md).
torchrun starts tuner's entry module instead of LLaMA-Factory's launcher.py, to add tuner's
callbacks (tuner/trial/lf_entry.py). A user reproduces a trial by hand with
`llamafactory-cli train <its yaml>` (the same training; only the intermediate evals differ).

The only module that starts processes. The child runs in its own process group
(`start_new_session=True`), so stopping a trial kills torchrun and all its workers: nothing is left
holding GPU memory. Its stdout+stderr go through a reader thread into `train.log` with every
secret replaced by `***`, and the last lines are kept for the trial's record.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tuner.errors import LaunchError
from tuner.redact import Redactor
from tuner.trial.environment import inherited
from tuner.trial.proctree import kill_tree, session_members

log = logging.getLogger(__name__)

TAIL_LINES = 60
# An exception line of a worker ("[rank0]: OSError: ..."); the launcher's own wrappers
# (ChildFailedError, CalledProcessError) only say that a worker failed, not why.
_EXCEPTION = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt)\b.*)$")
_WRAPPERS = ("ChildFailedError", "CalledProcessError")


def processes_per_trial(gpus_per_trial: int) -> int:
    """torchrun processes of one trial: one per GPU it was granted, one on CPU (no GPU)."""
    return max(1, gpus_per_trial)


def free_port() -> int:
    """A TCP port free right now. torchrun binds it a few seconds later; the trial runner retries
    once with a new port if another process took it in between (EADDRINUSE in the log)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))  # free on every interface: other nodes of a multi-node trial connect to it
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LaunchSpec:
    yaml_path: Path
    log_path: Path
    nproc: int = 1
    gpu_ids: tuple[str, ...] = ()  # as Ray granted them; empty: CPU
    env: dict[str, str] = field(default_factory=dict)  # extra, non-secret (WANDB_PROJECT, ...)
    secret_env: dict[str, str] = field(default_factory=dict)  # reaches the child only
    pid_path: Path | None = None  # where the process group id is recorded, for stop_recorded()
    # A multi-node trial: one torchrun per node, all meeting at master_addr:master_port (node 0's).
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"


def require_llamafactory() -> None:
    """Fail before launch, with the fix, when this environment lacks LLaMA-Factory (found without importing it)."""
    import importlib.util

    if importlib.util.find_spec("llamafactory") is None:
        raise LaunchError(f"llamafactory is not installed for {sys.executable}; run ./install.sh (README.md)")


def train_argv(spec: LaunchSpec, master_port: int) -> list[str]:
    """The torchrun command `llamafactory-cli train` builds (launcher.py of LLaMA-Factory 0.9.5), with
    tuner's entry module in place of LLaMA-Factory's launcher.py: the same `run_exp`, plus tuner's
    callbacks (evaluations at the study's progress points; tuner/trial/lf_entry.py)."""
    require_llamafactory()
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(spec.nnodes),
        "--node_rank",
        str(spec.node_rank),
        "--nproc_per_node",
        str(max(1, spec.nproc)),
        "--master_addr",
        spec.master_addr,
        "--master_port",
        str(master_port),
        "-m",
        "tuner.trial.lf_entry",
        str(spec.yaml_path),
    ]


def child_env(spec: LaunchSpec, master_port: int) -> dict[str, str]:
    env = inherited(os.environ)  # an allow-list: no storage password or unrelated secret reaches a trial
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # this environment's tools first
    # The CLI's own variables stay, so `llamafactory-cli train <yaml>` under this environment runs the
    # same command as train_argv (the benchmark's floor; a user re-running a trial by hand).
    env.update(
        {
            "FORCE_TORCHRUN": "1",
            "NNODES": str(spec.nnodes),
            "NODE_RANK": str(spec.node_rank),
            # On CPU, LLaMA-Factory counts 0 devices and would start torchrun with 0 processes.
            "NPROC_PER_NODE": str(max(1, spec.nproc)),
            "MASTER_ADDR": spec.master_addr,
            "MASTER_PORT": str(master_port),
            "CUDA_VISIBLE_DEVICES": ",".join(spec.gpu_ids),
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            # DeepSpeed and torch repeat the same FutureWarning thousands of times per trial.
            "PYTHONWARNINGS": "ignore::FutureWarning",
            # What the CLI adds for torchrun (its OPTIM_TORCH default): fewer CUDA allocator stalls.
            "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
            "TORCH_NCCL_AVOID_RECORD_STREAMS": "1",
        }
    )
    if not spec.gpu_ids:
        env["DS_ACCELERATOR"] = "cpu"
    # JIT-built ops (DeepSpeed's CPU comm op) in this environment's own folder, where install.sh
    # built them: a folder shared with another environment is rebuilt in turn, and a trial stopped
    # mid-build there leaves a lock every later trial would wait on.
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))
    env.update(spec.env)
    env.update(spec.secret_env)
    return env


class TrialProcess:
    """A running trial (torchrun and its workers). Use `start()`, then `poll()`/`wait()`, and `stop()`."""

    def __init__(self, spec: LaunchSpec, master_port: int | None = None, argv: list[str] | None = None) -> None:
        self.spec = spec
        self.master_port = master_port or free_port()
        # The guard kills the trial's process group if this process dies without cleaning up.
        self.argv = argv or [
            sys.executable,
            "-m",
            "tuner.trial.guard",
            str(os.getpid()),
            "--",
            *train_argv(spec, self.master_port),
        ]
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.errors: list[str] = []  # the first exception lines of the workers, in order
        self.started_at = 0.0
        self.last_output_at = 0.0  # monotonic time of the last line the trial printed
        self.stop_reason: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._redactor = Redactor(spec.secret_env.values())

    @property
    def pid(self) -> int:
        assert self._proc is not None, "start() first"
        return self._proc.pid

    def start(self) -> TrialProcess:
        argv = self.argv
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spec.log_path.open("a", encoding="utf-8") as out:  # the line llamafactory-cli would print
            out.write(
                f"[INFO|{time.strftime('%Y-%m-%d %H:%M:%S')}] tuner.launch >> Initializing "
                f"{max(1, self.spec.nproc)} distributed tasks at: {self.spec.master_addr}:{self.master_port}\n"
            )
        try:
            self._proc = subprocess.Popen(
                argv,
                cwd=self.spec.yaml_path.parent,
                env=child_env(self.spec, self.master_port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            raise LaunchError(f"cannot start {argv[0]}: {e}") from e
        self.started_at = self.last_output_at = time.monotonic()
        if self.spec.pid_path is not None:
            self.spec.pid_path.write_text(f"{self._proc.pid} {socket.gethostname()}\n", encoding="utf-8")
        self._reader = threading.Thread(target=self._copy_output, name="train-log", daemon=True)
        self._reader.start()
        log.debug("started %s (pid %s, port %s)", argv, self._proc.pid, self.master_port)
        return self

    def _copy_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self.spec.log_path.open("a", encoding="utf-8") as out:
            for raw in self._proc.stdout:
                line = self._redactor.text(raw.decode("utf-8", errors="replace"))
                out.write(line)
                out.flush()
                # tqdm-style progress rewrites one line with \r: keep only its last state.
                text = line.rstrip("\n").rsplit("\r", 1)[-1]
                self.tail.append(text)
                self.last_output_at = time.monotonic()
                match = _EXCEPTION.match(text)
                if match and len(self.errors) < 10 and not any(w in text for w in _WRAPPERS):
                    self.errors.append(match.group(1).strip())

    def poll(self) -> int | None:
        assert self._proc is not None, "start() first"
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        assert self._proc is not None, "start() first"
        code = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=10)
        return code

    def stop(self, reason: str = "killed", grace_s: float = 10.0) -> int:
        """End the whole process tree: SIGTERM (torchrun then stops its workers), SIGKILL after
        `grace_s`. The tree, not just the group: torchrun puts each worker in its own session."""
        assert self._proc is not None, "start() first"
        self.stop_reason = self.stop_reason or reason
        kill_tree(self._proc.pid, grace_s)
        _signal_group(self._proc.pid, signal.SIGKILL)  # anything left in the group
        code = self.wait()
        _wait_group_gone(self._proc.pid, timeout_s=grace_s)
        return code


def stop_recorded(pid_path: Path, grace_s: float = 10.0) -> bool:
    """Stop a trial's processes from its pid file: the driver cleaning up after a trial whose
    launcher (a Ray worker) is gone, or `tune resume` after a driver died. The trial's session
    (started by the guard) is found even if the guard itself was killed. Only processes on this
    host whose command line is the trial's are touched. True if something was stopped."""
    try:
        pid_text, host = pid_path.read_text(encoding="utf-8").split()[:2]
        sid = int(pid_text)
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return False
    marker = str(pid_path.parent)  # every process of the trial names its YAML in argv
    members = {p for p in session_members(sid) if marker in _cmdline(p) or "tuner.trial.guard" in _cmdline(p)}
    for pid in members:
        kill_tree(pid, grace_s)
    return bool(members)


def _cmdline(pid: int) -> str:
    """The process's arguments joined by NUL, as /proc/PID/cmdline has them ("" if it is gone)."""
    try:
        return "\0".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
