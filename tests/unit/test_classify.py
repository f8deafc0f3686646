from __future__ import annotations

import math

import pytest

from tuner.trial.classify import EXIT_CLASSES, classify

CRASH_ERRORS = ["OSError: /nope is not a local folder", "OSError: Failed to load tokenizer."]
CRASH_TAIL = [
    "Traceback (most recent call last):",
    '  File "x.py", line 3, in <module>',
    "OSError: /nope is not a local folder and is not a valid model identifier",
    "[rank0]: exitcode  : 1",
]
OOM_TAIL = ["RuntimeError: CUDA error", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"]


@pytest.mark.parametrize(
    ("returncode", "stop", "value", "tail", "expected"),
    [
        (0, None, 1.23, [], "ok"),
        (0, None, math.nan, [], "diverged"),
        (0, None, None, [], "metric_missing"),  # trained to its end, no objective: the block's fault
        (1, None, None, CRASH_TAIL, "crashed"),
        (1, None, None, OOM_TAIL, "oom"),
        # A SIGKILL alone is not an OOM (a lost node, a cleanup, an operator): never marks a point infeasible.
        (1, None, None, ["Signal 9 (SIGKILL) received by PID 1234"], "killed"),
        (-9, None, None, [], "killed"),
        (1, None, None, ["Signal 9 (SIGKILL) received by PID 1234", *OOM_TAIL], "oom"),
        (-15, "pruned", None, [], "pruned"),
        (-15, "diverged: loss became nan at step 4", None, [], "diverged"),
        (-15, "timeout: exceeded 60 s", None, [], "timeout"),
        (-15, "budget", None, [], "budget"),
        (-9, "killed", None, OOM_TAIL, "killed"),  # we stopped it: not an OOM even if the log says so
    ],
)
def test_exit_classification(returncode, stop, value, tail, expected):
    errors = CRASH_ERRORS if tail is CRASH_TAIL else []
    exit_class, reason = classify(returncode, stop, value, tail, errors)
    assert exit_class == expected and exit_class in EXIT_CLASSES
    if expected == "crashed" and tail:
        assert reason == "OSError: /nope is not a local folder"  # the root cause, not the re-raise
