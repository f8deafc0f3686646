"""A trial's measured peak GPU memory: a Trainer callback that writes it per rank, and its reader.

The callback runs inside LLaMA-Factory's training processes (tuner's torchrun entry registers it);
at each evaluation and at the end of training every rank writes
`<output_dir>/peak_memory/rank<r>.json` with `torch.cuda.max_memory_allocated()`, the figure the
memory estimate's `allocated` part predicts. Without CUDA it writes nothing. transformers and torch
are imported inside the factory only: tuner itself imports light.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FOLDER = "peak_memory"


def write_peak(output_dir: str | Path, rank: int, max_memory_allocated: int) -> Path:
    """Write one rank's peak (atomically: a reader never sees half a file)."""
    folder = Path(output_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank{rank}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"rank": rank, "max_memory_allocated": int(max_memory_allocated)}), encoding="utf-8")
    tmp.replace(path)
    return path


def read_peak(output_dir: str | Path) -> int | None:
    """The largest peak over the trial's ranks, in bytes; None when no rank wrote one (CPU, or the
    trial died before its first evaluation)."""
    peaks = []
    for path in sorted((Path(output_dir) / FOLDER).glob("rank*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            peaks.append(int(data["max_memory_allocated"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(peaks) if peaks else None


def peak_attrs(output_dir: str | Path) -> dict[str, Any]:
    """The trial attribute the study records beside its estimate (`memory_estimate_gib`)."""
    peak = read_peak(output_dir)
    return {} if peak is None else {"memory_peak_gib": round(peak / 2**30, 2)}


def peak_memory_callback() -> Any:
    """A transformers TrainerCallback writing each rank's torch.cuda.max_memory_allocated() to
    `<args.output_dir>/peak_memory/rank<r>.json` on every evaluate and at train end."""
    import torch
    from transformers import TrainerCallback

    class PeakMemoryCallback(TrainerCallback):  # type: ignore[misc]
        def _write(self, args: Any) -> None:
            if not torch.cuda.is_available():
                return
            rank = int(os.environ.get("RANK", getattr(args, "process_index", 0)))
            write_peak(args.output_dir, rank, torch.cuda.max_memory_allocated())

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._write(args)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._write(args)

    return PeakMemoryCallback()
