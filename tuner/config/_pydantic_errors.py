"""Translate pydantic validation errors into `ConfigError`s that name file, key, rule, value, fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from tuner.errors import ConfigError


def key_path(loc: Iterable[Any], prefix: str = "") -> str:
    text = prefix
    for item in loc:
        if isinstance(item, int):
            text += f"[{item}]"
        else:
            text += f".{item}" if text else str(item)
    return text


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes inside an annotation such as `X | None` or `dict[str, X | None]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that owns the key at `loc`, for spelling hints."""
    current: Any = model
    pending_mapping = False
    for item in loc[:-1]:
        if pending_mapping:  # this loc element is a user's mapping key (e.g. a parameter name)
            pending_mapping = False
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or item not in fields:
            return []
        annotation = fields[item].annotation
        pending_mapping = get_origin(annotation) is dict
        models = _models_in(annotation)
        if not models:
            return []
        current = models[0]
    return [f.alias or name for name, f in getattr(current, "model_fields", {}).items() if not f.exclude]


def _fix_for(error: dict[str, Any], model: type[BaseModel], key: str) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return f"add `{key}` to the file"
    if kind == "extra_forbidden":
        known = _known_keys(model, tuple(error["loc"]))
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return f"{hint}remove the key or correct its spelling (known keys: {', '.join(known)})"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "the limit")
        return f"use a value {bounds[kind]} {limit}"
    if kind in {"float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"}:
        return "write a plain number, e.g. 1.0e-5 or 3 (no quotes, no units)"
    if kind == "literal_error":
        return f"use one of {ctx.get('expected', 'the listed values')}"
    if kind == "value_error":
        return "see the rule above"
    return "correct the value"


def translate(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    file: str,
    prefix: str = "",
    error_cls: type[ConfigError] = ConfigError,
) -> ConfigError:
    """One ConfigError that lists every problem pydantic found, each on its own line."""
    problems = []
    for error in exc.errors(include_url=False):
        if error["type"] == "default_factory_not_called":
            continue  # a default computed from another field that failed: that field's error says it
        key = key_path(error["loc"], prefix)
        rule = error["msg"]
        if error["type"] == "value_error":
            rule = rule.removeprefix("Value error, ")
        elif error["type"] == "extra_forbidden":
            rule = "is not a known key here"
        value = ... if error["type"] == "missing" else error.get("input", ...)
        problems.append(error_cls(rule, file=file, key=key, value=value, fix=_fix_for(error, model, key)))
    return error_cls.many(problems)
