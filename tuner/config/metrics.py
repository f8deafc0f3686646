"""The metrics a LLaMA-Factory SFT trial writes, their directions, and which block writes which.

Read from LLaMA-Factory 0.9.5 and transformers 5.6 (file:line in site-packages):
- Names are transformers' keys: every eval metric is prefixed `eval_` (trainer.py:2817), so
  `experiment.metric` is the exact key, e.g. `eval_accuracy`, never `accuracy`.
- `eval_loss`: every eval, unless `predict_with_generate` is on: LLaMA-Factory then drops the
  labels before generating, so no loss is computed (llamafactory/train/sft/trainer.py:177).
- `eval_accuracy`: only with `compute_accuracy: true` (train/sft/workflow.py:84, metric.py:70).
- `eval_bleu-4`, `eval_rouge-1`, `eval_rouge-2`, `eval_rouge-l`: only with `predict_with_generate:
  true` (workflow.py:82, metric.py:101), at every eval during training too, though those generate
  right-padded and without LLaMA-Factory's generation kwargs (workflow.py:143,
  transformers/trainer_seq2seq.py:192); LLaMA-Factory refuses predict_with_generate under DeepSpeed
  ZeRO-3 and together with compute_accuracy (hparams/parser.py:367-372).
- `train_*` (train/speed summary, trainer.py:1830) and `effective_tokens_per_sec` (with
  `include_effective_tokens_per_second: true`, workflow.py:123): once, at the end.
- Where: the final eval is only in eval_results.json / all_results.json (workflow.py:147-149);
  trainer_log.jsonl keeps `eval_loss` alone of the eval keys (train/callbacks.py:277-290) and
  misses the final eval; trainer_state.json's log_history holds every eval_* key of every
  intermediate eval, but is written only at checkpoints and before the final eval (workflow.py:130).
- Seen on a demo trial with compute_accuracy: eval lines of trainer_log.jsonl carry eval_loss only;
  log_history has eval_accuracy at steps 4, 7, 10; eval_results.json has it for the end.
- `gpu_hours` is tuner's own: the trial's GPUs (on the CPU, processes) × its wall time, evaluator
  included; an objective of its own in a multi-objective study (quality against cost).
- A trial always evaluates: the renderer sets do_eval and the held-out eval dataset and drops
  val_size, so the block's own do_eval / eval_dataset / val_size change nothing here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tuner.errors import ConfigError

Direction = Literal["minimize", "maximize"]
GPU_HOURS = "gpu_hours"  # tuner's own metric: what the trial cost
_GENERATE = "predict_with_generate"
_GENERATE_KEY = f"runtime_info.input.training.{_GENERATE}"
_METRIC_KEY = "experiment.metric"
_GENERATE_FIX = (
    "add `predict_with_generate: true` under training (LLaMA-Factory refuses it under DeepSpeed ZeRO-3 "
    "and with compute_accuracy; it generates at every eval, which is slow)"
)


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction
    needs: str | None = None  # the training key that must be true for LLaMA-Factory to write it
    at_evals: bool = True  # written at every eval (log_history), not only once at the end
    what: str = ""


# The table: what LLaMA-Factory 0.9.5's SFT writes (see the module docstring for where).
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("eval_loss", "minimize", what="loss on the held-out eval set"),
        Metric("eval_accuracy", "maximize", "compute_accuracy", what="next-token accuracy on the eval set"),
        Metric("eval_bleu-4", "maximize", _GENERATE, what="BLEU-4 of generated answers (0-100)"),
        Metric("eval_rouge-1", "maximize", _GENERATE, what="ROUGE-1 F of generated answers (0-100)"),
        Metric("eval_rouge-2", "maximize", _GENERATE, what="ROUGE-2 F of generated answers (0-100)"),
        Metric("eval_rouge-l", "maximize", _GENERATE, what="ROUGE-L F of generated answers (0-100)"),
        Metric("train_loss", "minimize", at_evals=False, what="mean training loss over the run"),
        Metric("train_runtime", "minimize", at_evals=False, what="training seconds"),
        Metric("train_samples_per_second", "maximize", at_evals=False, what="training throughput"),
        Metric("train_steps_per_second", "maximize", at_evals=False, what="optimizer steps per second"),
        Metric(
            "effective_tokens_per_sec",
            "maximize",
            "include_effective_tokens_per_second",
            at_evals=False,
            what="training tokens per second and GPU",
        ),
        Metric(GPU_HOURS, "minimize", at_evals=False, what="the trial's GPU-hours (tuner measures them)"),
    )
}


def infer_direction(name: str) -> Direction | None:
    """The direction of a metric tuner knows (or of any loss); None when the user must say it."""
    if name in METRICS:
        return METRICS[name].direction
    return "minimize" if name.endswith("loss") else None


def is_on(training: Mapping[str, Any], key: str) -> bool:
    value = training.get(key)
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def produced(training: Mapping[str, Any]) -> list[str]:
    """The metrics a trial of a block with these LLaMA-Factory training keys writes, in table order."""
    generate = is_on(training, _GENERATE)
    names = []
    for m in METRICS.values():
        if m.name == "eval_loss" and generate:
            continue  # no labels while generating, so no loss
        if m.needs is None or is_on(training, m.needs):
            names.append(m.name)
    return names


def spelling_hint(name: str, names: list[str]) -> str:
    """'did you mean ...? ' for a misspelled or unprefixed metric name, '' when none is close."""
    if f"eval_{name}" in names:
        return f"did you mean `eval_{name}`? (LLaMA-Factory prefixes eval metrics with eval_) "
    close = difflib.get_close_matches(name, names, n=1)
    return f"did you mean `{close[0]}`? " if close else ""


def direction_required(name: str, *, entry: bool = False) -> str:
    """Why the direction of `name` must be written (the rule of a parse error). `entry`: the metric
    is an entry of experiment.metrics, not experiment.metric."""
    hint = spelling_hint(name, list(METRICS))
    where = ("its name", "in its entry") if entry else ("experiment.metric", "under experiment")
    fix = f"{hint}correct {where[0]}, or for a metric of your own " if hint else ""
    return (
        f"is required for metric {name!r}: tuner infers the direction only for a loss and for the "
        f"metrics it knows ({', '.join(METRICS)}): {fix}"
        f"set `direction: maximize` or `direction: minimize` {where[1]}"
    )


@dataclass(frozen=True)
class Problem:
    """A preflight finding's fields (preflight.py makes it one)."""

    code: str
    key: str
    message: str
    fix: str
    severity: Literal["error", "warning", "note"] = "error"


