"""Run one prepared trial to its end: launch -> follow -> stop -> classify -> record -> clean up.

Plain Python with callbacks and no Ray or Optuna import: `driver.py` wraps `run_trial` as a Ray
trainable, `tune trial` calls it directly. A failed trial is a result (with its exit class and the
log tail), never an exception; only a trial that cannot even be prepared raises. Preparing is
`tuner.trial.prepare`, classing the ended process `tuner.trial.classify`.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tuner.config.metrics import GPU_HOURS
from tuner.files import write_json_atomic
from tuner.trial.classify import classify
from tuner.trial.evaluate import Evaluation, run_evaluator
from tuner.trial.launch import LaunchSpec, TrialProcess, child_env
from tuner.trial.lf_entry import EVAL_AT_ENV
from tuner.trial.nodes import failure, idle_stop
from tuner.trial.prepare import TrialRequest, keep_tokenized, launch_env, prepare
from tuner.trial.progress import DivergenceGuard, LogRecord, TrialFollower, final_metrics
from tuner.trial.scrub import scrub_secrets

log = logging.getLogger(__name__)

# A torchrun that lost its master port to another process between free_port() and its bind: relaunch once.
_PORT_TAKEN = re.compile(r"EADDRINUSE|address already in use", re.I)


@dataclass
class TrialResult:
    exit_class: str
    metric: str
    value: float | None
    metrics: dict[str, float]
    reason: str
    returncode: int | None
    wall_s: float
    startup_s: float | None  # launch -> first trainer log line (imports, tokenization, model load)
    steps: int
    total_steps: int
    global_batch_size: int
    n_train: int
    master_port: int | None = None
    log_tail: list[str] = field(default_factory=list)
    evaluation: dict[str, float] = field(default_factory=dict)  # the custom evaluator's numbers
    values: dict[str, float] = field(default_factory=dict)  # every objective's value (ok trials)

    @property
    def ok(self) -> bool:
        return self.exit_class == "ok"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["value"] = self.value if self.value is None or math.isfinite(self.value) else str(self.value)
        return data


# on_record: called for every trainer log line; may return a reason ("pruned", "budget", ...)
# to stop the trial. should_stop: polled; same contract, for stops that come from outside.
OnRecord = Callable[[LogRecord], str | None]


def run_trial(
    request: TrialRequest,
    *,
    on_record: OnRecord | None = None,
    should_stop: Callable[[], str | None] | None = None,
    poll_s: float = 0.5,
) -> TrialResult:
    """Run one trial to its end. Ctrl-C stops the process tree, then propagates."""
    started = time.monotonic()
    data, rendered = prepare(request)
    env, secret_env = launch_env(request)
    env[EVAL_AT_ENV] = ",".join(str(step) for step in rendered.eval_at)
    spec = LaunchSpec(
        request.paths.yaml,
        request.paths.train_log,
        nproc=request.nproc,
        gpu_ids=request.gpu_ids,
        env=env,
        secret_env=secret_env,
        pid_path=request.paths.pid,
        nnodes=request.nnodes,
        master_addr=request.master_addr,
    )
    others = request.other_nodes
    objectives = request.block.experiment.objectives
    for attempt in (1, 2):
        process = TrialProcess(spec).start()
        if others is not None:
            others.start(spec, process.master_port)
        follower = TrialFollower(request.paths.output_dir)
        guard = DivergenceGuard()
        first_record_at: float | None = None
        last_record_at = 0.0
        last: LogRecord | None = None
        finished_at: float | None = None  # when another node's part was first seen ended cleanly
        try:
            while process.poll() is None:
                stop, records = _follow(follower, guard, on_record, should_stop)
                if records:
                    first_record_at = first_record_at or time.monotonic()
                    last_record_at = time.monotonic()
                    last = records[-1]
                ends = others.ends() if others is not None else []
                failed, now = failure(ends), time.monotonic()
                if finished_at is None and ends and failed is None:
                    finished_at = now  # another node ended cleanly; node 0 follows within moments
                idle = now - max(process.last_output_at, first_record_at or 0.0, last_record_at)
                finished_for = now - finished_at if finished_at is not None else 0.0
                stop = stop or (failed.stop_reason() if failed else None)
                stop = stop or idle_stop(idle, request.timeout_s, ends, finished_for)
                if stop:
                    process.stop(stop)
                    break
                time.sleep(poll_s)
            returncode = process.wait()
            if returncode != 0 and not process.stop_reason and others is not None:
                failed = failure(others.ends())  # node 0's torchrun often only sees its peer vanish: say why
                if failed is not None:
                    process.stop_reason = failed.stop_reason()
        except BaseException:
            process.stop("interrupted")
            raise
        finally:
            process.stop(process.stop_reason or "cleanup")  # sweep the group whatever happened
            if others is not None:  # every node's part ends with this one, whatever happened
                others.stop(process.stop_reason or "cleanup")
            request.paths.pid.unlink(missing_ok=True)
        records = follower.poll()  # lines written just before exit
        if records:
            first_record_at = first_record_at or time.monotonic()
            last = records[-1]
        tail = list(process.tail)
        crashed_early = returncode != 0 and first_record_at is None and not process.stop_reason
        if attempt == 1 and crashed_early and _PORT_TAKEN.search("\n".join(tail)):
            log.warning("trial %s: master port was taken, relaunching once", request.paths.root.name)
            continue
        break

    metrics = final_metrics(request.paths.output_dir) if returncode == 0 else {}
    if returncode == 0 and last is not None and last.eval_metrics:  # the last eval, where the final one is missing
        metrics = {**last.eval_metrics, **metrics}
    stop_reason = process.stop_reason if process.stop_reason != "cleanup" else None
    evaluation: Evaluation | None = None
    evaluator = request.block.experiment.evaluator
    if evaluator is not None and returncode == 0 and stop_reason is None:  # the trained model, judged
        evaluation = run_evaluator(
            evaluator,
            next((o.name for o in objectives if o.name not in metrics and o.name != GPU_HOURS), None),
            model_dir=request.paths.output_dir,
            eval_file=data.dataset_dir / "eval.jsonl",
            output_json=request.paths.evaluation,
            log_path=request.paths.evaluator_log,
            env=child_env(spec, 0),
        )
    wall_s = round(time.monotonic() - started, 3)
    found = {**metrics, **(evaluation.metrics if evaluation is not None else {})}
    found[GPU_HOURS] = wall_s * request.nproc * request.nnodes / 3600  # what the trial cost, evaluator included
    values = {o.name: found[o.name] for o in objectives if o.name in found}
    # Judged on the first objective that is missing or not finite (all of them must be there).
    judged = next((o.name for o in objectives if not math.isfinite(values.get(o.name, math.nan))), objectives[0].name)
    exit_class, reason = classify(
        returncode, stop_reason, values.get(judged), tail, process.errors, metric=judged, written=sorted(metrics)
    )
    if evaluation is not None and evaluation.exit_class != "ok":
        exit_class, reason, tail = evaluation.exit_class, evaluation.reason, evaluation.log_tail
    result = TrialResult(
        exit_class=exit_class,
        metric=objectives[0].name,
        value=values[objectives[0].name] if exit_class == "ok" else None,
        metrics=metrics,
        reason=reason,
        returncode=returncode,
        wall_s=wall_s,
        startup_s=round(first_record_at - process.started_at, 3) if first_record_at else None,
        steps=last.step if last else 0,
        total_steps=last.total_steps if last else rendered.total_steps,
        global_batch_size=rendered.global_batch_size,
        n_train=data.n_train,
        master_port=process.master_port,
        log_tail=[*process.errors[:3], "...", *tail[-30:]] if exit_class != "ok" else [],
        evaluation=evaluation.metrics if evaluation is not None else {},
        values=values if exit_class == "ok" else {},
    )
    write_json_atomic(request.paths.result, result.to_json())
    if result.ok:
        keep_tokenized(request.paths, rendered)
    scrub_secrets(request.paths.root, list(secret_env.values()))
    return result


def _follow(
    follower: TrialFollower,
    guard: DivergenceGuard,
    on_record: OnRecord | None,
    should_stop: Callable[[], str | None] | None,
) -> tuple[str | None, list[LogRecord]]:
    records = follower.poll()
    for record in records:
        diverged = guard.check(record)
        if diverged:
            return f"diverged: {diverged}", records
        if on_record is not None:
            reason = on_record(record)
            if reason:
                return reason, records
    if should_stop is not None:
        return should_stop(), records
    return None, records
