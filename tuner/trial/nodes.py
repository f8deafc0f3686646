"""A multi-node trial's parts beyond the first node: one torchrun per node, started and stopped together.

Node 0's part is the trial's own process (runner.py). The others are `NodePart`s, each run on its
node by whatever placed the trial there (Ray: orchestrate/multinode.py) and seen here only through
the `OtherNodes` protocol, so the trial layer stays free of Ray. All parts meet at node 0's address
and port (torchrun's static rendezvous: --nnodes N --node_rank i --master_addr --master_port).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from tuner.trial.classify import classify
from tuner.trial.launch import LaunchSpec, TrialProcess

# How long node 0 may go on without progress once another node's part ended cleanly. torchrun's
# agents wait for each other at an exit barrier (up to 300 s), so a clean end elsewhere means node 0's
# workers are done too and its own torchrun ends moments later (seconds under load); one that does not
# is stuck, and with no --trial-timeout nothing else would end it.
FINISH_GRACE_S = 600.0


@dataclass(frozen=True)
class PartEnd:
    """How a part on another node ended."""

    rank: int
    returncode: int
    tail: list[str]
    errors: list[str]

    @property
    def failed(self) -> bool:
        return self.returncode != 0

    def stop_reason(self) -> str:
        """Why the whole trial stops: the part's own exit class, so an OOM there is an OOM."""
        exit_class, why = classify(self.returncode, None, None, self.tail, self.errors)
        return f"{exit_class}: node {self.rank} of the trial: {why}"


def failure(ends: list[PartEnd]) -> PartEnd | None:
    """The first part that failed, the reason the whole trial stops. A part that ended cleanly is none:
    node 0's torchrun passed the same exit barrier and is ending too (stopping it then, when the two
    exits were seen a poll apart, recorded a healthy 2-node trial as metric_missing)."""
    return next((end for end in ends if end.failed), None)


def idle_stop(idle_s: float, timeout_s: float | None, ends: list[PartEnd], finished_for_s: float) -> str | None:
    """Why node 0 is stopped, if it is, having shown no progress for `idle_s` while another part has
    been seen ended cleanly for `finished_for_s` (0 when none has): the trial's timeout, and
    `FINISH_GRACE_S` after a clean end elsewhere, so a node 0 left waiting on its peers cannot hang
    the study when no timeout is set."""
    if timeout_s and idle_s > timeout_s:
        return f"timeout: no progress for {timeout_s:g} s (hung?)"
    finished = [str(end.rank) for end in ends if not end.failed]
    if finished and min(idle_s, finished_for_s) > FINISH_GRACE_S:
        return (
            f"timeout: node 0 of the trial still runs, without progress, {FINISH_GRACE_S:g} s after "
            f"node(s) {', '.join(finished)} finished cleanly (stuck?)"
        )
    return None


class OtherNodes(Protocol):
    """The trial's parts on its nodes 1..N-1."""

    @property
    def count(self) -> int:
        """How many other nodes (the trial spans count + 1)."""
        ...

    def start(self, spec: LaunchSpec, master_port: int) -> None:
        """Start every other node's part: node 0's launch (`spec`, with its address) and port."""
        ...

    def ends(self) -> list[PartEnd]:
        """The parts that have ended so far, cleanly or not (a healthy trial's parts end with node 0's)."""
        ...

    def stop(self, reason: str) -> None:
        """End every part's whole process tree on its node; returns once they are gone."""
        ...


def node_spec(spec: LaunchSpec, rank: int, gpu_ids: tuple[str, ...]) -> LaunchSpec:
    """Node `rank`'s launch: the same YAML and environment, its own log, pid file and GPUs."""
    folder = spec.yaml_path.parent
    return replace(
        spec,
        log_path=folder / f"train.node{rank}.log",
        pid_path=folder / f"trial.node{rank}.pid",
        node_rank=rank,
        gpu_ids=gpu_ids,
    )


class NodePart:
    """One node's torchrun of a multi-node trial, run on that node (under the trial's guard)."""

    def __init__(self, rank: int, gpu_ids: tuple[str, ...]) -> None:
        self.rank, self.gpu_ids = rank, gpu_ids
        self._process: TrialProcess | None = None

    def start(self, spec: LaunchSpec, master_port: int) -> None:
        self._process = TrialProcess(node_spec(spec, self.rank, self.gpu_ids), master_port=master_port).start()

    def poll(self) -> PartEnd | None:
        if self._process is None:
            return None
        code = self._process.poll()
        if code is None:
            return None
        self._process.wait()
        return PartEnd(self.rank, code, list(self._process.tail), list(self._process.errors))

    def stop(self, reason: str) -> None:
        if self._process is None:
            return
        self._process.stop(reason)
        if self._process.spec.pid_path is not None:
            Path(self._process.spec.pid_path).unlink(missing_ok=True)
