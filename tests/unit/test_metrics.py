"""The objective metric: the table of what LLaMA-Factory writes, its check before any GPU time,
`metric_missing` after training, no retry of it, and a study's objective fixed for its life."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.config.block import load_block
from tuner.config.metrics import METRICS, check_same_objective, infer_direction, produced
from tuner.config.preflight import run_preflight
from tuner.errors import ConfigError
from tuner.trial.classify import EXIT_CLASSES, classify

T = "runtime_info.input.training"
GENERATED = ["eval_bleu-4", "eval_rouge-1", "eval_rouge-2", "eval_rouge-l"]


@pytest.fixture(autouse=True)
def _no_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def _metric_findings(path: Path) -> dict[str, object]:
    """The findings of the metric check only (the others are test_preflight's)."""
    codes = {"unknown-metric", "metric-not-written", "direction-contradicts", "generate-zero3", "generate-accuracy"}
    return {f.code: f for f in run_preflight(load_block(path), check_lf=False) if f.code in codes}


# -- the table ---------------------------------------------------------------------------------


def test_table_matches_the_score_keys_of_the_installed_llamafactory():
    """The names are LLaMA-Factory's own score_dict keys with transformers' eval_ prefix."""
    from llamafactory.train.sft.metric import ComputeAccuracy, ComputeSimilarity

    accuracy = {f"eval_{k}" for k in ComputeAccuracy().score_dict}
    similarity = {f"eval_{k}" for k in ComputeSimilarity(tokenizer=None).score_dict}
    assert accuracy == {m.name for m in METRICS.values() if m.needs == "compute_accuracy"}
    assert similarity == {m.name for m in METRICS.values() if m.needs == "predict_with_generate"} == set(GENERATED)


def test_directions_losses_minimize_scores_maximize():
    assert {n for n in METRICS if infer_direction(n) == "minimize"} == {
        "eval_loss",
        "train_loss",
        "train_runtime",
        "gpu_hours",
    }
    assert all(infer_direction(n) == "maximize" for n in ["eval_accuracy", *GENERATED])
    assert infer_direction("eval_heldout_loss") == "minimize"  # any loss
    assert infer_direction("eval_exact_match") is None  # not known: the user must say


@pytest.mark.parametrize(
    ("training", "eval_metrics"),
    [
        ({}, ["eval_loss"]),
        ({"compute_accuracy": True}, ["eval_loss", "eval_accuracy"]),
        ({"compute_accuracy": "true"}, ["eval_loss", "eval_accuracy"]),
        ({"compute_accuracy": False}, ["eval_loss"]),
        ({"predict_with_generate": True}, GENERATED),  # no eval_loss: labels are dropped to generate
    ],
)
def test_which_metrics_a_block_writes(training, eval_metrics):
    names = produced(training)
    assert [n for n in names if n.startswith("eval_")] == eval_metrics
    assert {"train_loss", "train_runtime", "train_samples_per_second"} <= set(names)
    assert "effective_tokens_per_sec" not in names
    assert "effective_tokens_per_sec" in produced({"include_effective_tokens_per_second": True})


# -- parsing: direction inferred or required --------------------------------------------------------


def test_direction_is_inferred_and_stays_out_of_the_block_hash(make_block):
    loss = load_block(make_block())
    assert loss.experiment.direction == "minimize"
    assert "direction" not in loss.model_dump(exclude_unset=True)["experiment"]
    accuracy = load_block(make_block({"experiment.metric": "eval_accuracy"}))
    assert accuracy.experiment.direction == "maximize"
    assert load_block(make_block({"experiment.metric": "eval_rouge-l"})).experiment.direction == "maximize"
    custom = load_block(make_block({"experiment.metric": "eval_exact_match", "experiment.direction": "maximize"}))
    assert custom.experiment.direction == "maximize"


@pytest.mark.parametrize(
    ("metric", "hint"),
    [
        ("accuracy", "did you mean `eval_accuracy`? (LLaMA-Factory prefixes eval metrics with eval_)"),
        ("eval_acuracy", "did you mean `eval_accuracy`?"),
        ("exact_match", "set `direction: maximize` or `direction: minimize` under experiment"),
    ],
)
def test_direction_is_required_for_a_metric_tuner_does_not_know(make_block, metric, hint):
    with pytest.raises(ConfigError, match=r"experiment\.direction: is required for metric") as caught:
        load_block(make_block({"experiment.metric": metric}))
    assert hint in str(caught.value) and "block.yaml" in str(caught.value)


def test_an_empty_metric_is_one_error_not_two(make_block):
    with pytest.raises(ConfigError) as caught:
        load_block(make_block({"experiment.metric": ""}))
    assert caught.value.problems == [caught.value] and caught.value.key == "experiment.metric"


# -- preflight: before any GPU time -------------------------------------------------------------------


def test_demo_objective_is_clean(make_block):
    assert _metric_findings(make_block()) == {}


def test_unknown_metric_is_an_error_with_the_list_and_a_hint(make_block):
    found = _metric_findings(make_block({"experiment.metric": "eval_los", "experiment.direction": "minimize"}))
    f = found["unknown-metric"]
    assert f.severity == "error" and f.key == "experiment.metric"
    assert "they write eval_loss, train_loss" in f.message and "did you mean `eval_loss`?" in f.fix
    typo = {"experiment.metric": "eval_acuracy", "experiment.direction": "maximize"}
    assert "did you mean `eval_accuracy`?" in _metric_findings(make_block(typo))["unknown-metric"].fix


def test_accuracy_without_compute_accuracy_says_to_set_it(make_block):
    f = _metric_findings(make_block({"experiment.metric": "eval_accuracy"}))["metric-not-written"]
    assert f.severity == "error" and "compute_accuracy: true" in f.message and "`compute_accuracy: true`" in f.fix
    assert _metric_findings(make_block({"experiment.metric": "eval_accuracy", f"{T}.compute_accuracy": True})) == {}


def test_generation_metrics_need_predict_with_generate_and_no_zero3(make_block):
    f = _metric_findings(make_block({"experiment.metric": "eval_rouge-l"}))["metric-not-written"]
    assert "predict_with_generate: true" in f.fix
    zero3 = _metric_findings(make_block({"experiment.metric": "eval_rouge-l", f"{T}.predict_with_generate": True}))
    assert set(zero3) == {"generate-zero3"} and zero3["generate-zero3"].key == f"{T}.predict_with_generate"
    zero2 = {
        "experiment.metric": "eval_rouge-l",
        f"{T}.predict_with_generate": True,
        f"{T}.deepspeed": "ds_z2_config.json",
    }
    assert _metric_findings(make_block(zero2)) == {}
    no_loss = _metric_findings(make_block({f"{T}.predict_with_generate": True, f"{T}.deepspeed": "ds_z2_config.json"}))
    assert "eval_loss is not computed with predict_with_generate" in no_loss["metric-not-written"].message
    both = {f"{T}.predict_with_generate": True, f"{T}.compute_accuracy": True, f"{T}.deepspeed": "ds_z2_config.json"}
    assert "generate-accuracy" in _metric_findings(make_block(both))


@pytest.mark.parametrize(("metric", "direction"), [("eval_accuracy", "minimize"), ("eval_loss", "maximize")])
def test_direction_against_the_table_is_an_error(make_block, metric, direction):
    block = make_block({"experiment.metric": metric, "experiment.direction": direction, f"{T}.compute_accuracy": True})
    f = _metric_findings(block)["direction-contradicts"]
    assert f.severity == "error" and f.key == "experiment.direction"
    assert "promote it" in f.message and f"`direction: {infer_direction(metric)}`" in f.fix


def test_tune_check_rejects_a_misspelled_metric_before_anything_runs(make_block):
    path = make_block({"experiment.metric": "eval_los", "experiment.direction": "minimize"})
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tune")), "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert "experiment.metric" in done.stdout and "did you mean `eval_loss`?" in done.stdout


# -- after training: metric_missing, never retried ------------------------------------------------------


def test_a_finished_training_without_the_metric_is_metric_missing():
    exit_class, reason = classify(0, None, None, [], [], metric="eval_accuracy", written=["eval_loss", "train_loss"])
    assert exit_class == "metric_missing" and exit_class in EXIT_CLASSES
    assert reason == "training finished but wrote no eval_accuracy (it wrote: eval_loss, train_loss)"
    assert classify(1, None, None, ["boom"], ["ValueError: boom"])[0] == "crashed"  # a failed run is not


def test_metric_missing_is_fail_and_never_retried(make_block, tmp_path):
    from tuner.config.space import build_space
    from tuner.study.budget import Budget, Ledger
    from tuner.study.retry import RETRIED
    from tuner.study.session import StudySession
    from tuner.study.shape import RunShape
    from tuner.study.store import StudyStore

    assert "metric_missing" not in RETRIED and "oom" not in RETRIED
    block = load_block(make_block())
    store = StudyStore.open(f"sqlite:///{tmp_path / 'tuner.db'}", "s")
    ledger = Ledger(Budget("trials", 10))
    session = StudySession(store, block, build_space(block), ledger, tmp_path / "trials", shape=RunShape(retries=2))
    ticket = session.next_trial()
    reason = "training finished but wrote no eval_loss (it wrote: train_loss)"
    session.on_complete(ticket.number, {"final": True, "exit_class": "metric_missing", "reason": reason})
    (trial,) = store.trials()  # FAIL, and no WAITING retry beside it
    assert (trial.state.name, trial.user_attrs["exit_class"], trial.user_attrs["reason"]) == (
        "FAIL",
        "metric_missing",
        reason,
    )
    # `tune status`: counted among the failed trials; the study's table names the class
    from rich.console import Console

    from tuner.cli.live import summary_table
    from tuner.outputs.summary import state_counts

    assert state_counts([trial])["failed"] == 1
    console = Console(record=True, width=200)
    console.print(summary_table([trial], ["eval_loss"]))
    assert "metric_missing" in console.export_text()


# -- a study's objective is fixed ---------------------------------------------------------------------


def test_check_same_objective_refuses_a_flip_or_another_metric():
    recorded = {"metric": "eval_accuracy", "direction": "maximize"}
    check_same_objective(recorded, "eval_accuracy", "maximize", study="s")
    check_same_objective({}, "eval_loss", "minimize", study="s")  # a study without the record: nothing to compare
    with pytest.raises(ConfigError, match=r"experiment\.direction: study 's' maximizes eval_accuracy, but the block"):
        check_same_objective(recorded, "eval_accuracy", "minimize", study="s")
    with pytest.raises(
        ConfigError, match=r"experiment\.metric: .*set `metric: eval_accuracy` and `direction: maximize`"
    ):
        check_same_objective(recorded, "eval_loss", "minimize", study="s")


def test_resume_refuses_a_direction_flip_even_with_allow_changes(make_block, tmp_path):
    """A study made when an unset direction meant minimize, for eval_accuracy: the block now infers
    maximize, and the study must not silently continue the other way."""
    from tuner.orchestrate.options import StartOptions
    from tuner.orchestrate.prepare import prepare_study
    from tuner.study.store import StudyStore

    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    block = load_block(make_block({"experiment.metric": "eval_accuracy", f"{T}.compute_accuracy": True}))
    options = StartOptions(budget="3", study="acc", storage=url, trials_dir=tmp_path)
    prepare_study(block, options).lease.release()
    StudyStore.open(url, "acc", create=False).set_attrs({"direction": "minimize"})
    flip = r"study 'acc' minimizes eval_accuracy, but the block asks to maximize .* ranked the wrong way round"
    for allow in (False, True):
        with pytest.raises(ConfigError, match=flip):
            prepare_study(block, StartOptions(**{**vars(options), "allow_changes": allow}))
    loss = load_block(make_block({"experiment.metric": "eval_loss"}))
    with pytest.raises(ConfigError, match=r"experiment\.metric: .*objective cannot change"):
        prepare_study(loss, StartOptions(**{**vars(options), "allow_changes": True}))
