"""One trial, start to end: prepare -> render -> launch -> follow -> classify -> clean up.

Plain Python with callbacks and no Ray or Optuna import: `driver.py` wraps `run_trial` as a Ray
trainable, `tune trial` calls it directly. A failed trial is a result (with its exit class and the
log tail), never an exception; only a trial that cannot even be prepared raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuner.config import deepspeed_configs
from tuner.config.block import Block
from tuner.config.overrides import apply_params, targets_for
from tuner.files import write_json_atomic, write_text_atomic
from tuner.redact import Redactor
from tuner.trial.dataset import PreparedData, prepare_dataset
from tuner.trial.launch import LaunchSpec, TrialProcess
from tuner.trial.progress import DivergenceGuard, LogFollower, LogRecord, final_metrics
from tuner.trial.render import Rendered, render
from tuner.trial.workspace import TrialPaths, check_trials_dir

log = logging.getLogger(__name__)

EXIT_CLASSES = ("ok", "oom", "diverged", "crashed", "timeout", "disk_full", "killed", "pruned", "budget",
                "interrupted")  # fmt: skip
_DISK_FULL = re.compile(r"No space left on device|Errno 28|Disk quota exceeded", re.I)
_OOM = re.compile(
    r"out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|Cannot allocate memory"
    r"|Signal 9 \(SIGKILL\)|exitcode\s*:\s*-9",
    re.I,
)
_PORT_TAKEN = re.compile(r"EADDRINUSE|address already in use", re.I)


@dataclass(frozen=True)
class TrialRequest:
    block: Block
    params: dict[str, Any]
    paths: TrialPaths
    targets: dict[str, str] = field(default_factory=dict)  # param -> "training" | "conversion"
    nproc: int = 1
    gpu_ids: tuple[str, ...] = ()
    run_name: str | None = None
    group: str | None = None  # wandb group (the study)
    timeout_s: float | None = None  # stop a trial that shows no progress (no output) for this long
    resume_from: str | None = None  # checkpoint to continue from (retry of an interrupted trial)


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


def plan(request: TrialRequest) -> tuple[PreparedData, Rendered]:
    """Fill the parameters into the block, convert the data (cached) and render; writes no trial file."""
    paths = request.paths
    targets = {**targets_for(request.params), **request.targets}
    block = apply_params(request.block, request.params, targets, origin=f"trial {paths.root.name}")
    data = prepare_dataset(block.conversion, block.training.template, paths.data_cache)
    ds_config = deepspeed_configs.resolve(block.training.deepspeed, block.file)
    # Reuse the shared tokenized copy when it exists; otherwise tokenize into the trial's own folder,
    # from where a successful trial moves it into the shared cache (never two writers on one path).
    shared = tokenized_cache(block, data, paths)
    tokenized = shared if shared.is_dir() else paths.root / "tokenized"
    rendered = render(block, paths, data, ds_config=ds_config, nproc=request.nproc, run_name=request.run_name,
                      resume_from=request.resume_from, tokenized_path=tokenized, tokenized_cache=shared)  # fmt: skip
    return data, rendered


def _tokenizer_signature(model: str) -> list[Any]:
    folder = Path(model)
    if not folder.is_dir():
        return [model]  # a hub id: its name is what we know
    files = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "tokenizer.model",
             "special_tokens_map.json", "chat_template.jinja")  # fmt: skip
    return [model] + [[f, (folder / f).stat().st_size, (folder / f).stat().st_mtime_ns]
                      for f in files if (folder / f).is_file()]  # fmt: skip


def tokenized_cache(block: Block, data: PreparedData, paths: TrialPaths) -> Path:
    """Where LLaMA-Factory's tokenized copy of this data lives, shared by every trial that tokenizes
    the same conversion with the same template, cutoff, tokenizer and data arguments."""
    import importlib.metadata

    t = block.training
    spec = {"data": data.key, "template": t.template, "cutoff_len": t.cutoff_len,
            "tokenizer": _tokenizer_signature(t.model_name_or_path), "passthrough": t.passthrough,
            "llamafactory": importlib.metadata.version("llamafactory")}  # fmt: skip
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return paths.data_cache.parent / "tokenized" / key


def _keep_tokenized(paths: TrialPaths, rendered: Rendered) -> None:
    """A trial that tokenized the data itself hands its copy to the shared cache (if still absent)."""
    own = paths.root / "tokenized"
    shared = rendered.tokenized_cache
    if shared is None or not own.is_dir() or shared.exists():
        return
    shared.parent.mkdir(parents=True, exist_ok=True)
    try:
        own.rename(shared)
    except OSError:  # another trial got there first, or another filesystem: keep ours where it is
        return


def preview(block: Block, params: dict[str, Any], trials_dir: Path) -> Rendered:
    """What a trial with these parameters would run (`tune render`), at a placeholder path."""
    paths = TrialPaths(check_trials_dir(trials_dir) / "preview" / "0000")
    return plan(TrialRequest(block, params, paths))[1]


def prepare(request: TrialRequest) -> tuple[PreparedData, Rendered]:
    """`plan`, then write params.json, llamafactory.yaml and ds_config.json into the workspace."""
    paths = request.paths
    data, rendered = plan(request)
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths.params, request.params)
    write_text_atomic(paths.yaml, rendered.yaml_text)
    if rendered.ds_config is not None:
        write_json_atomic(paths.ds_config, rendered.ds_config)
    if request.block.experiment.wandb_mode != "disabled":
        _write_wandb_config(request)
    return data, rendered


def run_name(study: str, number: int) -> str:
    return f"{study}-{number:04d}"


def wandb_run_id(name: str) -> str:
    """A wandb run id from a trial's run name (`<study>-<number>`): unique per study and trial."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _write_wandb_config(request: TrialRequest) -> None:
    """The trial's parameters, study and folder, in wandb's config-file format. (WANDB_CONFIG_PATHS
    would be the direct way, but wandb 0.31 rejects it: 'str' is not allowed as a Sequence.)"""
    config = {"tuner_params": {"value": request.params}, "tuner_study": {"value": request.group},
              "tuner_trial_dir": {"value": str(request.paths.root)}}  # fmt: skip
    write_text_atomic(request.paths.wandb_config, json.dumps(config, indent=2))


