"""Find and end a whole process tree on Linux, with psutil (light: the guard imports it too).

A process group is not enough: torchrun starts each worker in a session of its own, so a signal
to the trial's group misses the workers, which hold the (GPU) memory. We collect every
descendant, signal them all, and repeat until none is left. psutil's Process objects check the
process's start time before a signal, so a pid reused meanwhile is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable

import psutil

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied)  # NoSuchProcess covers ZombieProcess


def _live(proc: psutil.Process) -> bool:
    """Running and not a zombie; False too if its pid now names another process."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # exists, not ours to read


def _below(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except _GONE:
        return []


def alive(pid: int) -> bool:
    """True unless the process is gone or a zombie."""
    try:
        return _live(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def session_members(sid: int) -> set[int]:
    """Live processes of a session. Linux never reuses a pid while it names a live session, so
    this finds a trial's processes even after their session leader (the guard) was killed.
    (psutil has no session id; os.getsid gives it.)"""
    members = set()
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and _live(proc):
                members.add(proc.pid)
        except (ProcessLookupError, PermissionError, *_GONE):
            continue
    return members


def descendants(root: int) -> set[int]:
    """Every live process below `root` (not `root` itself)."""
    try:
        below = _below(psutil.Process(root))
    except psutil.NoSuchProcess:
        return set()
    return {p.pid for p in below if _live(p)}


def _grow(tree: dict[int, psutil.Process]) -> None:
    """Add the descendants of every process in `tree`, including those re-parented to init."""
    for proc in list(tree.values()):
        for child in _below(proc):
            tree.setdefault(child.pid, child)


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(*_GONE):
            proc.send_signal(sig)


def kill_tree(root: int, grace_s: float = 10.0, *, include_root: bool = True) -> None:
    """SIGTERM the tree (torchrun then stops its workers itself), SIGKILL whatever is left after
    `grace_s`, then wait up to 5 s for it to go. Descendants found once are remembered, so orphans
    that were re-parented to init on the way are still ended. Never reaps a child of ours (no
    psutil.wait_procs): its exit code stays for the subprocess.Popen that started it."""
    try:
        top = psutil.Process(root)
    except psutil.NoSuchProcess:
        return
    tree = {p.pid: p for p in _below(top)}
    if include_root:
        tree[root] = top
    _signal(tree.values(), signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _grow(tree)
        if not any(_live(p) for p in tree.values()):
            return
        time.sleep(0.1)
    _grow(tree)
    _signal(tree.values(), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_live(p) for p in tree.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
