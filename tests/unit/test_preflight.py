from __future__ import annotations

import json

import pytest

from tuner.config.block import load_block
from tuner.config.preflight import run_preflight

T = "runtime_info.input.training"


def _codes(block, **kw):
    return {f.code: f for f in run_preflight(block, **kw)}


@pytest.fixture(autouse=True)
def _no_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def test_demo_block_is_clean(make_block):
    findings = run_preflight(load_block(make_block()))
    assert [f for f in findings if f.severity != "note"] == []


@pytest.mark.parametrize(
    ("changes", "code", "severity"),
    [
        ({f"{T}.cutoff_len": 40000}, "rope-scaling", "error"),
        (
            {f"{T}.save_only_model": True, f"{T}.resume_from_checkpoint": "/x/checkpoint-5"},
            "resume-model-only",
            "error",
        ),
        ({f"{T}.save_only_model": True}, "no-resume", "note"),
        (
            {"experiment.wandb_mode": "online", "credentials.wandb_api_key": "${TUNER_UNSET_VAR_X}"},
            "wandb-key",
            "error",
        ),
        ({f"{T}.flash_attn": "fa2"}, "flash-attn", "warning"),
        ({f"{T}.use_unsloth": True}, "unsloth-zero3", "error"),
        ({f"{T}.dataset": "old_lf_name"}, "dataset-key", "warning"),
        ({f"{T}.model_name_or_path": "/no/such/model"}, "model-missing", "error"),
        ({f"{T}.deepspeed": "my_missing_ds.json"}, "deepspeed", "error"),
        ({f"{T}.learning_rte": 1e-4}, "unknown-lf-key", "error"),
        ({f"{T}.template": "qwen3_nothinkk"}, "unknown-template", "error"),
        ({"evolving.tunable_params": ["dropout"]}, "search-space", "error"),
        ({"n_gpus_per_node": 8}, "no-gpu", "note"),
        ({"runtime_info.input.conversion.eval_instances": 400}, "data-small", "error"),
    ],
)
def test_each_gotcha_is_found_with_a_fix(make_block, changes, code, severity):
    findings = _codes(load_block(make_block(changes)))
    assert code in findings, findings
    assert findings[code].severity == severity
    assert findings[code].fix and findings[code].key


def test_reasoning_data_with_nothink_template_warns(make_block, demo):
    reasoning_source = str(demo.root / "data" / "trajectories_reasoning.jsonl")
    block = load_block(make_block({"runtime_info.input.conversion.source": reasoning_source}))
    finding = _codes(block)["template-drops-reasoning"]
    assert "qwen3_nothink" in finding.message and "template: qwen3" in finding.fix
    fixed = load_block(
        make_block({"runtime_info.input.conversion.source": reasoning_source, f"{T}.template": "qwen3"}, name="b2.yaml")
    )
    assert "template-drops-reasoning" not in _codes(fixed)


def test_overwrite_output_dir_on_existing_checkpoints(make_block, tmp_path):
    out = tmp_path / "prod-run"
    (out / "checkpoint-500").mkdir(parents=True)
    block = load_block(make_block({f"{T}.output_dir": str(out), f"{T}.overwrite_output_dir": True}))
    assert _codes(block)["overwrite-checkpoints"].severity == "error"
    safe = load_block(make_block({f"{T}.output_dir": str(out), f"{T}.overwrite_output_dir": False}, name="c.yaml"))
    assert "overwrite-checkpoints" not in _codes(safe)


def test_relative_output_dir_is_explained(make_block, tmp_path):
    block = load_block(make_block({f"{T}.output_dir": "runs/qwen3-8b-sft"}))
    note = _codes(block)["output-dir-relative"]
    assert str(tmp_path / "artifacts" / "model" / "qwen3-8b-sft") in note.message


def test_gpu_count_mismatch(make_block, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert _codes(load_block(make_block({"n_gpus_per_node": 8})))["gpu-count"].severity == "warning"


def test_secret_copied_into_training_is_an_error(make_block):
    block = load_block(make_block({"credentials.hf_token": "hf_abcdefgh123", f"{T}.hub_token": "hf_abcdefgh123"}))
    finding = _codes(block)["secret-in-training"]
    assert "hf_abcdefgh123" not in json.dumps(finding.__dict__)


def test_all_findings_at_once_errors_first(make_block):
    block = load_block(make_block({f"{T}.cutoff_len": 40000, f"{T}.use_unsloth": True, f"{T}.flash_attn": "fa2"}))
    findings = run_preflight(block)
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=["error", "warning", "note"].index)
    assert {"rope-scaling", "unsloth-zero3", "flash-attn"} <= {f.code for f in findings}
