"""YAML in and out: files are read as YAML 1.2 (ruamel.yaml) and written for YAML 1.1 readers (PyYAML).

Reading: YAML 1.2, so `1e-5` (no dot) is a float; users write exactly that for learning rates.
`pure=True` pins ruamel's pure-Python parser, the one these hooks and tests were checked with;
without it ruamel switches to libyaml (a YAML 1.1 parser, ruamel.yaml.clib) whenever that is installed.
Plain scalars that YAML 1.1 and 1.2 read differently (`yes`/`no`/`on`/`off`, `010`, `1:30`) are
refused with a fix instead of silently changing meaning: tuner read them as 1.1 before, and
LLaMA-Factory still does. A duplicate key is an error naming the key (PyYAML kept the last one).

Writing: PyYAML's SafeDumper, on purpose. LLaMA-Factory reads the rendered file with OmegaConf
(PyYAML, YAML 1.1), and only a 1.1 dumper quotes strings such as 'yes' and '1:30' that a 1.1
reader would otherwise turn into a bool or an int; ruamel's 1.2 dumper leaves them bare.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

from tuner.errors import ConfigError

_SYNTAX_FIX = "correct the YAML syntax at that position (indentation, quotes, colons)"

# Plain scalars whose meaning differs between YAML 1.1 and 1.2, with what each version reads.
_AMBIGUOUS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)\Z"),
        "a boolean in YAML 1.1 (and LLaMA-Factory) but text in YAML 1.2",
        "write true or false, or quote it ('{v}') if you mean the word",
    ),
    (
        re.compile(r"[-+]?0[0-9_]+\Z"),
        "octal (or text) in YAML 1.1 but a decimal number in YAML 1.2",
        "drop the leading zero, write 0o... for octal, or quote it ('{v}') for text",
    ),
    (
        re.compile(r"[-+]?(?:[1-9][0-9_]*(?::[0-5]?[0-9])+|[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*)\Z"),
        "a base-60 number in YAML 1.1 (1:30 is 90) but text in YAML 1.2",
        "quote it ('{v}') for text, or write the number itself",
    ),
)
_AMBIGUOUS_TAG = "tag:tuner,2025:ambiguous"


class _Resolver(VersionedResolver):
    """YAML 1.2 resolution that tags 1.1/1.2-ambiguous plain scalars for the constructor to refuse."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        tag = super().resolve(kind, value, implicit)
        # Only plain (unquoted, untagged) scalars: quoting or `!!str` already says what is meant.
        # A document that declares `%YAML 1.1` gets 1.1 meanings, so nothing is ambiguous there.
        plain = kind is ScalarNode and implicit[0] and self.processing_version != (1, 1)
        if plain and any(rx.match(value) for rx, _, _ in _AMBIGUOUS):
            return Tag(suffix=_AMBIGUOUS_TAG)
        return tag


class _YamlProblem(ConstructorError):
    """A well-formed document tuner refuses; carries its own wording and fix."""

    def __init__(self, what: str, problem: str, mark: Any, fix: str) -> None:
        super().__init__(None, None, problem, mark)
        self.what, self.fix = what, fix


class _Constructor(SafeConstructor):
    """Plain Python types (dict, list, str, ...) with tuner's refusals."""

    def construct_ambiguous(self, node: Any) -> Any:
        for rx, meaning, fix in _AMBIGUOUS:
            if rx.match(node.value):
                raise _YamlProblem(
                    "is ambiguous YAML", f"{node.value!r} is {meaning}", node.start_mark, fix.format(v=node.value)
                )
        raise AssertionError(node.value)  # the resolver only tags values that match

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as e:  # e.g. `2024-13-45` or `!!int x`: no traceback
            kind = str(node.tag).rsplit(":", 1)[-1]
            shown = repr(node.value) if isinstance(node, ScalarNode) else "this value"
            raise _YamlProblem(
                "is not valid YAML",
                f"{shown} is not a valid {kind} ({e})",
                node.start_mark,
                "write a valid value, or quote it to keep it as text",
            ) from e

    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> bool:
        if key not in mapping:
            return True
        # ruamel's own message quotes both values and a URL; name the key and both places instead.
        first = next((k for k, _ in node.value if k is not key_node and k.value == key_node.value), None)
        where = f" (first at line {first.start_mark.line + 1})" if first is not None else ""
        raise _YamlProblem(
            "is not valid YAML",
            f"duplicate key {key!r}{where}",
            key_node.start_mark,
            f"keep one {key!r} in that mapping; other YAML readers silently use the last",
        )


_Constructor.add_constructor(_AMBIGUOUS_TAG, _Constructor.construct_ambiguous)


def _reader() -> YAML:
    # A fresh reader per call: a YAML instance keeps parser state, so one shared instance is not
    # safe across threads; building one takes ~30 µs, about 1% of loading the demo block.
    reader = YAML(typ="safe", pure=True)
    reader.Resolver = _Resolver
    reader.Constructor = _Constructor
    return reader


def _position(text: str, index: int) -> str:
    """`line L, column C` (1-based) of a character index; ruamel's ReaderError gives only the index."""
    line, column = text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)
    return f"line {line}, column {column}"


class _Dumper(yaml.SafeDumper):
    """SafeDumper that never writes aliases (rendered configs are read by other tools)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def loads(text: str, *, file: str = "<string>") -> Any:
    """Parse one YAML document into plain Python types; bad YAML is a ConfigError with line and column."""
    try:
        return _reader().load(text)
    except AssertionError as e:  # ruamel asserts on a duplicate key inside an explicit `!!omap`
        raise ConfigError(
            f"is not valid YAML: {str(e) or 'a key repeated in an !!omap'}", file=file, fix="keep each key once"
        ) from e
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}"
        elif isinstance(e, ReaderError) and isinstance(e.position, int):
            where = _position(text, e.position)
        else:
            where = "unknown position"
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or str(e)
        raise ConfigError(
            f"{getattr(e, 'what', 'is not valid YAML')} at {where}: {problem}",
            file=file,
            fix=getattr(e, "fix", _SYNTAX_FIX),
        ) from e


def load(path: Path) -> Any:
    """Read and parse a YAML file; a missing or unreadable file is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(
            "file does not exist", file=str(path), fix="check the path passed with --config/--space"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot be read: {e.strerror}", file=str(path)) from e
    return loads(text, file=str(path))


def dumps(data: Any) -> str:
    """YAML text that YAML 1.1 readers (LLaMA-Factory) read back as exactly `data`."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
