"""What LLaMA-Factory's own argument parser accepts (imports LLaMA-Factory: several seconds).

Used by preflight (unknown keys, unknown templates) and by the tests that prove every rendered
YAML is accepted by LLaMA-Factory itself.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any


@functools.cache
def known_keys() -> list[str]:
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        GeneratingArguments,
        ModelArguments,
        TrainingArguments,
    )

    groups = (ModelArguments, DataArguments, TrainingArguments, FinetuningArguments, GeneratingArguments)
    return sorted({f.name for group in groups for f in dataclasses.fields(group) if f.init})


@functools.cache
def known_templates() -> list[str]:
    from llamafactory.data.template import TEMPLATES

    return sorted(TEMPLATES)


def parse_with_llamafactory(args: dict[str, Any]) -> tuple[Any, ...]:
    """Parse a rendered trial YAML (as a mapping) exactly as `llamafactory-cli train` does before
    any distributed set-up: unknown keys and ill-typed values raise ValueError."""
    from llamafactory.hparams.parser import _parse_train_args

    return _parse_train_args(dict(args))
