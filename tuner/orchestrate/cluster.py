"""Ray itself: starting it locally or joining a cluster, and what the cluster offers trials.

Ray core only (no Ray Tune): local logical GPUs for tests, the environment Ray's workers inherit,
and the check that a multi-host cluster writes trial folders to shared storage.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import ray

from tuner.orchestrate.plan import RayPlan

log = logging.getLogger(__name__)


def init_ray(plan: RayPlan) -> None:
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # keep CUDA_VISIBLE_DEVICES="" on CPU
    # Ray SIGKILLs a dead worker's direct children: that would be a trial's guard, whose job is to
    # end the whole trial tree (torchrun's workers included) when its worker dies. Let it.
    os.environ.setdefault("RAY_kill_child_processes_on_worker_exit", "0")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": plan.verbose,
        "logging_level": logging.INFO if plan.verbose else logging.ERROR,
    }
    if plan.address:
        ray.init(address=plan.address, **kwargs)
        _warn_if_trials_dir_is_local(plan.trials_dir)
    else:
        logical_gpus = os.environ.get("TUNER_RAY_NUM_GPUS")  # GPUs Ray cannot detect, or logical ones in tests
        ray.init(**kwargs, **({"num_gpus": int(logical_gpus)} if logical_gpus else {}))


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
