"""The custom evaluator: the block's rules, its command or entry point, and every way it can fail."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tuner.config.block import load_block
from tuner.config.evaluator import Evaluator
from tuner.config.preflight import run_preflight
from tuner.errors import ConfigError
from tuner.trial.evaluate import evaluator_argv, run_evaluator

WRITE = "import json, sys; json.dump({'exact_match': 0.75, 'n': 4}, open(sys.argv[1], 'w'))"


def _run(tmp_path: Path, evaluator: Evaluator, metric: str = "exact_match"):
    return run_evaluator(
        evaluator,
        metric,
        model_dir=tmp_path / "model",
        eval_file=tmp_path / "eval.jsonl",
        output_json=tmp_path / "evaluation.json",
        log_path=tmp_path / "evaluator.log",
        env={"PATH": str(Path(sys.executable).parent)},
    )


def test_the_command_gets_the_placeholders_and_its_json_metric_is_the_value(tmp_path):
    evaluator = Evaluator(command=[sys.executable, "-c", WRITE, "{output_json}"])
    outcome = _run(tmp_path, evaluator)
    assert (outcome.exit_class, outcome.value, outcome.metrics) == ("ok", 0.75, {"exact_match": 0.75, "n": 4.0})
    argv = evaluator_argv(
        Evaluator(command=["judge", "--model={model_dir}", "{eval_file}"]),
        model_dir=Path("/m"),
        eval_file=Path("/e.jsonl"),
        output_json=Path("/o.json"),
    )
    assert argv == ["judge", "--model=/m", "/e.jsonl"]


def test_an_entry_point_is_called_with_model_eval_file_and_output(tmp_path):
    module = tmp_path / "my_judge.py"
    module.write_text(
        "import json\ndef score(model_dir, eval_file, output_json):\n"
        "    json.dump({'exact_match': len(model_dir) % 2, 'eval': eval_file}, open(output_json, 'w'))\n"
    )
    outcome = run_evaluator(
        Evaluator(entry_point="my_judge:score"),
        "exact_match",
        model_dir=tmp_path / "m",
        eval_file=tmp_path / "eval.jsonl",
        output_json=tmp_path / "evaluation.json",
        log_path=tmp_path / "evaluator.log",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert outcome.exit_class == "ok" and outcome.value == len(str(tmp_path / "m")) % 2


@pytest.mark.parametrize(
    ("code", "timeout", "exit_class", "reason"),
    [
        ("import sys; print('judge crashed: no GPU'); sys.exit(3)", 60, "eval_failed", "exited with code 3"),
        ("import time; print('judging...', flush=True); time.sleep(30)", 0.5, "eval_timeout", "0.5 s timeout"),
        ("print('forgot to write')", 60, "eval_failed", "wrote no evaluation.json"),
        ("import sys; open(sys.argv[1], 'w').write('not json')", 60, "eval_failed", "is not JSON"),
        ("import json, sys; json.dump({'accuracy': 1}, open(sys.argv[1], 'w'))", 60, "eval_failed", "it has: accuracy"),
    ],
)
def test_evaluator_failures_are_classified_with_the_log(tmp_path, code, timeout, exit_class, reason):
    outcome = _run(tmp_path, Evaluator(command=[sys.executable, "-c", code, "{output_json}"], timeout_s=timeout))
    assert outcome.exit_class == exit_class and reason in outcome.reason and outcome.value is None
    if "print" in code:
        assert any("judg" in line or "forgot" in line for line in outcome.log_tail)


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({}, "exactly one of"),
        ({"command": ["a"], "entry_point": "m:f"}, "exactly one of"),
        ({"command": ["judge", "{model}"]}, "unknown placeholder {model}"),
    ],
)
def test_an_evaluator_is_a_command_or_an_entry_point_with_known_placeholders(make_block, fields, rule):
    with pytest.raises(ConfigError, match=rule):
        load_block(make_block({"experiment.evaluator": fields, "experiment.direction": "maximize"}))


def test_preflight_takes_the_evaluators_metric_and_needs_its_direction(make_block):
    judged = {
        "experiment.metric": "exact_match",
        "experiment.evaluator": {"entry_point": "tuner.demo.evaluate:exact_match"},
    }
    with pytest.raises(ConfigError, match="direction"):
        load_block(make_block(judged))  # exact_match is not a metric tuner knows the direction of
    block = load_block(make_block({**judged, "experiment.direction": "maximize"}))
    findings = {f.code: f for f in run_preflight(block, check_lf=False)}
    assert "unknown-metric" not in findings and findings["evaluator-metric"].severity == "note"


def test_the_demo_evaluator_scores_generated_answers(demo, tmp_path):
    """On the untrained demo model: a real generate per held-out question, JSON with every figure."""
    from tuner.demo.evaluate import exact_match

    rows = [
        {"messages": [{"role": "user", "content": "What is 1 + 2?"}, {"role": "assistant", "content": "1 + 2 = 3"}]},
        {"messages": [{"role": "user", "content": "Reverse: ab"}, {"role": "assistant", "content": "ba"}]},
    ]
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = exact_match(str(demo.model_dir), str(eval_file), str(tmp_path / "out.json"))
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert result["n"] == 2 and 0 <= result["exact_match"] <= 1 and 0 <= result["similarity"] <= 1
