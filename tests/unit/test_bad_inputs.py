"""Table-driven: malformed block configs, spaces and flags are each rejected with a message that
names the file, the key path, the rule, the value and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner.config.block import load_block
from tuner.config.overrides import apply_params, parse_sets, targets_for
from tuner.config.space import build_space
from tuner.errors import ConfigError, SpaceError

T = "runtime_info.input.training"
C = "runtime_info.input.conversion"
DEL = object()

# (id, changes to the demo block, expected key in the message, expected rule fragment)
BLOCK_CASES = [
    ("lr-word", {f"{T}.learning_rate": "fast"}, f"{T}.learning_rate", "valid number"),
    ("lr-negative", {f"{T}.learning_rate": -1.0}, f"{T}.learning_rate", "greater than 0"),
    ("batch-zero", {f"{T}.per_device_train_batch_size": 0}, f"{T}.per_device_train_batch_size", "greater than"),
    ("epochs-word", {f"{T}.num_train_epochs": "three"}, f"{T}.num_train_epochs", "valid number"),
    ("model-missing", {f"{T}.model_name_or_path": DEL}, f"{T}.model_name_or_path", "Field required"),
    ("template-missing", {f"{T}.template": DEL}, f"{T}.template", "Field required"),
    ("stage-dpo", {f"{T}.stage": "dpo"}, f"{T}.stage", "'sft'"),
    ("top-level-typo", {"evolvng": {"tunable_params": []}}, "evolvng", "did you mean `evolving`"),
    ("conversion-typo", {f"{C}.max_instance": 10}, f"{C}.max_instance", "did you mean `max_instances`"),
    ("cap-zero", {f"{C}.max_instances": 0}, f"{C}.max_instances", "greater than or equal to 1"),
    ("eval-negative", {f"{C}.eval_instances": -5}, f"{C}.eval_instances", "greater than or equal to 1"),
    ("data-name", {f"{C}.data_name": "bad name!"}, f"{C}.data_name", "letters, digits"),
    ("source-missing", {f"{C}.source": DEL}, f"{C}.source", "Field required"),
    ("wandb-mode", {"experiment.wandb_mode": "loud"}, "experiment.wandb_mode", "'disabled', 'offline' or 'online'"),
    ("gpus-zero", {"n_gpus_per_node": 0}, "n_gpus_per_node", "greater than or equal to 1"),
    ("credential-number", {"credentials.wandb_api_key": 12345}, "credentials.wandb_api_key", "string"),
    ("bf16-fp16", {f"{T}.bf16": True, f"{T}.fp16": True}, "bf16 and fp16", "cannot both be true"),
    ("gbs-shape", {"evolving.global_batch_size": [8]}, "evolving.global_batch_size", "at least 2"),
    ("tunables-string", {"evolving.tunable_params": "learning_rate"}, "evolving.tunable_params", "list of"),
    (
        "tunables-twice",
        {"evolving.tunable_params": ["learning_rate", "learning_rate"]},
        "evolving.tunable_params",
        "more than once",
    ),
    (
        "range-typo",
        {"evolving.tunable_params": {"learning_rate": {"lo": 1e-5}}},
        "evolving.tunable_params.learning_rate.lo",
        "did you mean `low`",
    ),
    ("experiment-typo", {"experiment.wandb_mod": "online"}, "experiment.wandb_mod", "did you mean `wandb_mode`"),
]

SPACE_CASES = [
    ("unknown-param", ["learning_rate", "dropout"], "evolving.tunable_params.dropout", "not a parameter"),
    ("renderer-owned", ["output_dir"], "evolving.tunable_params.output_dir", "set by tuner"),
    (
        "low-ge-high",
        {"learning_rate": {"low": 1e-3, "high": 1e-4}},
        "evolving.tunable_params.learning_rate",
        "`low < high` must hold",
    ),
    (
        "log-through-zero",
        {"learning_rate": {"low": 0.0, "high": 1e-3}},
        "evolving.tunable_params.learning_rate",
        "log range must be positive",
    ),
    ("widen", {"learning_rate": {"low": 1e-6}}, "evolving.tunable_params.learning_rate", "may only narrow"),
    (
        "categorical-range",
        {"per_device_train_batch_size": {"low": 1, "high": 4}},
        "evolving.tunable_params.per_device_train_batch_size",
        "categorical",
    ),
    (
        "choices-outside",
        {"per_device_train_batch_size": {"choices": [3]}},
        "evolving.tunable_params.per_device_train_batch_size.choices",
        "inside the space file's range",
    ),
    (
        "int-fraction",
        {"num_train_epochs": {"low": 1.5, "high": 3}},
        "evolving.tunable_params.num_train_epochs",
        "whole numbers",
    ),
    ("gbs-order", None, "evolving.global_batch_size", "min <= max"),
]


def _check_message(err: ConfigError, file: Path | str, key: str, rule: str) -> None:
    text = str(err)
    assert str(file) in text, text
    assert key in text, text
    assert rule in text, text
    assert "Fix:" in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize(("changes", "key", "rule"), [c[1:] for c in BLOCK_CASES], ids=[c[0] for c in BLOCK_CASES])
def test_bad_block_is_rejected_with_key_rule_and_fix(make_block, changes, key, rule, delete):
    changes = {k: (delete if v is DEL else v) for k, v in changes.items()}
    path = make_block(changes)
    with pytest.raises(ConfigError) as info:
        load_block(path)
    _check_message(info.value, path, key, rule)


@pytest.mark.parametrize(("tunables", "key", "rule"), [c[1:] for c in SPACE_CASES], ids=[c[0] for c in SPACE_CASES])
def test_bad_space_is_rejected_with_key_rule_and_fix(make_block, tunables, key, rule):
    changes = {"evolving.tunable_params": tunables} if tunables is not None else {"evolving.global_batch_size": [64, 8]}
    path = make_block(changes)
    with pytest.raises(SpaceError) as info:
        build_space(load_block(path))
    _check_message(info.value, path, key, rule)


def test_credential_value_is_never_shown(make_block):
    path = make_block({"credentials.wandb_api_key": 123456789})
    with pytest.raises(ConfigError) as info:
        load_block(path)
    assert "123456789" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("- just\n- a list\n", "must be a mapping"), ("runtime_info: [1, 2\n", "not valid YAML at line")],
    ids=["not-a-mapping", "yaml-syntax"],
)
def test_unreadable_block_file(make_block, text, fragment):
    path = make_block(raw=text)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_block(path)
    assert str(path) in str(info.value)


def test_missing_block_file(tmp_path):
    with pytest.raises(ConfigError, match="file does not exist"):
        load_block(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("space_text", "key", "rule"),
    [
        (
            "params:\n  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-5}\n",
            "params.learning_rate",
            "`low < high` must hold",
        ),
        ("params:\n  learning_rate: {type: bool}\n", "params.learning_rate.type", "'float', 'int' or 'categorical'"),
        ("params:\n  lr: {type: float, low: 0, high: 1, log: true}\n", "params.lr", "log range must be positive"),
        ("params: {}\n", "params", "at least 1"),
    ],
    ids=["file-low-ge-high", "file-bad-type", "file-log-zero", "file-empty"],
)
def test_bad_space_file(make_block, tmp_path, space_text, key, rule):
    space = tmp_path / "space.yaml"
    space.write_text(space_text)
    with pytest.raises(SpaceError) as info:
        build_space(load_block(make_block()), space)
    _check_message(info.value, space, key, rule)


@pytest.mark.parametrize(
    ("sets", "key", "rule"),
    [
        (["learning_rate"], "--set", "key=value"),
        (["learning_rate=-1"], f"{T}.learning_rate", "greater than 0"),
        (["output_dir=/tmp/x"], "--set", "set by tuner"),
        (["max_instances=0"], f"{C}.max_instances", "greater than or equal to 1"),
    ],
    ids=["no-equals", "negative-lr", "renderer-owned", "cap-zero"],
)
def test_bad_set_flags(make_block, sets, key, rule):
    block = load_block(make_block())
    with pytest.raises(ConfigError) as info:
        params = parse_sets(sets)
        apply_params(block, params, targets_for(params), origin="--set")
    assert key in str(info.value) and rule in str(info.value) and "Fix:" in str(info.value)
