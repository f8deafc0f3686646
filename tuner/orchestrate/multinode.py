"""Multi-node trials on Ray: one torchrun per node, placed together, started and stopped together.

A trial that spans N nodes gets one Ray placement group of N bundles (STRICT_SPREAD: one per node).
Its trainable runs in bundle 0 and launches node 0's torchrun itself (trial/runner.py); for nodes
1..N-1 it starts one `_NodeActor` in each other bundle, which runs that node's torchrun
(trial/nodes.py `NodePart`) under the same guard as any trial. All meet at node 0's address and a
free port there. The actors belong to the trainable: when Ray stops the trial (the scheduler, the
budget, a lost worker), it kills them with it, and each part's guard then ends its process tree on
its own node. `stop_other_nodes` lets the driver make sure of that before recording the outcome.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import get_current_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from tuner.trial.launch import LaunchSpec, stop_recorded
from tuner.trial.nodes import NodePart, PartEnd

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 30.0


def placement_bundles(nodes: int, gpus_per_node: int) -> list[dict[str, float]]:
    """One bundle per node: a CPU for the launcher and that node's GPUs."""
    bundle: dict[str, float] = {"CPU": 1}
    if gpus_per_node:
        bundle["GPU"] = gpus_per_node
    return [dict(bundle) for _ in range(nodes)]


@ray.remote(num_cpus=0, max_restarts=0)
class _NodeActor:
    """Runs on one node of the trial: that node's torchrun."""

    def __init__(self, rank: int) -> None:
        gpu_ids = tuple(str(g) for g in ray.get_gpu_ids())
        self.part = NodePart(rank, gpu_ids)
        self.where = {
            "rank": rank,
            "ray_node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "gpu_ids": list(gpu_ids),
        }

    def placement(self) -> dict[str, Any]:
        return self.where

    def start(self, spec: LaunchSpec, master_port: int) -> None:
        self.part.start(spec, master_port)

    def poll(self) -> PartEnd | None:
        return self.part.poll()

    def stop(self, reason: str) -> None:
        self.part.stop(reason)


class RayOtherNodes:
    """`OtherNodes` for a trial placed by Ray: the actors on bundles 1..N-1 of its placement group."""

    def __init__(self, nodes: int, gpus_per_node: int) -> None:
        group = get_current_placement_group()
        if group is None:
            raise RuntimeError("a multi-node trial must run inside its placement group")
        self._actors = [
            _NodeActor.options(  # type: ignore[attr-defined]
                num_cpus=1,
                num_gpus=gpus_per_node,
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=rank),
            ).remote(rank)
            for rank in range(1, nodes)
        ]

    @property
    def count(self) -> int:
        return len(self._actors)

    def placements(self) -> list[dict[str, Any]]:
        return list(ray.get([a.placement.remote() for a in self._actors], timeout=POLL_TIMEOUT_S))

    def start(self, spec: LaunchSpec, master_port: int) -> None:
        ray.get([a.start.remote(spec, master_port) for a in self._actors], timeout=POLL_TIMEOUT_S)

    def ends(self) -> list[PartEnd]:
        """Every part that has ended; a node whose actor is gone or does not answer within
        POLL_TIMEOUT_S is a failed part of its own rank, so the trial's reason names the node lost."""
        polls = [actor.poll.remote() for actor in self._actors]
        ray.wait(polls, num_returns=len(polls), timeout=POLL_TIMEOUT_S)
        ends = []
        for rank, poll in enumerate(polls, start=1):
            try:
                end = ray.get(poll, timeout=0)
            except ray.exceptions.GetTimeoutError:
                end = PartEnd(rank, -9, [], [f"the node was lost (it did not answer for {POLL_TIMEOUT_S:g} s)"])
            except ray.exceptions.RayActorError as e:
                said = " ".join(str(e).split())  # Ray's reason (killed, out of memory, node died) on one line
                end = PartEnd(rank, -9, [], [f"the node was lost ({type(e).__name__}: {said[:400]})"])
            if end is not None:
                ends.append(end)
        return ends

    def stop(self, reason: str) -> None:
        try:
            ray.get([a.stop.remote(reason) for a in self._actors], timeout=POLL_TIMEOUT_S)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            log.warning("a node of the trial did not confirm its stop; its guard ends its processes")
        for actor in self._actors:
            ray.kill(actor)


@ray.remote(num_cpus=0)
def _stop_here(pid_path: str) -> bool:
    return stop_recorded(Path(pid_path))


def stop_other_nodes(trial_dir: Path, placement: dict[str, Any]) -> None:
    """End whatever is left of a trial's parts on its other nodes, on each node (through Ray), before
    its outcome is recorded: a part's pid file names its process group on that node."""
    pending = []
    for node in placement.get("nodes", [])[1:]:
        pid_path = trial_dir / f"trial.node{node['rank']}.pid"
        if not pid_path.exists():
            continue
        strategy = NodeAffinitySchedulingStrategy(node["ray_node_id"], soft=False)
        pending.append(_stop_here.options(scheduling_strategy=strategy).remote(str(pid_path)))
    if pending:
        try:
            ray.get(pending, timeout=60)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as e:
            log.warning("could not confirm the stop of a trial's other nodes (%s): their guards end them", e)
