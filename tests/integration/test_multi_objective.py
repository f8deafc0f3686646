"""A real two-objective demo study (eval_loss against GPU-hours, early stopping on eval_loss), read back
through `tune status`, `tune promote` (refused without a rule, then by a rule) and `tune report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest

from tests.integration.conftest import FAST_CHANGES, run_tune
from tuner.config.block import load_block
from tuner.study.rungs import rung_values


def test_a_two_objective_study_records_both_values_and_its_front(make_block, tmp_path):
    block = make_block(
        {
            **FAST_CHANGES,
            "experiment.metrics": [{"name": "eval_loss"}, {"name": "gpu_hours"}],
            "experiment.early_stopping_metric": "eval_loss",
        }
    )
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    where = ["--storage", url, "--trials-dir", str(tmp_path / "trials")]
    args = ["--budget", "3", "--study", "two", "--seed", "3", "--max-concurrent", "1", "--sampler", "random"]
    done = run_tune("start", "--config", str(block), *where, *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = " ".join(done.stderr.split())
    assert "Objectives: minimize eval_loss, minimize gpu_hours (a Pareto front; early stopping on eval_loss)" in said

    study = optuna.load_study(study_name="two", storage=url)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert study.metric_names == ["eval_loss", "gpu_hours"] and study.user_attrs["scheduler"] == "asha"
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete, [t.user_attrs.get("reason") for t in study.trials]
    for t in complete:
        written = json.loads((Path(t.user_attrs["output_dir"]) / "eval_results.json").read_text())
        assert t.values[0] == written["eval_loss"]
        assert t.values[1] == pytest.approx(t.user_attrs["gpu_hours"], abs=1e-5)  # what the trial cost
    for t in study.trials:  # early stopping compared trials on eval_loss at the study's rungs
        evals = [json.loads(line) for line in (Path(t.user_attrs["output_dir"]) / "tuner_evals.jsonl").open()]
        at_rungs = rung_values(t.user_attrs)
        assert at_rungs and at_rungs[0] == evals[0]["eval_loss"]
        assert t.state.name == "COMPLETE" or t.user_attrs["exit_class"] == "pruned"
        if t.state.name == "PRUNED":  # counts only the fraction it ran against the trial budget
            assert t.user_attrs["samples_seen"] < t.user_attrs["planned_samples"]

    status = run_tune("status", "two", *where)
    assert status.returncode == 0 and "Pareto front (minimize eval_loss, minimize gpu_hours)" in status.stdout
    listed = re.findall(r"^│ (\d+) ", status.stdout.split("Pareto front")[1], flags=re.M)
    assert sorted(map(int, listed)) == sorted(t.number for t in study.best_trials)  # Optuna's own front

    refused = run_tune("promote", "two", *where)
    if len(study.best_trials) > 1:
        assert (
            refused.returncode != 0 and "no single best trial" in refused.stderr and "Traceback" not in refused.stderr
        )
    cap = max(t.values[1] for t in study.best_trials)
    picked = run_tune("promote", "two", "--best", "eval_loss", "--where", f"gpu_hours<={cap}", "--force", *where)
    assert picked.returncode == 0, picked.stderr[-2000:]
    best_loss = min(study.best_trials, key=lambda t: t.values[0])
    promoted = load_block(Path(block).with_name(f"{Path(block).stem}.two-t{best_loss.number:04d}.yaml"))
    assert promoted.provenance["objectives"]["eval_loss"] == best_loss.values[0]

    report = run_tune("report", "two", *where)
    assert report.returncode == 0 and (tmp_path / "trials" / "two" / "report" / "pareto.png").is_file()
