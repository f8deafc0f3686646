"""`python -m tuner._guard WATCHED_PID -- COMMAND...`: run COMMAND; if WATCHED_PID dies, kill the group.

A trial runs `llamafactory-cli`, which starts torchrun, which starts the workers: three levels, all
in the trial's own process group. If the process that launched the trial dies without cleaning up
(a Ray actor killed by the scheduler, a driver hit by SIGKILL), nothing would ever stop them, and
they would hold GPU memory. This guard sits at the top of the group, watches its launcher, and
kills the whole group when the launcher is gone. It imports nothing heavy (starts in ~30 ms).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.5
GRACE_S = 5.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group signal below must not stop us first
    os.killpg(0, signal.SIGTERM)
    time.sleep(GRACE_S)
    os.killpg(0, signal.SIGKILL)  # includes this process


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m tuner._guard WATCHED_PID -- COMMAND...", file=sys.stderr)
        return 2
    watched, command = int(argv[0]), argv[2:]
    child = subprocess.Popen(command)  # same session and process group as this guard
    while True:
        code = child.poll()
        if code is not None:
            return code
        if os.getppid() != watched or not _alive(watched):
            print(f"tuner guard: launcher {watched} is gone; stopping the trial's processes", file=sys.stderr)
            _kill_group()
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
