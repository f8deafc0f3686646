"""The run shape: picked from the block and the machine, checked before Ray, kept on resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.config.block import load_block
from tuner.errors import ConfigError
from tuner.orchestrate.placement import Machine, default_concurrency, local_machine, resolve_shape
from tuner.study.shape import RunShape, stored_shape

NODE_8 = Machine((8,), "this machine")
CPU = Machine((0,), "this machine")
CLUSTER_4x2 = Machine((4, 4), "the Ray cluster at h:6379", cluster=True)
FLAGS = dict.fromkeys(("gpus_per_trial", "nodes_per_trial", "max_concurrent", "retries"))


@pytest.fixture()
def block8(make_block):
    return load_block(make_block({"n_gpus_per_node": 8}))


def test_a_gpu_node_trains_with_the_blocks_gpus_by_default(block8):
    shape, changes, warnings = resolve_shape(FLAGS, block8, NODE_8, None)
    assert (shape.gpus_per_trial, shape.nodes_per_trial, shape.processes) == (8, 1, 8)
    assert changes == [] and warnings == []
    assert default_concurrency(shape, NODE_8) == 1


def test_a_cpu_machine_trains_on_the_cpu(block8):
    shape, _, warnings = resolve_shape(FLAGS, block8, CPU, None)
    assert (shape.gpus_per_trial, shape.processes) == (0, 1) and warnings == []
    assert default_concurrency(shape, CPU) == 1


def test_cpu_trials_on_a_gpu_node_need_the_flag_and_warn(block8):
    shape, _, warnings = resolve_shape({**FLAGS, "gpus_per_trial": 0}, block8, NODE_8, None)
    assert shape.gpus_per_trial == 0
    assert len(warnings) == 1 and "8 GPU(s)" in warnings[0] and "n_gpus_per_node=8" in warnings[0]


def test_the_flag_overrides_the_block_and_sets_concurrency(block8):
    shape, _, _ = resolve_shape({**FLAGS, "gpus_per_trial": 2}, block8, NODE_8, None)
    assert shape.gpus_per_trial == 2 and default_concurrency(shape, NODE_8) == 4


def test_more_gpus_than_any_node_is_refused_with_the_numbers(block8):
    with pytest.raises(ConfigError, match=r"n_gpus_per_node: a trial asks for 8 GPU\(s\) but the largest node") as e:
        resolve_shape(FLAGS, block8, Machine((4,), "this machine"), None)
    assert "has 4" in str(e.value) and "--gpus-per-trial 4" in str(e.value)
    with pytest.raises(ConfigError, match=r"--gpus-per-trial: a trial asks for 16"):
        resolve_shape({**FLAGS, "gpus_per_trial": 16}, block8, NODE_8, None)


def test_nodes_need_a_cluster(block8):
    with pytest.raises(ConfigError, match="needs a Ray cluster"):
        resolve_shape({**FLAGS, "nodes_per_trial": 2}, block8, NODE_8, None)


def test_more_gpus_than_a_node_span_nodes_on_a_cluster(block8):
    shape, _, _ = resolve_shape(FLAGS, block8, CLUSTER_4x2, None)
    assert (shape.gpus_per_trial, shape.nodes_per_trial, shape.gpus_per_node, shape.processes) == (8, 2, 4, 8)
    with pytest.raises(ConfigError, match=r"4 GPU\(s\) on each of 3 nodes"):
        resolve_shape({**FLAGS, "gpus_per_trial": 12, "nodes_per_trial": 3}, block8, CLUSTER_4x2, None)
    with pytest.raises(ConfigError, match="do not split evenly"):
        resolve_shape({**FLAGS, "gpus_per_trial": 7, "nodes_per_trial": 2}, block8, CLUSTER_4x2, None)


def test_cpu_trials_can_span_the_nodes_of_a_cluster(block8):
    cpu_cluster = Machine((0, 0), "the Ray cluster at h:6379", cluster=True)
    shape, _, _ = resolve_shape({**FLAGS, "nodes_per_trial": 2}, block8, cpu_cluster, None)
    assert (shape.gpus_per_trial, shape.nodes_per_trial, shape.processes) == (0, 2, 2)


def test_a_resumed_study_keeps_its_shape_and_reports_a_change(block8):
    stored = RunShape(gpus_per_trial=8, retries=2, keep_best=3)
    shape, changes, _ = resolve_shape(FLAGS, block8, NODE_8, stored)
    assert shape == stored and changes == []
    shape, changes, _ = resolve_shape({**FLAGS, "retries": 0}, block8, NODE_8, stored)
    assert shape.retries == 0 and changes == []  # how the study runs, not what a trial is
    shape, changes, _ = resolve_shape({**FLAGS, "gpus_per_trial": 4}, block8, NODE_8, stored)
    assert changes == ["--gpus-per-trial 8 -> 4"]


def test_a_gpu_study_cannot_resume_on_a_cpu_machine(block8):
    with pytest.raises(ConfigError, match=r"the study's shape: a trial asks for 8 GPU\(s\)"):
        resolve_shape(FLAGS, block8, CPU, RunShape(gpus_per_trial=8))


def test_shape_round_trip_and_older_studies():
    shape = RunShape(gpus_per_trial=8, nodes_per_trial=2, max_concurrent=3, trial_timeout_s=60.0, retries=1)
    assert RunShape.from_dict(shape.to_dict()) == shape
    assert stored_shape({"shape": shape.to_dict()}, resumed=True) == shape
    assert stored_shape({"gpus_per_trial": 2, "scheduler": "none"}, resumed=True) == RunShape(2, scheduler="none")
    assert stored_shape({}, resumed=False) is None


def test_local_machine_counts_logical_gpus(monkeypatch):
    monkeypatch.setenv("TUNER_RAY_NUM_GPUS", "8")
    assert local_machine().node_gpus == (8,)


def test_fake_nvidia_smi_is_a_gpu_node(gpu_node, monkeypatch):
    from tuner.config.machine import gpus_present

    gpu_node(8)
    monkeypatch.delenv("TUNER_RAY_NUM_GPUS")  # nvidia-smi alone
    assert gpus_present() == 8 and local_machine().node_gpus == (8,)


def test_tune_start_refuses_a_trial_larger_than_the_node_before_ray_starts(gpu_node, make_block, tmp_path):
    """The training-block spec's first failure mode, from the user's side: the block says 8 GPUs."""
    env = gpu_node(4)
    block = make_block({"n_gpus_per_node": 8})
    tune = str(Path(sys.executable).with_name("tune"))
    done = subprocess.run(
        [tune, "start", "--config", str(block), "--budget", "1", "--trials-dir", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "COLUMNS": "200"},
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "a trial asks for 8 GPU(s) but the largest node of this machine has 4" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "t" / ".ray").exists()  # Ray never started


def test_cluster_concurrency_follows_the_clusters_gpus(monkeypatch):
    """Without --max-concurrent a cluster study holds as many trials as the cluster's GPUs allow,
    re-read as nodes join or leave."""
    from tuner.orchestrate import cluster

    gpus = {"GPU": 8.0}
    monkeypatch.setattr(cluster.ray, "cluster_resources", lambda: dict(gpus))
    capacity = cluster.ClusterCapacity(gpus_per_trial=2, every_s=0)
    assert capacity() == 4
    gpus["GPU"] = 16.0  # a node joined
    assert capacity() == 8
    gpus.clear()  # every GPU node left: one trial is still let through, and waits for resources
    assert capacity() == 1
    assert cluster.ClusterCapacity(gpus_per_trial=0, every_s=0)() == 1


def test_a_gpu_study_records_its_gpus_memory_for_the_memory_check(gpu_node, block8):
    """The limit the memory estimate is held against: nvidia-smi's (80 GiB on the simulated node),
    --gpu-memory where the driver cannot see the GPUs, none for CPU trials; resume keeps it."""
    gpu_node(8)
    shape, _, _ = resolve_shape(FLAGS, block8, NODE_8, None)
    assert shape.gpu_memory_gib == 80
    given, _, _ = resolve_shape({**FLAGS, "gpu_memory_gib": 141.0}, block8, NODE_8, None)
    assert given.gpu_memory_gib == 141.0
    cpu, _, _ = resolve_shape({**FLAGS, "gpus_per_trial": 0}, block8, NODE_8, None)
    assert cpu.gpu_memory_gib is None
    resumed, changes, _ = resolve_shape(FLAGS, block8, NODE_8, RunShape.from_dict(shape.to_dict()))
    assert resumed.gpu_memory_gib == 80 and changes == []
