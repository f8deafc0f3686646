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


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
            stat = (entry / "stat").read_text()
            state_and_rest = stat[stat.rindex(")") + 2 :].split()
        except (OSError, ValueError):
            continue
        if state_and_rest[0] != "Z":
            parents[int(entry.name)] = int(state_and_rest[1])
    return parents


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
