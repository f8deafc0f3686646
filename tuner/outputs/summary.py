"""Short text of a study's trials for people: a trial's parameters in one line, trials by state."""

from __future__ import annotations

from typing import Any


def format_params(params: dict[str, Any]) -> str:
    short = {
        "learning_rate": "lr",
        "num_train_epochs": "epochs",
        "per_device_train_batch_size": "bs",
        "gradient_accumulation_steps": "accum",
        "max_instances": "n",
    }
    parts = []
    for key, value in params.items():
        text = (
            f"{value:.2e}"
            if isinstance(value, float) and abs(value) < 1e-2
            else (f"{value:.4g}" if isinstance(value, float) else str(value))
        )
        parts.append(f"{short.get(key, key)}={text}")
    return " ".join(parts)


def state_counts(trials: list[Any]) -> dict[str, int]:
    counts = {"complete": 0, "running": 0, "pruned": 0, "failed": 0, "infeasible": 0}
    for t in trials:
        if t.user_attrs.get("exit_class") == "infeasible":
            counts["infeasible"] += 1
        else:
            key = {"COMPLETE": "complete", "RUNNING": "running", "PRUNED": "pruned", "FAIL": "failed"}.get(t.state.name)
            if key:
                counts[key] += 1
    return counts


def memory_lines(trials: list[Any]) -> list[str]:
    """Per trial with a memory estimate: the estimate (allocated bytes, what the measured peak is
    compared with) against the measured peak over its ranks, when it has one."""
    lines = []
    for t in trials:
        a = t.user_attrs
        if a.get("memory_estimate_gib") is None or a.get("marker_for") is not None:
            continue
        measured = a.get("memory_peak_gib")
        tail = (
            f"measured {measured} GiB ({measured / a['memory_estimate_gib']:.2f} x estimate)"
            if measured and a["memory_estimate_gib"]
            else ("not run" if a.get("exit_class") == "infeasible" else "not measured")
        )
        lines.append(
            f"#{t.number}: estimate {a['memory_estimate_gib']} GiB (predicted peak {a.get('memory_predicted_gib')} "
            f"of {a.get('memory_usable_gib')} GiB usable), {tail}"
        )
    return lines


def modelled_text(trials: list[Any]) -> str | None:
    """What GP (`--sampler gp`, or the default's GP) learnt from, in runs of trials, which a trial TPE
    proposed breaks: "#3-#5 random start-up; #6-#9 rung 1; #10 final values". The counts of trials are
    in each trial's own attribute; the runs show the switches."""
    from tuner.study.fidelity import MODELLED, modelled_source

    runs: list[tuple[str, int, int]] = []  # (what, first trial, last trial)
    for t in sorted(trials, key=lambda t: t.number):
        label = t.user_attrs.get(MODELLED)
        if label is None:
            continue
        what = modelled_source(label)
        if runs and runs[-1][0] == what and runs[-1][2] == t.number - 1:  # an enqueued trial breaks a run
            runs[-1] = (what, runs[-1][1], t.number)
        else:
            runs.append((what, t.number, t.number))
    if not runs:
        return None
    return "; ".join(f"#{a}" + (f"-#{b}" if b != a else "") + f" {what}" for what, a, b in runs)
