"""tuner's torchrun entry: the study's eval steps reach LLaMA-Factory's trainer as evaluations."""

from __future__ import annotations

from tuner.trial.lf_entry import EVAL_AT_ENV, eval_at_callback, eval_at_from_env


def test_the_trainer_evaluates_after_exactly_the_given_steps():
    from transformers import TrainerControl, TrainerState

    steps = eval_at_from_env({EVAL_AT_ENV: "4,10"})
    assert steps == {4, 10} and eval_at_from_env({}) == frozenset()
    callback = eval_at_callback(steps)
    evaluated = []
    for step in range(1, 13):
        control = TrainerControl()
        callback.on_step_end(None, TrainerState(global_step=step), control)
        if control.should_evaluate:
            evaluated.append(step)
    assert evaluated == [4, 10]


def test_every_metric_of_an_intermediate_eval_is_written_and_the_final_eval_is_not(tmp_path):
    """LLaMA-Factory's trainer_log.jsonl keeps eval_loss alone; tuner's file keeps every metric of the
    evaluations during training, so eval_accuracy (or BLEU) gets intermediate values and early stopping."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from tuner.trial.lf_entry import evals_callback
    from tuner.trial.progress import TrialFollower

    args, control = SimpleNamespace(output_dir=str(tmp_path)), TrainerControl()
    callback = evals_callback()
    (tmp_path / "trainer_log.jsonl").write_text(
        '{"current_steps": 2, "total_steps": 8, "loss": 3.0}\n{"current_steps": 4, "total_steps": 8, "eval_loss": 2.0}\n'
    )
    callback.on_train_begin(args, TrainerState(global_step=0, max_steps=8), control)
    metrics = {"eval_loss": 2.0, "eval_accuracy": 0.25, "epoch": 0.5}
    callback.on_evaluate(args, TrainerState(global_step=4, max_steps=8), control, metrics=metrics)
    callback.on_train_end(args, TrainerState(global_step=8, max_steps=8), control)
    callback.on_evaluate(args, TrainerState(global_step=8, max_steps=8), control, metrics={"eval_accuracy": 0.5})
    records = TrialFollower(tmp_path).poll()
    assert [(r.step, r.loss, r.eval_metrics) for r in records] == [
        (2, 3.0, None),  # training line; the eval line of trainer_log.jsonl is replaced by tuner's
        (4, None, {"eval_loss": 2.0, "eval_accuracy": 0.25}),
    ]
