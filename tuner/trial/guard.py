"""`python -m tuner.trial.guard WATCHED_PID -- COMMAND...`: run COMMAND; if WATCHED_PID dies, kill its tree.

A trial runs torchrun, which starts the workers, all below the launcher. If the process that
launched the trial dies without cleaning up (a Ray actor killed by the scheduler, a driver hit by
SIGKILL), nothing would ever stop them, and they would hold GPU memory. This guard sits at the top,
watches its launcher, and ends its whole process tree when the launcher is gone. It imports nothing
heavy: the standard library and psutil, through `proctree` (starts in ~30 ms).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tuner.trial.proctree import alive, kill_tree

POLL_S = 0.5
GRACE_S = 10.0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m tuner.trial.guard WATCHED_PID -- COMMAND...", file=sys.stderr)
        return 2
    # Our output goes to a pipe read by the launcher; once it is gone, a write must not kill us
    # before we have done our one job.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    watched, command = int(argv[0]), argv[2:]
    child = subprocess.Popen(command)  # same session and process group as this guard
    while True:
        code = child.poll()
        if code is not None:
            return code
        if os.getppid() != watched or not alive(watched):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the sweep even if signalled
            kill_tree(os.getpid(), GRACE_S, include_root=False)
            return 137
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
