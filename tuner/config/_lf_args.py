"""What LLaMA-Factory's own argument parser accepts.

Used by preflight (unknown keys, unknown templates) and by the tests that prove every rendered
YAML is accepted by LLaMA-Factory itself. Importing LLaMA-Factory costs ~10 s, so the key and
template lists are cached per installed LLaMA-Factory version.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
from typing import Any

from tuner.files import cache_root, write_json_atomic


@functools.cache
def _facts() -> dict[str, list[str]]:
    version = importlib.metadata.version("llamafactory")
    path = cache_root() / f"llamafactory-{version}-args.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        pass
    facts = {"keys": _introspect_keys(), "templates": _introspect_templates()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, facts)
    return facts


def known_keys() -> list[str]:
    return _facts()["keys"]


def known_templates() -> list[str]:
    return _facts()["templates"]


def _introspect_keys() -> list[str]:
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        GeneratingArguments,
        ModelArguments,
        TrainingArguments,
    )

    groups = (ModelArguments, DataArguments, TrainingArguments, FinetuningArguments, GeneratingArguments)
    return sorted({f.name for group in groups for f in dataclasses.fields(group) if f.init})


def _introspect_templates() -> list[str]:
    from llamafactory.data.template import TEMPLATES

    return sorted(TEMPLATES)


def parse_with_llamafactory(args: dict[str, Any]) -> tuple[Any, ...]:
    """Parse a rendered trial YAML (as a mapping) exactly as `llamafactory-cli train` does before
    any distributed set-up: unknown keys and ill-typed values raise ValueError."""
    from llamafactory.hparams.parser import _parse_train_args

    return _parse_train_args(dict(args))
