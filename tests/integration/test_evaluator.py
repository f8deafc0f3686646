"""A real demo study judged by the demo's own evaluator: generated answers, not the training's loss."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from tests.integration.conftest import FAST_CHANGES, run_tune


def test_a_study_tuned_on_the_evaluators_metric_records_its_json_values(make_block, tmp_path):
    block = make_block(
        {
            **FAST_CHANGES,
            "experiment.metric": "similarity",
            "experiment.direction": "maximize",
            "experiment.evaluator": {"entry_point": "tuner.demo.evaluate:exact_match", "timeout_s": 600},
        }
    )
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    args = f"--budget 2 --study judged --storage {url} --seed 1 --max-concurrent 1 --scheduler none".split()
    done = run_tune("start", "--config", str(block), "--trials-dir", str(tmp_path / "trials"), *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = optuna.load_study(study_name="judged", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for t in study.trials:
        trial_dir = Path(t.user_attrs["trial_dir"])
        written = json.loads((trial_dir / "evaluation.json").read_text())
        assert t.value == written["similarity"] and t.user_attrs["evaluation"]["exact_match"] == written["exact_match"]
        assert written["n"] == 60  # every held-out question of the demo, generated and compared
        training = json.loads((Path(t.user_attrs["output_dir"]) / "eval_results.json").read_text())
        assert t.user_attrs["eval_loss"] == training["eval_loss"]  # the training's own eval stays
        assert "exact_match" in (trial_dir / "evaluator.log").read_text()
