"""The outcome rules (DESIGN.md 4): how a trial's end becomes a study state, an exit class and attributes.

Pure functions of what the trial reported: a finished trial with its metric is COMPLETE; one stopped
early by the scheduler, the divergence guard or the budget is PRUNED (never COMPLETE with a partial
value); a crash, OOM, timeout or kill is FAIL with its exit class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRUNED_CLASSES = frozenset({"pruned", "diverged", "budget"})
_COPIED_FROM_RESULT = ("startup_s", "steps", "total_steps", "n_train", "master_port")


@dataclass
class Outcome:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    exit_class: str
    value: float | list[float] | None  # one per objective in a multi-objective study
    reason: str
    wall_s: float


def exit_class_of(
    final: dict[str, Any] | None, error: str | None, *, stopped_for_budget: bool, interrupted: bool
) -> tuple[str, str]:
    """(exit class, one-line reason). `final`: the trial's last report if it ran to its own end;
    None when it was stopped from outside (scheduler or budget) or raised (`error`)."""
    if error is not None:
        exit_class, reason = "crashed", error.strip().splitlines()[-1][:500] if error.strip() else "error"
    elif final is None:
        exit_class = "budget" if stopped_for_budget else "pruned"
        reason = (
            "stopped: the study's budget ran out"
            if exit_class == "budget"
            else "stopped early by the scheduler (worse than its peers at the same progress)"
        )
    else:
        exit_class, reason = final.get("exit_class", "crashed"), final.get("reason", "")
    if interrupted and exit_class != "ok":
        # Ctrl-C reaches Ray's workers too: whatever they report, the driver stopped this trial.
        exit_class, reason = "interrupted", "the study's driver was interrupted (Ctrl-C or SIGTERM)"
    return exit_class, reason


def state_of(exit_class: str, value: float | None) -> str:
    if exit_class == "ok" and value is not None:
        return "COMPLETE"
    return "PRUNED" if exit_class in PRUNED_CLASSES else "FAIL"


def outcome_attrs(
    exit_class: str,
    reason: str,
    state: str,
    wall_s: float,
    processes: int,
    result: dict[str, Any],
    placement: dict[str, Any],
) -> dict[str, Any]:
    """The trial's attributes in the study: exit class, time and GPU time, where it ran, and the
    log tail of a failure."""
    attrs: dict[str, Any] = {
        "exit_class": exit_class,
        "reason": reason,
        "wall_s": round(wall_s, 3),
        "gpu_s": round(wall_s * processes, 3),
        "gpu_hours": round(wall_s * processes / 3600, 5),
    }
    attrs.update({key: result[key] for key in _COPIED_FROM_RESULT if result.get(key) is not None})
    if result.get("evaluation"):  # a custom evaluator gave the value: keep the training's own eval too
        attrs["evaluation"] = result["evaluation"]
        training = result.get("metrics") or {}
        attrs.update({k: training[k] for k in ("eval_loss", "eval_accuracy") if k in training})
    if placement:
        attrs.update(
            {
                "ray_node_id": placement.get("ray_node_id"),
                "host": placement.get("host"),
                "cuda_visible_devices": ",".join(placement.get("gpu_ids", [])),
            }
        )
        nodes = placement.get("nodes") or []
        if len(nodes) > 1:  # a multi-node trial: every node it ran on, in rank order
            attrs["ray_node_ids"] = [n.get("ray_node_id") for n in nodes]
            attrs["hosts"] = [n.get("host") for n in nodes]
            attrs["gpu_ids_per_node"] = [",".join(n.get("gpu_ids", [])) for n in nodes]
    if state == "FAIL" and result.get("log_tail"):
        attrs["log_tail"] = "\n".join(result["log_tail"][-20:])[-4000:]
    return attrs


def read_json(path: Path) -> dict[str, Any]:
    """A trial's JSON record (result.json, placement.json); {} when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
