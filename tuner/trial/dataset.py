"""Trajectories JSONL -> a LLaMA-Factory dataset (OpenAI-style messages) + its dataset_info.json.

The eval split is held out once from the shuffled source, *before* `max_instances` caps the
training pool, so every trial of a study is scored on the same eval set; the training subset for a
cap is a prefix of one fixed shuffle, so a smaller cap is a subset of a larger one.

LLaMA-Factory's sharegpt reader ignores a `reasoning_content` field. For a thinking template
(`qwen3`) the chain of thought is inlined as `<think>\\n...\\n</think>\\n\\n` before the answer,
the form that template trains on; for other templates it is dropped (preflight warns about that).

Conversions are cached by content: the source's hash, the cap, the eval size, the seed and the
reasoning form. Concurrent trials that need the same conversion build it once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.config.block import Conversion
from tuner.config.thinking_templates import THINKING_TEMPLATES
from tuner.errors import DataError

CONVERTER_VERSION = 1
_USER_ROLES = {"user", "tool"}
_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "system_tag": "system",
}


@dataclass(frozen=True)
class PreparedData:
    """A converted dataset, ready to name in a LLaMA-Factory YAML."""

    dataset_dir: Path
    train_name: str
    eval_name: str
    n_train: int
    n_eval: int
    n_pool: int
    with_reasoning: int  # samples whose chain of thought reached the training text
    key: str


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, memoized per process by (path, size, mtime)."""
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _problem(source: Path, line: int, key: str, rule: str, value: Any = ...) -> DataError:
    return DataError(
        rule,
        file=f"{source}:{line}",
        key=key,
        value=value,
        fix='each line must be {"messages": [{"role": ..., "content": ...}, ...]} with '
        "an optional system turn, then alternating user/assistant turns, ending with assistant",
    )


def _check_sample(row: Any, source: Path, line: int) -> list[dict[str, Any]]:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
        raise _problem(
            source,
            line,
            "messages",
            "must be a non-empty list under key 'messages'",
            type(row).__name__ if not isinstance(row, dict) else row.get("messages"),
        )
    messages = row["messages"]
    start = 1 if messages[0].get("role") == "system" else 0
    for i, message in enumerate(messages):
        key = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _problem(source, line, key, "must be an object with role and content", message)
        if not isinstance(message.get("content"), str):
            raise _problem(source, line, f"{key}.content", "must be a string", message.get("content"))
        role = message.get("role")
        if i < start:
            continue
        expected = _USER_ROLES if (i - start) % 2 == 0 else {"assistant"}
        if role not in expected:
            raise _problem(source, line, f"{key}.role", f"must be one of {sorted(expected)} at this position", role)
        if "tool_calls" in message:
            raise _problem(source, line, f"{key}.tool_calls", "tool calls are not supported yet")
        reasoning = message.get("reasoning_content")
        if reasoning is not None and not isinstance(reasoning, str):
            raise _problem(source, line, f"{key}.reasoning_content", "must be a string", reasoning)
    if (len(messages) - start) < 2 or messages[-1].get("role") != "assistant":
        raise _problem(
            source,
            line,
            "messages",
            "must end with an assistant turn after a user turn",
            [m.get("role") for m in messages],
        )
    return messages


def read_trajectories(source: Path) -> list[list[dict[str, Any]]]:
    if not source.is_file():
        raise DataError(
            "file does not exist",
            file=str(source),
            key="conversion.source",
            fix="point runtime_info.input.conversion.source at your trajectories JSONL",
        )
    samples = []
    with source.open(encoding="utf-8") as f:
        for line_no, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise _problem(source, line_no, "<line>", f"is not valid JSON ({e.msg})", text[:80]) from None
            samples.append(_check_sample(row, source, line_no))
    return samples


def _to_lf(messages: list[dict[str, Any]], thought: tuple[str, str] | None) -> tuple[dict[str, Any], bool]:
    out, kept = [], False
    for m in messages:
        content = m["content"]
        reasoning = m.get("reasoning_content")
        if thought and m["role"] == "assistant" and reasoning and reasoning.strip():
            content = f"{thought[0]}{reasoning.strip()}{thought[1]}{content.lstrip()}"
            kept = True
        out.append({"role": m["role"], "content": content})
    return {"messages": out}, kept


def conversion_key(conversion: Conversion, template: str, source_digest: str, cap: int | None) -> str:
    spec = {
        "v": CONVERTER_VERSION,
        "source": source_digest,
        "cap": cap,
        "eval": conversion.eval_instances,
        "seed": conversion.split_seed,
        "thought": THINKING_TEMPLATES.get(template),
        "name": conversion.data_name,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def prepare_dataset(
    conversion: Conversion,
    template: str,
    cache_dir: Path,
) -> PreparedData:
    """Convert (or reuse the cached conversion of) the block's trajectories for one trial."""
    source = conversion.source
    if not source.is_file():
        raise DataError(
            "file does not exist",
            file=str(source),
            key="runtime_info.input.conversion.source",
            fix="point conversion.source at your trajectories JSONL",
        )
    cap = conversion.max_instances
    key = conversion_key(conversion, template, file_digest(source), cap)
    target = cache_dir / key
    meta_path = target / "meta.json"
    if meta_path.is_file():
        return _from_meta(target, json.loads(meta_path.read_text()))

    samples = read_trajectories(source)
    if len(samples) <= conversion.eval_instances:
        raise DataError(
            f"has {len(samples)} samples, but eval_instances={conversion.eval_instances} must leave "
            "at least one for training",
            file=str(source),
            key="runtime_info.input.conversion.eval_instances",
            value=conversion.eval_instances,
            fix="lower eval_instances or add data",
        )
    order = list(range(len(samples)))
    random.Random(conversion.split_seed).shuffle(order)
    eval_idx, pool_idx = order[: conversion.eval_instances], order[conversion.eval_instances :]
    train_idx = pool_idx[:cap] if cap is not None else pool_idx
    thought = THINKING_TEMPLATES.get(template)

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir))
    try:
        with_reasoning = 0
        for split, indices in (("train", train_idx), ("eval", eval_idx)):
            with (staging / f"{split}.jsonl").open("w", encoding="utf-8") as f:
                for i in indices:
                    row, kept = _to_lf(samples[i], thought)
                    with_reasoning += kept and split == "train"
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        name = conversion.data_name
        info = {
            f"{name}_{split}": {
                "file_name": f"{split}.jsonl",
                "formatting": "sharegpt",
                "columns": {"messages": "messages"},
                "tags": _TAGS,
            }
            for split in ("train", "eval")
        }
        (staging / "dataset_info.json").write_text(json.dumps(info, indent=2))
        meta = {
            "key": key,
            "name": name,
            "n_train": len(train_idx),
            "n_eval": len(eval_idx),
            "n_pool": len(pool_idx),
            "with_reasoning": with_reasoning,
            "source": str(source),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.rename(staging, target)
        except OSError:  # another trial finished the same conversion first: use theirs
            shutil.rmtree(staging, ignore_errors=True)
            meta = json.loads(meta_path.read_text())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _from_meta(target, meta)


def _from_meta(target: Path, meta: dict[str, Any]) -> PreparedData:
    return PreparedData(
        dataset_dir=target,
        train_name=f"{meta['name']}_train",
        eval_name=f"{meta['name']}_eval",
        n_train=meta["n_train"],
        n_eval=meta["n_eval"],
        n_pool=meta["n_pool"],
        with_reasoning=meta["with_reasoning"],
        key=meta["key"],
    )
