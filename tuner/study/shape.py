"""The run shape a study records: GPUs and nodes per trial, concurrency, timeout, retries, keep-best, scheduler.

The GPUs per trial set the global batch size (per_device x accum x GPUs) and the progress unit;
`tune resume` and `--join` reuse the recorded shape (orchestrate/placement.py picks and checks it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class RunShape:
    gpus_per_trial: int = 0  # all the trial's GPUs, over all its nodes; 0 trains on the CPU
    nodes_per_trial: int = 1
    max_concurrent: int | None = None  # None: as many as the GPUs allow
    trial_timeout_s: float | None = None
    retries: int = 0
    keep_best: int = 1
    scheduler: str = "asha"
    gpu_memory_gib: float | None = None  # memory of one GPU of a trial; None: no memory check (CPU)

    @property
    def processes(self) -> int:
        """torchrun processes over all nodes: what the global batch and GPU-hours are counted in."""
        return self.gpus_per_trial or self.nodes_per_trial  # one per GPU; on the CPU one per node

    @property
    def gpus_per_node(self) -> int:
        return self.gpus_per_trial // self.nodes_per_trial

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunShape:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def describe(self) -> str:
        gpus = f"{self.gpus_per_trial} GPU(s)" if self.gpus_per_trial else "the CPU (no GPU)"
        nodes = f" on {self.nodes_per_trial} nodes" if self.nodes_per_trial > 1 else ""
        return f"{gpus}{nodes} per trial, {self.processes} process(es)"


def stored_shape(attrs: dict[str, Any], resumed: bool) -> RunShape | None:
    """The shape a study recorded; for studies from before the shape was recorded, what they did
    record (GPUs per trial, scheduler) with the defaults of that time."""
    if not resumed:
        return None
    if "shape" in attrs:
        return RunShape.from_dict(attrs["shape"])
    return RunShape(gpus_per_trial=int(attrs.get("gpus_per_trial") or 0), scheduler=attrs.get("scheduler", "asha"))
