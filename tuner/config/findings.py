"""A preflight finding: what is wrong with a block, how bad, where, and the fix."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from tuner.config.block import Block

Severity = Literal["error", "warning", "note"]
T = "runtime_info.input.training"
C = "runtime_info.input.conversion"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    key: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"[{self.severity}] {self.key}: {self.message}.{fix}"


Check = Callable[[Block], Iterator[Finding]]
