from __future__ import annotations

import math

import pytest

from tuner.trial.classify import EXIT_CLASSES, classify
from tuner.trial.nodes import FINISH_GRACE_S, PartEnd, failure, idle_stop

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


def test_another_node_that_ended_cleanly_does_not_stop_the_trial():
    # torchrun's agents leave their exit barrier together, and node 1's exit can be seen a poll before
    # node 0's: the trial goes on (stopping it then recorded a healthy 2-node trial as metric_missing).
    clean, oom = PartEnd(1, 0, ["done"], []), PartEnd(2, 1, [], ["torch.OutOfMemoryError: CUDA out of memory"])
    assert failure([clean]) is None and idle_stop(5.0, None, [clean], 0.5) is None
    assert failure([clean, oom]) is oom
    assert oom.stop_reason().startswith("oom: node 2 of the trial: torch.OutOfMemoryError")


def test_node_0_gets_a_bounded_grace_once_another_node_finished():
    clean, late = PartEnd(1, 0, [], []), FINISH_GRACE_S + 1
    assert idle_stop(late, None, [clean], FINISH_GRACE_S - 1) is None  # quiet for long, but the end is recent
    assert idle_stop(FINISH_GRACE_S - 1, None, [clean], late) is None  # node 0 still shows progress
    assert idle_stop(late, None, [clean], late) == (
        f"timeout: node 0 of the trial still runs, without progress, {FINISH_GRACE_S:g} s after "
        "node(s) 1 finished cleanly (stuck?)"
    )
    assert idle_stop(late, None, [], 0.0) is None  # no timeout set, nothing ended: no limit
    assert idle_stop(61, 60, [], 0.0) == idle_stop(61, 60, [clean], 1.0) == "timeout: no progress for 60 s (hung?)"
