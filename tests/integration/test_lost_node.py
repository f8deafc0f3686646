"""A multi-node trial whose other nodes are lost or stop answering: the reason names the node (real
Ray, one machine: a trial's bundles packed here, one node's actor killed, another's kept busy)."""

from __future__ import annotations

import time

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from tuner.orchestrate import multinode
from tuner.trial.nodes import PartEnd, failure


@ray.remote(num_cpus=0)
def _lose_nodes() -> list[PartEnd]:
    """Inside a 4-node trial's placement group, as the trainable runs: start the other nodes' actors,
    keep node 1's busy past the poll timeout (a hung node), kill node 2's (its machine gone), leave
    node 3 running; report what the trial sees."""
    others = multinode.RayOtherNodes(4, 0)
    others.placements()  # every actor is up
    multinode.POLL_TIMEOUT_S = 2.0  # this worker's copy: how long a poll waits for a node
    busy, lost = others._actors[0], others._actors[1]
    busy.__ray_call__.remote(lambda self: time.sleep(10))
    ray.kill(lost)
    return others.ends()


def test_lost_and_silent_nodes_of_a_trial_are_named_by_their_rank():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        group = placement_group([{"CPU": 1}] * 4)
        ray.get(group.ready(), timeout=120)
        in_group = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)
        ends = ray.get(_lose_nodes.options(scheduling_strategy=in_group).remote(), timeout=120)
    finally:
        ray.shutdown()
    assert [end.rank for end in ends] == [1, 2]  # node 3 is still running: not an end
    silent, lost = (end.stop_reason() for end in ends)  # what the trial records, if it is the first
    assert silent == "killed: node 1 of the trial: the node was lost (it did not answer for 2 s)"
    assert lost.startswith("killed: node 2 of the trial: the node was lost (ActorDiedError: "), lost
    assert "killed by `ray.kill`" in lost and "\n" not in lost  # Ray's why, on one line
    assert failure(ends) is ends[0]
