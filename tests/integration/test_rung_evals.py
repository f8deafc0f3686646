"""Real demo studies: every trial evaluates at the study's rungs (identical progress), for any metric
LLaMA-Factory computes, here eval_accuracy (maximized, inferred from the metric)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from tests.integration.conftest import FAST_CHANGES, run_tune


def test_eval_accuracy_study_reports_at_the_rungs_and_prunes_on_accuracy(make_block, tmp_path):
    block = make_block(
        {
            **FAST_CHANGES,
            "runtime_info.input.training.compute_accuracy": True,
            "experiment.metric": "eval_accuracy",
        }
    )
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    args = f"--budget 2 --study acc --storage {url} --seed 3 --max-concurrent 1".split()
    done = run_tune("start", "--config", str(block), "--trials-dir", str(tmp_path / "trials"), *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = optuna.load_study(study_name="acc", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    # The longest trial of FAST_TUNABLES sees 2 epochs x 150 samples: rungs at 33 and 99 samples.
    rungs = (33, 99)
    for t in study.trials:
        assert t.state.name in ("COMPLETE", "PRUNED"), t.user_attrs
        gbs, output = t.user_attrs["global_batch_size"], Path(t.user_attrs["output_dir"])
        assert t.intermediate_values, "no intermediate eval_accuracy: early stopping could not act"
        for samples in t.intermediate_values:  # each at a rung, within one global batch past it
            assert any(r <= samples < r + gbs for r in rungs), (samples, gbs)
        written = [json.loads(line) for line in (output / "tuner_evals.jsonl").read_text().splitlines()]
        assert {line["current_steps"] * gbs: line["eval_accuracy"] for line in written} == t.intermediate_values
        if t.state.name == "COMPLETE":
            assert t.value == json.loads((output / "eval_results.json").read_text())["eval_accuracy"]
