"""Run a block's custom evaluator on a trained trial: command or entry point -> JSON -> the trial's value.

`experiment.evaluator` names an argv list (with `{model_dir}`, `{eval_file}`, `{output_json}`
placeholders) or a Python entry point `module:function` (called as `function(model_dir, eval_file,
output_json)` in its own process). It runs after training, on node 0 of the trial with the trial's
GPUs and environment (credentials included, as the training has them), under a timeout, with its
output in the trial's `evaluator.log`. Its JSON's `experiment.metric` becomes the trial's value; a
failure is classed `eval_failed` (or `eval_timeout`) with the log's last lines.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from tuner.config.evaluator import Evaluator
from tuner.trial.proctree import kill_tree

# The entry point's process: import module, call function(model_dir, eval_file, output_json).
_CALL = "import importlib, sys; m, f = sys.argv[1].split(':'); getattr(importlib.import_module(m), f)(*sys.argv[2:5])"


@dataclass(frozen=True)
class Evaluation:
    exit_class: str  # ok | eval_failed | eval_timeout
    reason: str = ""
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # every number of the evaluator's JSON
    log_tail: list[str] = field(default_factory=list)


def evaluator_argv(evaluator: Evaluator, *, model_dir: Path, eval_file: Path, output_json: Path) -> list[str]:
    values = {"model_dir": str(model_dir), "eval_file": str(eval_file), "output_json": str(output_json)}
    if evaluator.entry_point is not None:
        return [sys.executable, "-c", _CALL, evaluator.entry_point, *values.values()]
    # Only the three placeholders are replaced: other braces (a JSON or Python literal) stay as written.
    pattern = re.compile("|".join(re.escape(f"{{{name}}}") for name in values))
    return [pattern.sub(lambda m: values[m.group(0)[1:-1]], arg) for arg in evaluator.command or []]


def run_evaluator(
    evaluator: Evaluator,
    metric: str | None,
    *,
    model_dir: Path,
    eval_file: Path,
    output_json: Path,
    log_path: Path,
    env: dict[str, str],
) -> Evaluation:
    """Run the evaluator to its end (or its timeout) and read `metric` from its JSON output (None:
    every objective comes from the training; the evaluator's numbers are kept all the same)."""
    argv = evaluator_argv(evaluator, model_dir=model_dir, eval_file=eval_file, output_json=output_json)
    output_json.unlink(missing_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        try:
            process = subprocess.Popen(  # an argv list, no shell
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        except OSError as e:
            return Evaluation("eval_failed", f"the evaluator could not start: {e}")
        try:
            returncode = process.wait(timeout=evaluator.timeout_s)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid, grace_s=5)
            process.wait()
            return Evaluation(
                "eval_timeout",
                f"the evaluator ran past its {evaluator.timeout_s:g} s timeout",
                log_tail=_tail(log_path),
            )
    if returncode != 0:
        return Evaluation("eval_failed", f"the evaluator exited with code {returncode}", log_tail=_tail(log_path))
    return _read(output_json, metric, log_path)


def _read(output_json: Path, metric: str | None, log_path: Path) -> Evaluation:
    try:
        data = json.loads(output_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Evaluation("eval_failed", f"the evaluator wrote no {output_json.name}", log_tail=_tail(log_path))
    except json.JSONDecodeError as e:
        return Evaluation(
            "eval_failed", f"the evaluator's {output_json.name} is not JSON: {e}", log_tail=_tail(log_path)
        )
    numbers = {k: float(v) for k, v in data.items() if isinstance(v, int | float)} if isinstance(data, dict) else {}
    if metric is None:
        return Evaluation("ok", metrics=numbers)
    value = numbers.get(metric)
    if value is None:
        return Evaluation(
            "eval_failed",
            f"the evaluator's JSON has no number {metric!r} (experiment.metric); "
            f"it has: {', '.join(numbers) or 'none'}",
            metrics=numbers,
            log_tail=_tail(log_path),
        )
    if not math.isfinite(value):
        return Evaluation("eval_failed", f"the evaluator's {metric} is {value}", metrics=numbers)
    return Evaluation("ok", value=value, metrics=numbers)


def _tail(path: Path, lines: int = 30) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=lines)]
    except OSError:
        return []
