"""How a finished trial process is classed: its exit class and a one-line reason.

Pure: from the return code, the reason the tuner stopped it (if it did), the objective's final
value, the log's last lines and the workers' exception lines. `EXIT_CLASSES` lists every class a
trial's result may carry. A training that ended well but wrote no objective is `metric_missing`,
not a crash: the same block would miss it again, so it is never retried (preflight rejects the
metrics it knows a block cannot write; this catches the rest).
"""

from __future__ import annotations

import math
import re

EXIT_CLASSES = (
    "ok",
    "oom",
    "diverged",
    "crashed",
    "metric_missing",
    "eval_failed",
    "eval_timeout",
    "timeout",
    "disk_full",
    "killed",
    "pruned",
    "budget",
    "interrupted",
)
_DISK_FULL = re.compile(r"No space left on device|Errno 28|Disk quota exceeded", re.I)
_OOM = re.compile(r"out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|Cannot allocate memory", re.I)
# A SIGKILL says nothing about memory by itself: the kernel's OOM killer sends it, but so do a node
# being lost, an operator, or a cleanup of a previous trial. Marking a point infeasible on a SIGKILL
# alone would close a feasible region of the space for the rest of the study.
_SIGKILL = re.compile(r"Signal 9 \(SIGKILL\)|exitcode\s*:\s*-9", re.I)


def classify(
    returncode: int | None,
    stop_reason: str | None,
    value: float | None,
    tail: list[str],
    errors: list[str],
    *,
    metric: str = "the objective metric",
    written: list[str] | None = None,
) -> tuple[str, str]:
    """(exit class, one-line reason) of a finished trial process. `errors`: the workers' exception
    lines in order; the first is the root cause (later ones are re-raises). `written`: the final
    metrics the run wrote, named in the reason of a `metric_missing`."""
    error = errors[0] if errors else ""
    if stop_reason:
        return stop_reason.split(":", 1)[0], stop_reason
    text = "\n".join(tail)
    if returncode == 0:
        if value is None:
            wrote = ", ".join(written) if written else "no final metrics"
            return "metric_missing", f"training finished but wrote no {metric} (it wrote: {wrote})"
        if not math.isfinite(value):
            return "diverged", f"final metric is {value}"
        return "ok", ""
    if _DISK_FULL.search(text) or any(_DISK_FULL.search(e) for e in errors):
        return "disk_full", error or "no space left on device"
    if _OOM.search(text) or any(_OOM.search(e) for e in errors):
        return "oom", error or "out of memory (a worker could not allocate)"
    if returncode in (-9, 137) or _SIGKILL.search(text) or any(_SIGKILL.search(e) for e in errors):
        return (
            "killed",
            error or "a worker was killed (SIGKILL) without an out-of-memory message; see the host's kernel log",
        )
    return "crashed", error or f"the trial's torchrun exited with code {returncode}"
