"""Pure: (block with the trial's parameters, trial paths, prepared data) -> LLaMA-Factory YAML + DeepSpeed JSON.

The block's training keys pass through as the user wrote them (only keys they set, so
LLaMA-Factory's own defaults stay in force); a trial's parameters are already filled into the
block (`overrides.apply_params`); tuner owns the keys
that tie a trial to its workspace (paths, datasets, eval schedule, reporting). No secret is ever
rendered: credentials reach a trial through its environment only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.config import yaml_io
from tuner.config.block import Block
from tuner.trial.dataset import PreparedData
from tuner.trial.workspace import TrialPaths

# A trial outside a study (`tune trial`, `tune render`) evaluates at its own quarters; in a study it
# evaluates at the study's progress points instead (the rungs every trial is compared at).
EVALS_PER_TRIAL = 4


@dataclass(frozen=True)
class Rendered:
    args: dict[str, Any]  # the LLaMA-Factory YAML, as a mapping
    ds_config: dict[str, Any] | None
    total_steps: int
    global_batch_size: int
    eval_at: tuple[int, ...] = ()  # optimizer steps after which the trial evaluates (its end too, always)
    tokenized_cache: Path | None = None  # shared tokenized copy this trial uses, or fills

    @property
    def yaml_text(self) -> str:
        return yaml_io.dumps(self.args)


def optimizer_steps(n_train: int, per_device: int, accum: int, nproc: int, epochs: float) -> int:
    """Optimizer steps HF's Trainer takes (its rounding: batches per epoch, then // accumulation)."""
    batches = math.ceil(n_train / (per_device * max(1, nproc)))
    per_epoch = max(1, batches // accum + (1 if batches % accum else 0))
    return max(1, math.ceil(per_epoch * epochs))


def eval_steps(progress_points: tuple[int, ...], global_batch_size: int, total_steps: int) -> tuple[int, ...]:
    """The optimizer steps at which a trial evaluates: for each progress point (samples seen), the first
    step that reaches it (samples seen = steps x global batch, so within one batch of the point);
    points the trial never reaches, or reaches only at its last step, are left out (LLaMA-Factory
    evaluates the end anyway). Without points: the trial's own quarters."""
    if not progress_points:
        steps = {math.ceil(total_steps * k / EVALS_PER_TRIAL) for k in range(1, EVALS_PER_TRIAL)}
    else:
        steps = {math.ceil(point / max(1, global_batch_size)) for point in progress_points}
    return tuple(sorted(s for s in steps if 1 <= s < total_steps))


def render(
    block: Block,
    paths: TrialPaths,
    data: PreparedData,
    *,
    ds_config: dict[str, Any] | None,
    nproc: int = 1,
    multi_node: bool = False,
    run_name: str | None = None,
    resume_from: str | None = None,
    tokenized_path: Path | None = None,
    tokenized_cache: Path | None = None,
    progress_points: tuple[int, ...] = (),
) -> Rendered:
    training = block.training
    # Only keys the user set (extras included): LLaMA-Factory's defaults apply to the rest.
    args: dict[str, Any] = training.model_dump(mode="json", exclude_unset=True, exclude_none=True)

    per_device = int(args.get("per_device_train_batch_size", training.per_device_train_batch_size))
    accum = int(args.get("gradient_accumulation_steps", training.gradient_accumulation_steps))
    epochs = float(args.get("num_train_epochs", training.num_train_epochs))
    total = optimizer_steps(data.n_train, per_device, accum, nproc, epochs)
    gbs = per_device * accum * max(1, nproc)
    eval_at = eval_steps(progress_points, gbs, total)

    args.update(
        {
            "model_name_or_path": training.model_name_or_path,
            "stage": training.stage,
            "do_train": True,
            "finetuning_type": training.finetuning_type,
            "template": training.template,
            "dataset_dir": str(data.dataset_dir),
            "dataset": data.train_name,
            "eval_dataset": data.eval_name,
            "output_dir": str(paths.output_dir),
            # The final evaluation (do_eval); the intermediate ones come at `eval_at` from tuner's
            # callback (tuner/trial/lf_entry.py), not at a fixed interval.
            "do_eval": True,
            "eval_strategy": "no",
            "per_device_eval_batch_size": args.get("per_device_eval_batch_size", per_device),
            "logging_steps": min(int(args.get("logging_steps", 10)), max(1, total // EVALS_PER_TRIAL)),
            "report_to": "none" if block.experiment.wandb_mode == "disabled" else "wandb",
            "disable_tqdm": args.get("disable_tqdm", True),  # progress comes from trainer_log.jsonl
        }
    )
    if run_name:
        args["run_name"] = run_name
    # tuner decides these below / through the conversion; the production run's resume and overwrite
    # settings are not a trial's (a trial's output_dir is always fresh)
    for key in (
        "deepspeed",
        "eval_steps",
        "val_size",
        "max_samples",
        "tokenized_path",
        "resume_from_checkpoint",
        "overwrite_output_dir",
    ):
        args.pop(key, None)
    if tokenized_path is not None:
        args["tokenized_path"] = str(tokenized_path)
    if resume_from:  # a retry continuing an interrupted trial's checkpoint (its own output_dir stays fresh)
        args["resume_from_checkpoint"] = resume_from
    if ds_config is not None:
        args["deepspeed"] = str(paths.ds_config)
    if multi_node:  # data prepared once, by the first node's first process, for every node to read
        args["data_shared_file_system"] = True
    if training.save_steps is None and "save_strategy" not in args:
        args["save_strategy"] = "no"  # trials keep no checkpoints unless the block asks for them
    return Rendered(args, ds_config, total, gbs, eval_at, tokenized_cache)
