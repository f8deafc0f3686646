"""Find and end a whole process tree on Linux (stdlib only: the guard imports it too).

A process group is not enough: torchrun starts each worker in a session of its own, so a signal
to the trial's group misses the workers, which hold the (GPU) memory. We walk /proc for every
descendant, signal them all, and repeat until none is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def _stats() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session id) of every live (non-zombie) process."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/PID/stat: "pid (comm) state ppid pgrp session ..."; comm may hold spaces and ")".
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
        except (OSError, ValueError):
            continue
        if fields[0] != "Z":
            stats[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return stats


def _parents() -> dict[int, int]:
    return {pid: ppid for pid, (ppid, _) in _stats().items()}


def session_members(sid: int) -> set[int]:
    """Live processes of a session. Linux never reuses a pid while it names a live session, so
    this finds a trial's processes even after their session leader (the guard) was killed."""
    return {pid for pid, (_, session) in _stats().items() if session == sid}


def descendants(root: int) -> set[int]:
    """Every live process below `root` (not `root` itself)."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def _signal(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(root: int, grace_s: float = 10.0, *, include_root: bool = True) -> None:
    """SIGTERM the tree (torchrun then stops its workers itself), SIGKILL whatever is left after
    `grace_s`. Descendants found once are remembered, so orphans that were re-parented to init
    on the way are still ended."""
    tree = descendants(root) | ({root} if include_root else set())
    _signal(tree, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        tree |= {p for r in list(tree) for p in descendants(r)}
        if not any(alive(p) for p in tree):
            return
        time.sleep(0.1)
    tree |= {p for r in list(tree) for p in descendants(r)}
    _signal(tree, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
