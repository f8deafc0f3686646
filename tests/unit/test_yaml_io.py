"""tuner reads YAML 1.2 (ruamel.yaml, pure Python), refuses 1.1/1.2-ambiguous scalars, and writes 1.1."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner.config import yaml_io
from tuner.config.overrides import parse_sets
from tuner.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PLAIN = (dict, list, str, int, float, bool, type(None))


def _types(data: Any) -> set[type]:
    if isinstance(data, dict):
        return {type(data)} | {t for k, v in data.items() for t in _types(k) | _types(v)}
    if isinstance(data, list):
        return {type(data)} | {t for v in data for t in _types(v)}
    return {type(data)}


@pytest.mark.parametrize("path", [ROOT / "tuner" / "demo" / "block.yaml", ROOT / "search_spaces" / "sft_full.yaml"])
def test_real_files_load_as_plain_python_types(path):
    data = yaml_io.load(path)
    assert _types(data) <= set(PLAIN), _types(data)  # no ruamel CommentedMap / ScalarFloat
    json.dumps(data)  # what the study attributes store


def test_yaml_1_2_numbers():
    data = yaml_io.loads("a: 1e-5\nb: -.5\nc: +.5\nd: 0o17\ne: 0x1F\nf: 1_000\ng: .inf\nh: -.inf\ni: .nan\nj: 0\n")
    assert data["a"] == 1e-5 and isinstance(data["a"], float)
    assert (data["b"], data["c"], data["d"], data["e"], data["f"]) == (-0.5, 0.5, 15, 31, 1000)  # -.5 was text before
    assert data["g"] == math.inf and data["h"] == -math.inf and math.isnan(data["i"]) and data["j"] == 0


def test_booleans_and_nulls_that_both_versions_agree_on():
    data = yaml_io.loads("a: true\nb: False\nc: TRUE\nd: null\ne: ~\nf:\ny: y\nn: n\n")
    assert data == {"a": True, "b": False, "c": True, "d": None, "e": None, "f": None, "y": "y", "n": "n"}


@pytest.mark.parametrize(
    ("text", "meaning", "fix"),
    [
        ("bf16: yes", "a boolean in YAML 1.1", "write true or false, or quote it ('yes')"),
        ("bf16: Off", "a boolean in YAML 1.1", "quote it ('Off')"),
        ("flags: [on]", "a boolean in YAML 1.1", "write true or false"),
        ("seed: 010", "octal (or text) in YAML 1.1 but a decimal number", "drop the leading zero"),
        ("seed: 08", "octal (or text) in YAML 1.1", "quote it ('08')"),
        ("max_time: 1:30", "a base-60 number in YAML 1.1", "quote it ('1:30')"),
    ],
)
def test_scalars_read_differently_by_yaml_1_1_and_1_2_are_refused_with_a_fix(text, meaning, fix):
    # tuner read these as YAML 1.1 before, and LLaMA-Factory still does: refuse, never change meaning silently.
    with pytest.raises(ConfigError) as e:
        yaml_io.loads("a: 1\n" + text + "\n", file="config.yaml")
    message = str(e.value)
    assert message.startswith("config.yaml: is ambiguous YAML at line 2, column ")
    assert meaning in message and fix in message


def test_quoted_or_tagged_ambiguous_scalars_are_what_they_say():
    data = yaml_io.loads("a: 'yes'\nb: \"010\"\nc: '1:30'\nd: !!str on\ne: !!bool true\n")
    assert data == {"a": "yes", "b": "010", "c": "1:30", "d": "on", "e": True}


def test_a_yaml_1_1_directive_gets_yaml_1_1_meanings():
    assert yaml_io.loads("%YAML 1.1\n---\na: yes\nb: 010\nc: 1:30\n") == {"a": True, "b": 8, "c": 90}


def test_ambiguous_set_value_names_the_flag():
    with pytest.raises(ConfigError, match=r"--set bf16: is ambiguous YAML .* Fix: write true or false"):
        parse_sets(["bf16=yes"])
    assert parse_sets(["bf16=true", "learning_rate=1e-4"]) == {"bf16": True, "learning_rate": 1e-4}


def test_duplicate_key_is_a_config_error_naming_the_key_and_both_lines():
    text = (
        "runtime_info:\n  input:\n    training:\n      learning_rate: 1e-5\n      seed: 1\n      learning_rate: 1e-4\n"
    )
    with pytest.raises(ConfigError) as e:
        yaml_io.loads(text, file="config.yaml")
    assert str(e.value) == (
        "config.yaml: is not valid YAML at line 6, column 7: duplicate key 'learning_rate' (first at line 4). "
        "Fix: keep one 'learning_rate' in that mapping; other YAML readers silently use the last"
    )


def test_merge_keys_may_still_be_overridden():
    data = yaml_io.loads("base: &b {lr: 1, seed: 2}\nrun:\n  <<: *b\n  lr: 3\n")
    assert data["run"] == {"lr": 3, "seed": 2}


def test_dates_load_as_dates_like_before():
    assert yaml_io.loads("d: 2024-01-02\n") == {"d": dt.date(2024, 1, 2)}


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("runtime_info: [1, 2\n", "line 2, column 1", "expected ',' or ']'"),
        ("a: 1\n b: 2\n", "line 2, column 3", "mapping values are not allowed here"),
        ("a: 1\nb: x\x07\n", "line 2, column 5", "special characters are not allowed"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1", "but found another document"),
        ("a: *nowhere\n", "line 1, column 4", "found undefined alias"),
    ],
)
def test_bad_yaml_is_a_config_error_with_position_and_fix(text, where, problem):
    with pytest.raises(ConfigError) as e:
        yaml_io.loads(text, file="space.yaml")
    message = str(e.value)
    assert message.startswith(f"space.yaml: is not valid YAML at {where}: "), message
    assert problem in message and "Fix: correct the YAML syntax" in message


def test_a_value_its_type_cannot_hold_is_a_config_error_not_a_traceback():
    for text, problem in (
        ("a:\n  b: 2024-13-45\n", "line 2, column 6: '2024-13-45' is not a valid timestamp"),
        ("a: !!int x\n", "line 1, column 4: 'x' is not a valid int"),
        ("a: !!omap [b: 1, b: 2]\n", "a key repeated in an !!omap"),
    ):
        with pytest.raises(ConfigError, match=re.escape(problem)):
            yaml_io.loads(text)


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file does not exist"):
        yaml_io.load(tmp_path / "nope.yaml")


def test_dumps_quotes_for_yaml_1_1_readers():
    # LLaMA-Factory reads the rendered file with PyYAML (YAML 1.1): these strings must stay strings there.
    data = {"a": "yes", "b": "010", "c": "1:30", "d": "on", "lr": 1e-5, "n": None}
    text = yaml_io.dumps(data)
    assert yaml.safe_load(text) == data
    assert yaml_io.loads(text) == data
    assert "a: 'yes'" in text and "lr: 1.0e-05" in text


def test_empty_document_is_none():
    assert yaml_io.loads("") is None and yaml_io.loads("# only a comment\n") is None
