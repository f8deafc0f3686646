"""Real trials: the real `llamafactory-cli train` under DeepSpeed ZeRO-3 on the demo model (CPU)."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import processes_mentioning
from tuner.config.block import load_block
from tuner.trial.prepare import TrialRequest
from tuner.trial.runner import run_trial
from tuner.trial.workspace import trial_paths


@pytest.fixture(scope="module")
def lr_results(demo, tmp_path_factory):
    """Two real demo trials that differ only in learning rate (shared by the tests below)."""
    block = load_block(demo.block)
    trials = tmp_path_factory.mktemp("trials")
    results = {}
    for number, lr in enumerate((1e-3, 1e-5)):
        paths = trial_paths(trials, "lr", number)
        results[lr] = (run_trial(TrialRequest(block, {"learning_rate": lr}, paths)), paths)
    return results


def test_zero3_trial_end_to_end(lr_results):
    result, paths = lr_results[1e-3]
    assert result.exit_class == "ok", result.log_tail
    written = json.loads((paths.output_dir / "eval_results.json").read_text())
    assert result.value == written["eval_loss"]  # the metric read back is the one LLaMA-Factory wrote
    assert result.steps == result.total_steps > 0
    assert json.loads(paths.result.read_text())["value"] == result.value
    log = paths.train_log.read_text()
    assert "zero_optimization" in log or "ZeRO" in log or "stage 3" in log.lower()
    ds = json.loads(paths.ds_config.read_text())
    assert ds["zero_optimization"]["stage"] == 3
    for name in ("params.json", "llamafactory.yaml", "train.log", "result.json", "output/trainer_log.jsonl"):
        assert (paths.root / name).exists(), name


def test_learning_rate_clearly_changes_eval_loss(lr_results):
    high, low = lr_results[1e-3][0], lr_results[1e-5][0]
    assert high.ok and low.ok
    assert high.value < low.value - 1.0, (high.value, low.value)


def test_failing_trial_is_classified_crashed_with_log_tail(make_block, tmp_path):
    missing = tmp_path / "no-model"
    block = load_block(make_block({"runtime_info.input.training.model_name_or_path": str(missing)}))
    paths = trial_paths(tmp_path / "trials", "fail", 0)
    result = run_trial(TrialRequest(block, {}, paths))
    assert result.exit_class == "crashed" and result.value is None
    assert any(str(missing) in line for line in result.log_tail), result.log_tail
    assert "Error" in result.reason
    assert json.loads(paths.result.read_text())["exit_class"] == "crashed"


def test_trial_stopped_mid_run_leaves_no_process(demo, tmp_path):
    block = load_block(demo.block)
    paths = trial_paths(tmp_path, "stop", 0)
    seen = []

    def stop_after_first_record(record):
        seen.append(record)
        return "killed"

    result = run_trial(TrialRequest(block, {}, paths), on_record=stop_after_first_record)
    assert result.exit_class == "killed" and seen
    assert result.steps < result.total_steps
    assert processes_mentioning(str(paths.yaml)) == []


def test_wandb_offline_makes_one_named_grouped_run_per_trial(make_block, tmp_path):
    block = load_block(
        make_block(
            {
                "experiment.wandb_mode": "offline",
                "runtime_info.input.training.num_train_epochs": 1,
                "runtime_info.input.conversion.max_instances": 100,
            }
        )
    )
    paths = trial_paths(tmp_path / "trials", "wb", 3)
    result = run_trial(TrialRequest(block, {"learning_rate": 1e-3}, paths, run_name="wb-0003", group="wb"))
    assert result.ok, result.log_tail
    (run_dir,) = (paths.root / "wandb").glob("offline-run-*-wb-0003")  # run id = study-number
    record = next(run_dir.glob("*.wandb")).read_bytes()
    assert b"tuner_params" in record and b"wb-0003" in record  # parameters in the run's config, its name
    assert b'"learning_rate": 0.001' in record or b"learning_rate" in record


def test_wandb_disabled_means_no_wandb_at_all(lr_results):
    _, paths = lr_results[1e-3]
    assert not (paths.root / "wandb").exists() and not paths.wandb_config.exists()
    assert "report_to: none" in paths.yaml.read_text()
