"""Ray itself: starting it locally or joining a cluster, and what the cluster offers trials.

Ray core only (no Ray Tune): local logical GPUs for tests, the environment Ray's workers inherit,
and the check that a multi-host cluster writes trial folders to shared storage.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import ray

from tuner.orchestrate.placement import Machine
from tuner.orchestrate.plan import RayPlan

log = logging.getLogger(__name__)


def init_ray(plan: RayPlan) -> None:
    """Start a local Ray (with TUNER_RAY_NUM_GPUS logical GPUs if set) or join `plan.address`."""
    if ray.is_initialized():
        return
    connect(plan.address, plan.verbose)
    if plan.address:
        _warn_if_trials_dir_is_local(plan.trials_dir)


def connect(address: str | None, verbose: bool = False) -> None:
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # keep CUDA_VISIBLE_DEVICES="" on CPU
    # Ray SIGKILLs a dead worker's direct children: that would be a trial's guard, whose job is to
    # end the whole trial tree (torchrun's workers included) when its worker dies. Let it.
    os.environ.setdefault("RAY_kill_child_processes_on_worker_exit", "0")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        logical_gpus = os.environ.get("TUNER_RAY_NUM_GPUS")  # GPUs Ray cannot detect, or logical ones in tests
        ray.init(**kwargs, **({"num_gpus": int(logical_gpus)} if logical_gpus else {}))


def cluster_machine(address: str, verbose: bool = False) -> Machine:
    """The GPUs of each alive node of the cluster at `address` (joins it: the shape is checked
    against what the cluster has before any trial is started)."""
    connect(address, verbose)
    gpus = tuple(int(node.get("Resources", {}).get("GPU", 0)) for node in ray.nodes() if node.get("Alive"))
    return Machine(gpus, f"the Ray cluster at {address}", cluster=True)


class ClusterCapacity:
    """Trials the cluster can hold at once now: its GPUs / GPUs per trial, re-read every `every_s`
    seconds, so concurrency follows nodes that join or leave."""

    def __init__(self, gpus_per_trial: int, every_s: float = 10.0) -> None:
        self.gpus_per_trial, self.every_s = gpus_per_trial, every_s
        self._value, self._read_at = 1, -math.inf

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self._read_at >= self.every_s:
            gpus = int(ray.cluster_resources().get("GPU", 0))
            self._value = max(1, gpus // self.gpus_per_trial) if self.gpus_per_trial else 1
            self._read_at = now
        return self._value


LOCAL_FILESYSTEMS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs", "vfat"}


def filesystem_type(path: Path) -> str:
    """Type of the filesystem holding `path`, from /proc/mounts (longest matching mount point)."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in mounts:
        parts = line.split()
        covers = len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/"))
        if covers and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def _warn_if_trials_dir_is_local(trials_dir: Path) -> None:
    """Trials on other nodes write their workspaces under --trials-dir: it must be shared storage."""
    hosts = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    fs = filesystem_type(trials_dir)
    if len(hosts) > 1 and fs in LOCAL_FILESYSTEMS:
        log.warning(
            "--trials-dir %s is on a local %s filesystem, but the Ray cluster spans %d hosts: "
            "trials on other hosts cannot write there. Use a shared filesystem (NFS, Lustre, ...) "
            "mounted at the same path on every node.",
            trials_dir,
            fs,
            len(hosts),
        )
