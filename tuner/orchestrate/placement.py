"""Picking the run shape: GPUs and nodes per trial from the block and the machine (or Ray cluster).

Picked before Ray starts any trial; a shape no node (or set of nodes) can run is refused here,
with the numbers, rather than left waiting for resources forever. A resumed or joined study reuses
its recorded shape (tuner/study/shape.py); a resume that would change the GPUs or nodes per trial
(hence the global batch size and the progress unit) is reported as a change.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

from tuner.config.block import Block
from tuner.config.machine import gpu_memory_bytes, gpus_present
from tuner.errors import ConfigError
from tuner.study.shape import RunShape

# Flags that define what a trial is (global batch size, progress unit): a resume may not change them silently.
DEFINING = {"gpus_per_trial": "--gpus-per-trial", "nodes_per_trial": "--nodes-per-trial"}


@dataclass(frozen=True)
class Machine:
    """Where trials run: GPUs of each alive node (this machine: one node)."""

    node_gpus: tuple[int, ...]
    where: str  # "this machine" | "the Ray cluster at HOST:PORT"
    cluster: bool = False

    @property
    def max_node_gpus(self) -> int:
        return max(self.node_gpus, default=0)

    @property
    def total_gpus(self) -> int:
        return sum(self.node_gpus)


def default_gpus(block: Block, machine: Machine, nodes: int | None) -> int:
    """The block's n_gpus_per_node (times the nodes asked for) where there are GPUs; 0 where none."""
    return block.n_gpus_per_node * (nodes or 1) if machine.max_node_gpus > 0 else 0


def _nodes_for(gpus: int, machine: Machine) -> int:
    """More GPUs than one node has make a multi-node trial on a cluster (evenly split)."""
    if not machine.cluster or gpus <= machine.max_node_gpus or machine.max_node_gpus == 0:
        return 1
    return math.ceil(gpus / machine.max_node_gpus)


def check_fits(shape: RunShape, machine: Machine, *, flag: str = "--gpus-per-trial") -> None:
    """Refuse a shape no node (or set of nodes) can ever run: such a trial would wait forever."""
    gpus, nodes = shape.gpus_per_trial, shape.nodes_per_trial
    if nodes > 1 and not machine.cluster:
        raise ConfigError(
            f"a trial on {nodes} nodes needs a Ray cluster, but trials run on {machine.where}",
            key="--nodes-per-trial",
            value=nodes,
            fix="pass --address of a Ray cluster, or --nodes-per-trial 1",
        )
    if gpus % nodes:
        raise ConfigError(
            f"{gpus} GPU(s) per trial do not split evenly over {nodes} nodes",
            key=flag,
            value=gpus,
            fix=f"use a multiple of {nodes} GPUs, e.g. --gpus-per-trial {nodes * max(1, gpus // nodes)}",
        )
    per_node = gpus // nodes
    fitting = sum(1 for g in machine.node_gpus if g >= per_node)
    if fitting >= nodes:
        return
    largest = machine.max_node_gpus
    if nodes == 1:
        rule = f"a trial asks for {gpus} GPU(s) but the largest node of {machine.where} has {largest}"
        fix = f"use --gpus-per-trial {largest} (the global batch size changes with it)" if largest else ""
        if machine.cluster and largest:
            fix += f", or --nodes-per-trial {math.ceil(gpus / largest)} to span nodes"
        fix = fix or "use --gpus-per-trial 0 to train on the CPU, or --address of a Ray cluster with GPUs"
    else:
        rule = (
            f"a trial asks for {per_node} GPU(s) on each of {nodes} nodes but {machine.where} has "
            f"{fitting} node(s) with that many (GPUs per node: {list(machine.node_gpus)})"
        )
        fix = "use fewer --nodes-per-trial or --gpus-per-trial, or add nodes to the cluster"
    raise ConfigError(rule, key=flag, value=gpus, fix=fix)


def resolve_shape(
    given: dict[str, Any], block: Block, machine: Machine, stored: RunShape | None
) -> tuple[RunShape, list[str], list[str]]:
    """The shape this driver runs, the changes against the study's record, and warnings.

    `given`: the flags the user passed (None = not passed). A new study fills the rest from the block
    and the machine; a resumed or joined study from its record."""
    given = {k: v for k, v in given.items() if v is not None}
    warnings: list[str] = []
    if stored is not None:
        shape = replace(stored, **given)
        changes = [
            f"{flag} {getattr(stored, key)} -> {getattr(shape, key)}"
            for key, flag in DEFINING.items()
            if getattr(stored, key) != getattr(shape, key)
        ]
        check_fits(shape, machine, flag="--gpus-per-trial" if "gpus_per_trial" in given else "the study's shape")
        return shape, changes, warnings
    gpus = given.get("gpus_per_trial")
    if gpus is None:
        gpus = default_gpus(block, machine, given.get("nodes_per_trial"))
    elif gpus == 0 and machine.max_node_gpus > 0:
        warnings.append(
            f"--gpus-per-trial 0: trials train on the CPU although {machine.where} has "
            f"{machine.total_gpus} GPU(s); drop the flag to use n_gpus_per_node={block.n_gpus_per_node} per trial"
        )
    nodes = given.get("nodes_per_trial") or _nodes_for(gpus, machine)
    memory = given.get("gpu_memory_gib")
    if memory is None and gpus:  # the memory check's limit: this node's GPUs (a cluster's: --gpu-memory)
        found = gpu_memory_bytes()
        memory = found / 2**30 if found else None
    shape = RunShape(**{**given, "gpus_per_trial": gpus, "nodes_per_trial": nodes, "gpu_memory_gib": memory})
    check_fits(shape, machine, flag="--gpus-per-trial" if "gpus_per_trial" in given else "n_gpus_per_node")
    return shape, [], warnings


def default_concurrency(shape: RunShape, machine: Machine) -> int:
    """Trials at once: all the GPUs / GPUs per trial; one at a time on the CPU."""
    if not shape.gpus_per_trial:
        return 1
    return max(1, machine.total_gpus // shape.gpus_per_trial)


def local_gpus() -> int:
    """GPUs a local Ray gets: detected ones, or TUNER_RAY_NUM_GPUS (logical GPUs, e.g. in tests)."""
    logical = os.environ.get("TUNER_RAY_NUM_GPUS")
    return int(logical) if logical else gpus_present()


def local_machine() -> Machine:
    return Machine((local_gpus(),), "this machine")
