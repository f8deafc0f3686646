"""The program torchrun starts in every trial process: LLaMA-Factory's training plus tuner's callbacks.

LLaMA-Factory's own `launcher.py` calls `run_exp()` with no callbacks; tuner needs what the YAML
cannot say: evaluations at the study's progress points (the rungs every trial is compared at:
optimizer steps in `TUNER_EVAL_AT`, computed by `tuner.trial.render.eval_steps`), every metric of
those evaluations (LLaMA-Factory logs eval_loss alone), and the measured peak GPU memory of each
rank (`tuner.trial.peak_memory`). Run as
`python -m torch.distributed.run ... -m tuner.trial.lf_entry trial.yaml`; everything else (argument
parsing, the workflow, the final evaluation) is LLaMA-Factory's, unchanged.
"""

from __future__ import annotations

import os
from typing import Any

from tuner.trial.peak_memory import peak_memory_callback

EVAL_AT_ENV = "TUNER_EVAL_AT"  # comma-separated optimizer steps
TUNER_EVALS = "tuner_evals.jsonl"  # tuner/trial/progress.py reads it


def eval_at_from_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> frozenset[int]:
    raw = environ.get(EVAL_AT_ENV, "")
    return frozenset(int(part) for part in raw.split(",") if part.strip())


def eval_at_callback(steps: frozenset[int]) -> Any:
    """A transformers callback that asks for an evaluation after exactly these optimizer steps."""
    from transformers import TrainerCallback

    class EvalAtSteps(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step in steps:
                control.should_evaluate = True
            return control

    return EvalAtSteps()


def evals_callback() -> Any:
    """A transformers callback that appends every evaluation during training, all its metrics, to
    `output_dir/tuner_evals.jsonl` (rank 0): LLaMA-Factory's trainer_log.jsonl keeps only eval_loss.
    The final evaluation after training is not written: it is the trial's final value, read from
    eval_results.json, never an intermediate value the pruner could act on after the trial ended."""
    import json
    from pathlib import Path

    from transformers import TrainerCallback

    class EvalsToJsonl(TrainerCallback):  # type: ignore[misc]
        training = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.training = True

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.training = False

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> Any:
            if not (self.training and state.is_world_process_zero and metrics):
                return
            line = {"current_steps": state.global_step, "total_steps": state.max_steps, "epoch": state.epoch}
            line.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
            with (Path(args.output_dir) / TUNER_EVALS).open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")

    return EvalsToJsonl()


def callbacks() -> list[Any]:
    found: list[Any] = [evals_callback()]
    steps = eval_at_from_env()
    if steps:
        found.append(eval_at_callback(steps))
    found.append(peak_memory_callback())  # a no-op without CUDA
    return found


def main() -> None:
    from llamafactory.train.tuner import run_exp

    run_exp(callbacks=callbacks())


if __name__ == "__main__":
    main()
