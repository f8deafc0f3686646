"""Keep a trial's global batch size when its block is promoted onto another number of GPUs.

The tuned learning rate belongs to the global batch the trial trained with: per_device × accum ×
processes (one process per GPU, one on the CPU). Production multiplies by the block's
`n_gpus_per_node`, so when that differs, gradient_accumulation_steps (then, if need be,
per_device_train_batch_size) changes so that the product stays the same, or promote refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError

PER_DEVICE, ACCUM = "per_device_train_batch_size", "gradient_accumulation_steps"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class TrialBatch:
    """What a trial trained with; `processes`/`global_batch` are None where an old trial did not say."""

    per_device: int
    accum: int
    gpus: int | None
    processes: int | None
    global_batch: int | None

    @property
    def ran_on(self) -> str:
        if self.processes is None:
            return "GPUs not recorded"
        return f"CPU, {_count(self.processes, 'process')}" if self.gpus == 0 else _count(self.processes, "GPU")


def trial_batch(params: dict[str, Any], attrs: dict[str, Any], recorded: dict[str, Any]) -> TrialBatch:
    """A trial's batch from its params and user attrs; untuned sizes from `recorded` (the training
    section it ran with). Older trials lack `processes`/`global_batch_size`: derived from `gpus`,
    or from each other."""
    per_device = int(params.get(PER_DEVICE, recorded.get(PER_DEVICE) or 1))
    accum = int(params.get(ACCUM, recorded.get(ACCUM) or 1))
    gpus = attrs.get("gpus")
    processes = attrs.get("processes")
    if processes is None and gpus is not None:
        processes = max(1, int(gpus))
    gbs = attrs.get("global_batch_size")
    if processes is None and gbs is not None and gbs % (per_device * accum) == 0:
        processes = gbs // (per_device * accum)
    if gbs is None and processes is not None:
        gbs = per_device * accum * processes
    return TrialBatch(per_device, accum, gpus, processes, gbs)


def fit_batch(trial: TrialBatch, gpus: int) -> tuple[int, int] | None:
    """(per_device, accum) with per_device × accum × gpus == the trial's global batch: the trial's
    per_device when an accum fits, else the largest per_device below it that does (memory per GPU
    was proven at the trial's size); None when no integers give it. Unknown global batch: the
    trial is taken to have run on `gpus`, so its sizes are kept."""
    target = trial.global_batch if trial.global_batch is not None else trial.per_device * trial.accum * gpus
    if target % gpus:
        return None
    need = target // gpus
    per_device = max(d for d in range(1, min(trial.per_device, need) + 1) if need % d == 0)
    return per_device, need // per_device


def batch_notes(number: int, trial: TrialBatch, fitted: tuple[int, int], gpus: int) -> tuple[str, ...]:
    """What the user is told: the sizes changed to keep the global batch, or the assumption made."""
    if trial.global_batch is None:
        return (
            f"trial {number} recorded neither its GPUs nor its global batch size (an older study): assumed it "
            f"ran on the production's {_count(gpus, 'GPU')}, so the batch sizes are kept as tuned "
            f"(global batch {trial.per_device * trial.accum * gpus})",
        )
    changed = [
        f"{key} {old} -> {new}"
        for key, old, new in ((PER_DEVICE, trial.per_device, fitted[0]), (ACCUM, trial.accum, fitted[1]))
        if old != new
    ]
    if not changed:
        return ()
    return (
        f"{' and '.join(changed)} so the global batch stays {trial.global_batch} on {_count(gpus, 'GPU')} "
        f"(trial: {trial.ran_on})",
    )


def refusal(number: int, trial: TrialBatch, gpus: int, file: Path, alternative: int | None) -> ConfigError:
    """Why no sizes keep the trial's global batch on `gpus`, and what to change instead."""
    gbs = trial.global_batch or 0
    fits = [d for d in range(1, max(gpus, trial.processes or 1) + 1) if gbs % d == 0]
    example = f" (e.g. --trial {alternative})" if alternative is not None else ""
    return ConfigError(
        "the promoted block must train with the trial's global batch size (per_device_train_batch_size × "
        f"gradient_accumulation_steps × n_gpus_per_node = {gbs}, as trial {number} ran on {trial.ran_on}); "
        f"{gbs} is not a multiple of n_gpus_per_node {gpus}, so no integer sizes give it",
        file=str(file),
        key="n_gpus_per_node",
        value=gpus,
        fix=f"set n_gpus_per_node to a divisor of {gbs} ({', '.join(map(str, fits))}), or promote a trial whose "
        f"global batch size is a multiple of {gpus} with --trial N{example}",
    )
