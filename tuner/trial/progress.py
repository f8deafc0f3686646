"""Follow a trial while it trains: its training and evaluation logs as they grow; final metrics at the end.

LLaMA-Factory appends one JSON line per log step (loss, lr) to `output/trainer_log.jsonl`, each with
current_steps / total_steps / epoch; of an evaluation it writes `eval_loss` alone. tuner's callback
(tuner/trial/lf_entry.py) appends every intermediate evaluation with all its metrics
(`eval_accuracy`, BLEU/ROUGE, ...) to `output/tuner_evals.jsonl`, in the same shape: evaluations are
read from there. The final values are in `eval_results.json` (or `all_results.json`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuner.trial.lf_entry import TUNER_EVALS  # tuner's callback writes every metric of every intermediate eval

TRAINER_LOG = "trainer_log.jsonl"


@dataclass(frozen=True)
class LogRecord:
    step: int
    total_steps: int
    epoch: float | None = None
    loss: float | None = None
    eval_metrics: dict[str, float] | None = None  # eval_* values when this line is an evaluation
    lr: float | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def is_eval(self) -> bool:
        return bool(self.eval_metrics)


def parse_record(data: dict[str, Any]) -> LogRecord | None:
    if not isinstance(data, dict) or "current_steps" not in data:
        return None
    evals = {k: float(v) for k, v in data.items() if k.startswith("eval_") and isinstance(v, int | float)}
    loss = data.get("loss")
    return LogRecord(
        step=int(data["current_steps"]),
        total_steps=int(data.get("total_steps") or 0),
        epoch=data.get("epoch"),
        loss=float(loss) if isinstance(loss, int | float) else None,
        eval_metrics=evals or None,
        lr=data.get("lr"),
    )


class LogFollower:
    """Incrementally reads new complete lines of a JSONL file that another process appends to.

    Tolerates the file not existing yet, a half-written last line, and the file being replaced
    by a new one (LLaMA-Factory removes a stale log at start-up).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._inode: int | None = None
        self._partial = b""

    def poll(self) -> list[LogRecord]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self._offset):
            self._offset, self._partial = 0, b""  # replaced or truncated: start over
        self._inode = stat.st_ino
        if stat.st_size == self._offset:
            return []
        with self.path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # an unterminated last line waits for the next poll
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = parse_record(json.loads(line))
            except (json.JSONDecodeError, ValueError, TypeError):
                continue  # a line we cannot read is not worth failing a trial over
            if record is not None:
                records.append(record)
        return records


class TrialFollower:
    """A trial's records as they come: training lines of trainer_log.jsonl (its eval lines carry only
    eval_loss, so their metrics are dropped) and evaluations with every metric from tuner_evals.jsonl."""

    def __init__(self, output_dir: Path) -> None:
        self._log = LogFollower(output_dir / TRAINER_LOG)
        self._evals = LogFollower(output_dir / TUNER_EVALS)

    def poll(self) -> list[LogRecord]:
        training = [replace(r, eval_metrics=None) for r in self._log.poll() if r.loss is not None or not r.is_eval]
        return training + self._evals.poll()


def read_history(output_dir: Path) -> list[LogRecord]:
    return TrialFollower(output_dir).poll()


def final_metrics(output_dir: Path) -> dict[str, float]:
    """Final metrics of a finished run, {} when LLaMA-Factory wrote none."""
    merged: dict[str, float] = {}
    for name in ("all_results.json", "train_results.json", "eval_results.json"):
        path = output_dir / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            merged.update({k: float(v) for k, v in data.items() if isinstance(v, int | float)})
    return merged


@dataclass
class DivergenceGuard:
    """Stops a trial whose loss is NaN/inf or has exploded.

    Exploding: after `min_records` training losses, a loss above `factor` × the best seen so far.
    Full fine-tunes at a too-high learning rate show exactly this before they turn NaN.
    """

    factor: float = 4.0
    min_records: int = 3
    _best: float = math.inf
    _seen: int = 0

    def check(self, record: LogRecord) -> str | None:
        values = [record.loss] if record.loss is not None else []
        values += list((record.eval_metrics or {}).values()) if record.eval_metrics else []
        for value in values:
            if not math.isfinite(value):
                return f"loss became {value} at step {record.step}"
        if record.loss is None:
            return None
        self._seen += 1
        if self._seen > self.min_records and record.loss > self.factor * self._best:
            return (
                f"loss exploded to {record.loss:.4g} at step {record.step} (> {self.factor:g} x best {self._best:.4g})"
            )
        self._best = min(self._best, record.loss)
        return None
