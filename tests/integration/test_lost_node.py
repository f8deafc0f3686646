"""A multi-node trial whose other node is lost: the reason names that node (real Ray, one machine)."""

from __future__ import annotations

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from tuner.orchestrate.multinode import RayOtherNodes
from tuner.trial.nodes import failure


@ray.remote(num_cpus=0)
def _lose_node(nodes: int, lost_rank: int) -> list:
    """Inside the trial's placement group, as the trainable runs: start the other nodes' actors,
    lose one (its actor killed, as when its machine goes), and report what the trial sees."""
    others = RayOtherNodes(nodes, 0)
    others.placements()  # every actor is up
    ray.kill(others._actors[lost_rank - 1])
    return others.ends()


def test_a_lost_node_of_a_trial_is_named_by_its_rank():
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    try:
        group = placement_group([{"CPU": 1}] * 3)  # a 3-node trial's bundles, packed on this machine
        ray.get(group.ready(), timeout=120)
        in_group = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)
        ends = ray.get(_lose_node.options(scheduling_strategy=in_group).remote(3, 2), timeout=120)
    finally:
        ray.shutdown()
    assert [end.rank for end in ends] == [2]  # node 1 is still running: not an end
    lost = failure(ends)
    assert lost is not None
    reason = lost.stop_reason()  # what the trial records: the node, that it was lost, and Ray's why
    assert reason.startswith("killed: node 2 of the trial: the node was lost (ActorDiedError: "), reason
    assert "killed by `ray.kill`" in reason and "\n" not in reason