def problems(
    metric: str,
    direction: str,
    training: Mapping[str, Any],
    *,
    zero_stage: int | None,
    evaluator: bool = False,
    early_stopping: bool = True,
) -> list[Problem]:
    """What keeps a block from optimizing `metric` in `direction`: every problem, before any GPU time.
    With an `evaluator` the metric is a key of the evaluator's JSON: no training metric is needed.
    `early_stopping`: early stopping compares trials on this metric (say so when it cannot)."""
    found = []
    writes = produced(training)
    known = METRICS.get(metric)
    if is_on(training, _GENERATE) and zero_stage == 3:
        found.append(
            Problem(
                "generate-zero3",
                _GENERATE_KEY,
                "predict_with_generate: true is refused by LLaMA-Factory under DeepSpeed ZeRO-3, so every "
                "trial would fail at start-up",
                "use a ZeRO-2 or ZeRO-0 deepspeed config, or drop predict_with_generate",
            )
        )
    if is_on(training, _GENERATE) and is_on(training, "compute_accuracy"):
        found.append(
            Problem(
                "generate-accuracy",
                _GENERATE_KEY,
                "predict_with_generate and compute_accuracy cannot both be true in LLaMA-Factory",
                "keep the one your metric needs",
            )
        )
    if evaluator and metric not in writes:
        if early_stopping:
            found.append(
                Problem(
                    "evaluator-metric",
                    _METRIC_KEY,
                    f"{metric} comes from experiment.evaluator after training: trials have no intermediate "
                    "values of it, so early stopping does not act on them",
                    "nothing to do; --scheduler none says so explicitly",
                    "note",
                )
            )
    elif metric not in writes:
        found.append(_not_written(metric, writes))
    if known is not None and direction != known.direction:
        found.append(
            Problem(
                "direction-contradicts",
                "experiment.direction",
                f"{metric} is to be {known.direction}d, but experiment.direction is {direction}: the study "
                "would search for the worst model and promote it",
                f"set `direction: {known.direction}` under experiment, or remove direction (it is inferred)",
            )
        )
    return found


