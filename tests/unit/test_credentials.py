"""Credentials reach a trial only through its environment, under the names their libraries read."""

from __future__ import annotations

import json

import pytest

from tuner.config.block import load_block
from tuner.config.preflight import run_preflight
from tuner.errors import ConfigError
from tuner.trial.prepare import TrialRequest, launch_env, preview
from tuner.trial.workspace import TrialPaths

HF, MS = "hf_" + "x" * 30, "ms-" + "y" * 30


def test_hub_tokens_in_training_become_credentials_and_reach_the_trial_by_env(make_block, tmp_path):
    block = load_block(
        make_block({"runtime_info.input.training.hf_hub_token": HF, "runtime_info.input.training.ms_hub_token": MS})
    )
    assert "hf_hub_token" not in block.training.passthrough and "ms_hub_token" not in block.training.passthrough
    assert (block.secret("hf_hub_token"), block.secret("ms_hub_token")) == (HF, MS)
    public = json.dumps(block.public_dict())
    assert HF not in public and MS not in public  # what the study records
    rendered = preview(block, {}, tmp_path / "trials")
    assert HF not in rendered.yaml_text and MS not in rendered.yaml_text  # what every trial YAML holds
    _, secrets = launch_env(TrialRequest(block, {}, TrialPaths(tmp_path / "t" / "0000")))
    assert secrets == {"HF_TOKEN": HF, "MODELSCOPE_API_TOKEN": MS}


def test_a_token_in_both_places_with_two_values_is_refused(make_block):
    path = make_block({"runtime_info.input.training.hf_hub_token": HF, "credentials.hf_hub_token": "other"})
    with pytest.raises(ConfigError, match=r"training.hf_hub_token: is set both in training and in credentials"):
        load_block(path)


def test_an_openmind_token_is_refused_by_preflight(make_block):
    block = load_block(make_block({"runtime_info.input.training.om_hub_token": "om-" + "z" * 30}))
    codes = {f.code: f.severity for f in run_preflight(block, check_lf=False)}
    assert codes["om-hub-token"] == "error"
