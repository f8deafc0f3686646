from __future__ import annotations

import json
import math

from tuner.trial.progress import DivergenceGuard, LogFollower, LogRecord, final_metrics, parse_record


def test_follower_reads_only_complete_new_lines(tmp_path):
    path = tmp_path / "trainer_log.jsonl"
    follower = LogFollower(path)
    assert follower.poll() == []  # not there yet
    with path.open("w") as f:
        f.write(json.dumps({"current_steps": 5, "total_steps": 20, "loss": 2.5, "epoch": 0.25}) + "\n")
        f.write('{"current_steps": 10, "total_steps": 20, "eval_lo')  # half-written
    first = follower.poll()
    assert [r.step for r in first] == [5] and first[0].loss == 2.5
    with path.open("a") as f:
        f.write('ss": 2.1, "epoch": 0.5}\n')
    second = follower.poll()
    assert len(second) == 1 and second[0].eval_metrics == {"eval_loss": 2.1} and second[0].is_eval
    assert follower.poll() == []


def test_follower_restarts_when_the_file_is_replaced(tmp_path):
    path = tmp_path / "trainer_log.jsonl"
    path.write_text(json.dumps({"current_steps": 7, "total_steps": 9, "loss": 1.0}) + "\n" * 3)
    follower = LogFollower(path)
    assert len(follower.poll()) == 1
    replacement = tmp_path / "new"
    replacement.write_text(json.dumps({"current_steps": 1, "total_steps": 9, "loss": 3.0}) + "\n")
    replacement.replace(path)
    assert [r.step for r in follower.poll()] == [1]


def test_garbage_lines_are_skipped(tmp_path):
    path = tmp_path / "trainer_log.jsonl"
    path.write_text("garbage\n[1, 2]\n" + json.dumps({"current_steps": 2, "total_steps": 4, "loss": 1.5}) + "\n")
    assert [r.step for r in LogFollower(path).poll()] == [2]


def test_nan_loss_from_llamafactory_is_parsed():
    record = parse_record(json.loads('{"current_steps": 3, "total_steps": 9, "loss": NaN}'))
    assert record is not None and math.isnan(record.loss)


def test_final_metrics_prefers_eval_results(tmp_path):
    (tmp_path / "all_results.json").write_text(json.dumps({"eval_loss": 9.0, "train_loss": 3.0, "epoch": 3.0}))
    (tmp_path / "eval_results.json").write_text(json.dumps({"eval_loss": 1.25, "epoch": 3.0}))
    assert final_metrics(tmp_path) == {"eval_loss": 1.25, "train_loss": 3.0, "epoch": 3.0}
    assert final_metrics(tmp_path / "missing") == {}


def _rec(step: int, loss: float | None = None, eval_loss: float | None = None) -> LogRecord:
    return LogRecord(
        step=step, total_steps=100, loss=loss, eval_metrics={"eval_loss": eval_loss} if eval_loss else None
    )


def test_divergence_guard_nan_inf_and_explosion():
    assert DivergenceGuard().check(_rec(1, float("nan"))) is not None
    assert DivergenceGuard().check(_rec(1, eval_loss=float("inf"))) is not None
    guard = DivergenceGuard(factor=4.0, min_records=3)
    for step, loss in enumerate([6.0, 5.0, 3.0, 2.0, 2.5, 7.9], start=1):
        assert guard.check(_rec(step, loss)) is None
    assert "exploded" in guard.check(_rec(7, 8.5))
    early = DivergenceGuard(factor=4.0, min_records=3)
    assert early.check(_rec(1, 1.0)) is None and early.check(_rec(2, 9.0)) is None  # too early to judge