def early_stopping_problems(name: str | None, training: Mapping[str, Any]) -> list[Problem]:
    """`experiment.early_stopping_metric` must be a metric the trials write at every eval."""
    if name is None:
        return []
    known = METRICS.get(name)
    if name in produced(training) and known is not None and known.at_evals:
        return []
    at_evals = [m for m in produced(training) if METRICS[m].at_evals]
    return [
        Problem(
            "early-stopping-metric",
            "experiment.early_stopping_metric",
            f"{name} is not written at the evals during training, so early stopping could never compare "
            f"trials on it; written at every eval: {', '.join(at_evals)}",
            f"name one of {', '.join(at_evals)}, or remove early_stopping_metric (trials then run to their end)",
        )
    ]


def _not_written(metric: str, writes: list[str]) -> Problem:
    known = METRICS.get(metric)
    if metric == "eval_loss":
        return Problem(
            "metric-not-written",
            _METRIC_KEY,
            "eval_loss is not computed with predict_with_generate: true (LLaMA-Factory drops the labels "
            f"to generate); this block writes {', '.join(writes)}",
            "pick one of eval_bleu-4, eval_rouge-1, eval_rouge-2, eval_rouge-l, or drop predict_with_generate",
        )
    if known is not None and known.needs:
        fix = _GENERATE_FIX if known.needs == _GENERATE else f"add `{known.needs}: true` under training"
        return Problem(
            "metric-not-written",
            _METRIC_KEY,
            f"{metric} is written only with {known.needs}: true, which is not set",
            fix,
        )
    return Problem(
        "unknown-metric",
        _METRIC_KEY,
        f"{metric!r} is not a metric this block's trials write; they write {', '.join(writes)}",
        f"{spelling_hint(metric, [*writes, *METRICS])}use one of them",
    )


def check_same_objective(recorded: Mapping[str, Any], metric: str, direction: str, *, study: str) -> None:
    """A study optimizes one metric in one direction for its whole life (Optuna fixes the direction
    when the study is created): a block that asks for another is refused, even with --allow-changes."""
    was = (recorded.get("metric", metric), recorded.get("direction", direction))
    if was == (metric, direction):
        return
    key = "experiment.metric" if was[0] != metric else "experiment.direction"
    keep = f"set `metric: {was[0]}` and `direction: {was[1]}` under experiment to continue the study, or "
    if infer_direction(was[0]) not in (None, was[1]):  # made when an unset direction meant minimize
        keep = f"its trials were ranked the wrong way round ({was[0]} is to be {infer_direction(was[0])}d): "
    raise ConfigError(
        f"study {study!r} {was[1]}s {was[0]}, but the block asks to {direction} {metric}; a study's "
        "objective cannot change (its trials' values would be compared the wrong way)",
        key=key,
        value=metric if key == "experiment.metric" else direction,
        fix=f"{keep}start a new --study",
    )


def check_same_objectives(recorded: Mapping[str, Any], objectives: Sequence[Any], *, study: str) -> None:
    """check_same_objective for a study of one or several objectives (`Objective`s, in order)."""
    was = recorded.get("objectives") or []
    now = [{"name": o.name, "direction": o.direction} for o in objectives]
    if len(now) == 1 and len(was) <= 1:
        check_same_objective(recorded, now[0]["name"], now[0]["direction"], study=study)
        return
    if was == now:
        return

    def describe(items: Sequence[Mapping[str, str]]) -> str:
        return (
            ", ".join(f"{o['direction']} {o['name']}" for o in items)
            or f"{recorded.get('direction')} {recorded.get('metric')}"
        )

    raise ConfigError(
        f"study {study!r} is to {describe(was)}, but the block asks to {describe(now)}; a study's objectives "
        "cannot change (Optuna fixes them when the study is created)",
        key="experiment.metrics",
        value=[o["name"] for o in now],
        fix="restore the study's objectives in the block (`tune status` shows them), or start a new --study",
    )
