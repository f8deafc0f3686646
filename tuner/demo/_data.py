"""Synthetic SFT trajectories with learnable structure: arithmetic and string tasks.

Deterministic for a seed. The same questions are written twice: plain, and with the assistant's
chain of thought in `reasoning_content` (the field our users' trajectories carry).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_WORDS = (
    "apple",
    "river",
    "stone",
    "cloud",
    "tiger",
    "maple",
    "orbit",
    "pixel",
    "lemon",
    "candle",
    "rocket",
    "garden",
    "silver",
    "window",
    "planet",
    "forest",
    "copper",
    "violet",
    "marble",
    "harbor",
)

Task = tuple[str, str, str]  # question, answer, reasoning


def _add(rng: random.Random) -> Task:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    ones = a % 10 + b % 10
    carry = ones // 10
    reasoning = (
        f"Ones: {a % 10} + {b % 10} = {ones}, write {ones % 10} carry {carry}. "
        f"Tens: {a // 10} + {b // 10} + {carry} = {a // 10 + b // 10 + carry}."
    )
    return f"What is {a} + {b}?", f"{a} + {b} = {a + b}", reasoning


def _reverse(rng: random.Random) -> Task:
    word = rng.choice(_WORDS)
    letters = " ".join(word)
    return (
        f"Reverse the word {word}.",
        f"The reverse of {word} is {word[::-1]}.",
        f"The letters are {letters}. Read from the end: {' '.join(word[::-1])}.",
    )


def _upper(rng: random.Random) -> Task:
    words = rng.sample(_WORDS, 2)
    text = " ".join(words)
    return (
        f"Write in capitals: {text}",
        text.upper(),
        f"Each letter of '{text}' becomes its capital; the space stays.",
    )


def _count(rng: random.Random) -> Task:
    word = rng.choice(_WORDS)
    return (
        f"How many letters does {word} have?",
        f"{word} has {len(word)} letters.",
        f"Counting {' '.join(word)} gives {len(word)}.",
    )


_TASKS: tuple[Callable[[random.Random], Task], ...] = (_add, _reverse, _upper, _count)


def trajectories(n: int, seed: int, *, reasoning: bool) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(n):
        question, answer, thought = rng.choice(_TASKS)(rng)
        assistant: dict[str, Any] = {"role": "assistant", "content": answer}
        if reasoning:
            assistant["reasoning_content"] = thought
        yield {
            "messages": [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": question},
                assistant,
            ]
        }


def write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def corpus_lines(n: int, seed: int) -> Iterator[str]:
    """Text for training the demo tokenizer: every task, with and without reasoning."""
    for row in trajectories(n, seed, reasoning=True):
        for message in row["messages"]:
            yield message["content"]
            if "reasoning_content" in message:
                yield message["reasoning_content"]
