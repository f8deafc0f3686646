from __future__ import annotations

import json

import pytest

from tuner.config import yaml_io
from tuner.config.block import load_block, parse_block


def test_yaml_reads_exponent_numbers_as_floats():
    data = yaml_io.loads("a: 1e-5\nb: 1.0e-4\nc: 2E3\nd: .5\ne: 'x1e5'\nf: 3\ng: -1e-3\n")
    assert data == {"a": 1e-5, "b": 1e-4, "c": 2000.0, "d": 0.5, "e": "x1e5", "f": 3, "g": -1e-3}
    assert all(isinstance(data[k], float) for k in "abcdg")


def test_demo_block_loads_with_typed_fields_and_passthrough(make_block):
    block = load_block(make_block({"runtime_info.input.training.neftune_noise_alpha": 5}))
    t = block.training
    assert t.learning_rate == pytest.approx(1e-3) and isinstance(t.learning_rate, float)
    assert t.passthrough == {"per_device_eval_batch_size": 20, "logging_steps": 5, "neftune_noise_alpha": 5}
    assert block.conversion.max_instances == 50
    assert list(block.evolving.tunable_params) == ["learning_rate", "num_train_epochs", "warmup_ratio"]


def test_tunable_params_as_list_means_space_defaults(make_block):
    block = load_block(make_block({"evolving.tunable_params": ["learning_rate", "max_instances"]}))
    assert block.evolving.tunable_params == {"learning_rate": None, "max_instances": None}


def test_relative_paths_resolve_against_the_block_folder(tmp_path, demo, monkeypatch):
    monkeypatch.chdir("/")
    block = load_block(demo.block)  # the demo block uses relative paths
    assert block.training.model_name_or_path == str(demo.model_dir)
    assert block.conversion.source == demo.root / "data" / "trajectories.jsonl"
    # a hub id stays untouched
    data = yaml_io.load(demo.block)
    data["runtime_info"]["input"]["training"]["model_name_or_path"] = "Qwen/Qwen3-8B"
    assert parse_block(data, base_dir=demo.root).training.model_name_or_path == "Qwen/Qwen3-8B"


def test_credentials_expand_env_and_never_leak(make_block, monkeypatch):
    monkeypatch.setenv("MY_WANDB_KEY", "sekrit-123")
    block = load_block(make_block({"credentials.wandb_api_key": "${MY_WANDB_KEY}", "credentials.hf_token": "$NOPE_X"}))
    monkeypatch.delenv("NOPE_X", raising=False)
    assert block.secret("wandb_api_key") == "sekrit-123"
    assert block.secret("hf_token") is None
    assert block.unresolved_env == {"hf_token": "NOPE_X"}
    public = json.dumps(block.public_dict())
    assert "sekrit-123" not in public and "sekrit-123" not in repr(block) and "sekrit-123" not in str(block)


def test_content_hash_ignores_credentials_but_not_training(make_block):
    a = load_block(make_block({"credentials.wandb_api_key": "one"}, name="a.yaml"))
    b = load_block(make_block({"credentials.wandb_api_key": "two"}, name="b.yaml"))
    c = load_block(make_block({"runtime_info.input.training.cutoff_len": 512}, name="c.yaml"))
    assert a.content_hash == b.content_hash != c.content_hash


def test_caller_data_is_not_modified(demo_data):
    before = json.dumps(demo_data, sort_keys=True)
    parse_block(demo_data)
    assert json.dumps(demo_data, sort_keys=True) == before
