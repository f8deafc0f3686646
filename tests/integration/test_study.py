"""`tune start` for real: Ray Tune runs real llamafactory-cli trials; the study is read back with
Optuna alone."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from tests.integration.conftest import processes_mentioning, run_tune
from tuner.config.block import load_block
from tuner.config.space import build_space
from tuner.config.yaml_io import load as _yaml_load


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def _enqueue(url: str, name: str, block_path: Path, rows: list[dict]) -> None:
    block = load_block(block_path)
    study = optuna.create_study(study_name=name, storage=url, direction="minimize")
    for row in rows:
        study.enqueue_trial(row)
    assert set(rows[0]) == set(build_space(block).params)


def test_start_budget_3_records_three_real_trials(fast_block, tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    done = run_tune(
        "start",
        "--config",
        str(fast_block),
        "--budget",
        "3",
        "--study",
        "three",
        "--storage",
        url,
        "--trials-dir",
        str(tmp_path / "trials"),
        "--scheduler",
        "none",
        "--seed",
        "7",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _study(url, "three").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 3
    for t in trials:
        written = json.loads((Path(t.user_attrs["output_dir"]) / "eval_results.json").read_text())
        assert t.value == written["eval_loss"]
        assert t.user_attrs["exit_class"] == "ok" and t.intermediate_values  # evals during training
    attrs = _study(url, "three").user_attrs
    assert attrs["spent"]["trials_used"] == 3 and attrs["budget"] == {"kind": "trials", "amount": 3.0}
    assert attrs["sampler"] == "auto" and attrs["startup_trials"] == 3  # a 3-trial budget: the floor of 3
    assert "best" in done.stdout and "tune status three" in done.stdout
    assert processes_mentioning(str(tmp_path / "trials")) == []

    listing = run_tune("status", "--storage", url)
    assert listing.returncode == 0 and "three" in listing.stdout
    one = run_tune("status", "three", "--storage", url)
    assert one.returncode == 0 and one.stdout.count("COMPLETE") == 3


def test_asha_prunes_a_bad_trial_as_pruned_not_complete(fast_block, tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _enqueue(
        url,
        "asha",
        fast_block,
        [
            {"learning_rate": 1e-3, "num_train_epochs": 2, "max_instances": 150},
            {"learning_rate": 1e-5, "num_train_epochs": 2, "max_instances": 150},
        ],
    )
    done = run_tune(
        "start",
        "--config",
        str(fast_block),
        "--budget",
        "2",
        "--study",
        "asha",
        "--storage",
        url,
        "--trials-dir",
        str(tmp_path / "trials"),
        "--scheduler",
        "asha",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    good, bad = _study(url, "asha").get_trials()
    assert good.state.name == "COMPLETE" and good.params["learning_rate"] == 1e-3
    assert bad.state.name == "PRUNED" and bad.user_attrs["exit_class"] == "pruned"
    assert bad.intermediate_values and max(bad.intermediate_values) < 150 * 2  # stopped before its end
    assert not (Path(bad.user_attrs["output_dir"]) / "eval_results.json").exists()
    assert processes_mentioning(str(tmp_path / "trials")) == []
    # Same data, template and cutoff: the second trial loads the first one's tokenized copy.
    bad_yaml = _yaml_load(Path(bad.user_attrs["trial_dir"]) / "llamafactory.yaml")
    assert "/.cache/tokenized/" in bad_yaml["tokenized_path"]
    assert "Loaded tokenized dataset from" in (Path(bad.user_attrs["trial_dir"]) / "train.log").read_text()


def test_crashing_trial_is_fail_and_the_study_continues(make_block, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        "params:\n"
        "  learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n"
        "  optim: {type: categorical, choices: [adamw_torch, not_an_optimizer]}\n"
    )
    block = make_block(
        {
            "evolving.tunable_params": ["learning_rate", "optim"],
            "runtime_info.input.training.num_train_epochs": 1,
            "runtime_info.input.conversion.max_instances": 100,
        }
    )
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    _enqueue_rows = [  # the crash first: the study goes on after it
        {"learning_rate": 1e-3, "optim": "not_an_optimizer"},
        {"learning_rate": 5e-4, "optim": "adamw_torch"},
    ]
    study = optuna.create_study(study_name="crash", storage=url)
    for row in _enqueue_rows:
        study.enqueue_trial(row)
    done = run_tune(
        "start",
        "--config",
        str(block),
        "--space",
        str(space),
        "--budget",
        "2",
        "--study",
        "crash",
        "--storage",
        url,
        "--trials-dir",
        str(tmp_path / "trials"),
        "--scheduler",
        "none",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    states = [(t.state.name, t.user_attrs.get("exit_class")) for t in _study(url, "crash").get_trials()]
    assert states == [("FAIL", "crashed"), ("COMPLETE", "ok")]
    failed = _study(url, "crash").trials[0]
    assert "not_an_optimizer" in failed.user_attrs["reason"] + failed.user_attrs["log_tail"]
    assert (Path(failed.user_attrs["trial_dir"]) / "train.log").exists()


def test_time_budget_stops_a_running_trial_as_pruned_budget(make_block, tmp_path):
    # A trial far longer than the budget (a fast machine once finished a short one inside 20 s, and
    # then nothing was left to stop): 30 epochs of the demo data.
    long_block = make_block(
        {"evolving.tunable_params": ["learning_rate"], "runtime_info.input.training.num_train_epochs": 30}
    )
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    done = run_tune(
        "start",
        "--config",
        str(long_block),
        "--budget",
        "20s",
        "--study",
        "timed",
        "--storage",
        url,
        "--trials-dir",
        str(tmp_path / "trials"),
        "--scheduler",
        "none",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _study(url, "timed").get_trials()
    assert len(trials) == 1 and trials[0].state.name == "PRUNED" and trials[0].user_attrs["exit_class"] == "budget"
    log = Path(trials[0].user_attrs["trial_dir"]) / "output" / "trainer_log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert all(r["current_steps"] < r["total_steps"] for r in records)  # stopped mid-training, not at its end
    assert processes_mentioning(str(tmp_path / "trials")) == []