def _launch_env(request: TrialRequest) -> tuple[dict[str, str], dict[str, str]]:
    experiment = request.block.experiment
    if experiment.wandb_mode == "disabled":
        return {"WANDB_DISABLED": "true", "WANDB_MODE": "disabled"}, {}
    env = {"WANDB_MODE": experiment.wandb_mode, "WANDB_PROJECT": experiment.wandb_project,
           "WANDB_DIR": str(request.paths.root), "WANDB_SILENT": "true"}  # fmt: skip
    if request.run_name:
        env["WANDB_NAME"] = request.run_name
        env["WANDB_RUN_ID"] = wandb_run_id(request.run_name)
    if request.group:
        env["WANDB_RUN_GROUP"] = request.group
    key = request.block.secret("wandb_api_key")
    return env, ({"WANDB_API_KEY": key} if key else {})


def classify(
    returncode: int | None, stop_reason: str | None, value: float | None, tail: list[str], errors: list[str]
) -> tuple[str, str]:
    """(exit class, one-line reason) of a finished trial process. `errors`: the workers' exception
    lines in order; the first is the root cause (later ones are re-raises)."""
    error = errors[0] if errors else ""
    if stop_reason:
        return stop_reason.split(":", 1)[0], stop_reason
    text = "\n".join(tail)
    if returncode == 0:
        if value is None:
            return "crashed", "finished without the objective metric (is do_eval possible?)"
        if not math.isfinite(value):
            return "diverged", f"final metric is {value}"
        return "ok", ""
    if _DISK_FULL.search(text) or any(_DISK_FULL.search(e) for e in errors):
        return "disk_full", error or "no space left on device"
    if _OOM.search(text) or any(_OOM.search(e) for e in errors):
        return "oom", error or "out of memory (a worker was killed or could not allocate)"
    return "crashed", error or f"the trial's torchrun exited with code {returncode}"


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
    env, secret_env = _launch_env(request)
    spec = LaunchSpec(request.paths.yaml, request.paths.train_log, nproc=request.nproc, gpu_ids=request.gpu_ids,
                      env=env, secret_env=secret_env, pid_path=request.paths.pid)  # fmt: skip
    metric = request.block.experiment.metric
    for attempt in (1, 2):
        process = TrialProcess(spec).start()
        follower = LogFollower(request.paths.output_dir / "trainer_log.jsonl")
        guard = DivergenceGuard()
        first_record_at: float | None = None
        last_record_at = 0.0
        last: LogRecord | None = None
        try:
            while process.poll() is None:
                stop, records = _follow(follower, guard, on_record, should_stop)
                if records:
                    first_record_at = first_record_at or time.monotonic()
                    last_record_at = time.monotonic()
                    last = records[-1]
                if stop:
                    process.stop(stop)
                    break
                idle = time.monotonic() - max(process.last_output_at, first_record_at or 0.0, last_record_at)
                if request.timeout_s and idle > request.timeout_s:
                    process.stop(f"timeout: no progress for {request.timeout_s:g} s (hung?)")
                    break
                time.sleep(poll_s)
            returncode = process.wait()
        except BaseException:
            process.stop("interrupted")
            raise
        finally:
            process.stop(process.stop_reason or "cleanup")  # sweep the group whatever happened
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
    value = metrics.get(metric)
    if value is None and returncode == 0 and last is not None and last.eval_metrics:
        value = last.eval_metrics.get(metric)
    stop_reason = process.stop_reason if process.stop_reason != "cleanup" else None
    exit_class, reason = classify(returncode, stop_reason, value, tail, process.errors)
    result = TrialResult(
        exit_class=exit_class,
        metric=metric,
        value=value if exit_class == "ok" else None,
        metrics=metrics,
        reason=reason,
        returncode=returncode,
        wall_s=round(time.monotonic() - started, 3),
        startup_s=round(first_record_at - process.started_at, 3) if first_record_at else None,
        steps=last.step if last else 0,
        total_steps=last.total_steps if last else rendered.total_steps,
        global_batch_size=rendered.global_batch_size,
        n_train=data.n_train,
        master_port=process.master_port,
        log_tail=[*process.errors[:3], "...", *tail[-30:]] if exit_class != "ok" else [],
    )
    write_json_atomic(request.paths.result, result.to_json())
    if result.ok:
        _keep_tokenized(request.paths, rendered)
    scrub_secrets(request.paths.root, list(secret_env.values()))
    return result


def scrub_secrets(root: Path, secrets: list[str], max_bytes: int = 20 << 20) -> list[Path]:
    """Overwrite any secret that a library wrote into the trial folder (logs, wandb files) with
    '*' of the same length (binary files keep their layout). Weight files are skipped."""
    redactor = Redactor(secrets)
    scrubbed: list[Path] = []
    if not redactor:
        return scrubbed
    for path in root.rglob("*"):
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > max_bytes:
                continue
            if path.suffix in (".safetensors", ".bin", ".pt", ".pth"):
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if redactor.found_in(data):
            path.write_bytes(redactor.raw(data))
            scrubbed.append(path)
    if scrubbed:
        log.warning("removed a credential from %d file(s) under %s", len(scrubbed), root)
    return scrubbed


def _follow(
    follower: LogFollower,
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
