"""One error root for everything tuner raises on purpose.

`cli.py` is the only place that catches `TunerError`; it prints the message (no traceback) and
exits 2 for a user mistake (`UserError`) or 1 for a runtime failure.
"""

from __future__ import annotations

from typing import Any


class TunerError(Exception):
    """Root of every error tuner raises deliberately."""

    exit_code = 1


class UserError(TunerError):
    """Something the user wrote or typed is wrong; fixing the input fixes it (exit 2)."""

    exit_code = 2


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class ConfigError(UserError):
    """A block config, search space or flag breaks a rule.

    The message always states: which file, which key (dotted path), the rule, the value found and
    the fix, so that nobody needs a traceback to act on it.
    """

    def __init__(
        self,
        rule: str,
        *,
        file: str | None = None,
        key: str | None = None,
        value: Any = ...,
        fix: str | None = None,
    ) -> None:
        self.file, self.key, self.rule, self.value, self.fix = file, key, rule, value, fix
        where = ": ".join(part for part in (file, key) if part)
        text = f"{where}: {rule}" if where else rule
        if value is not ...:
            text += f" (got {_show(value)})"
        if fix:
            text += f". Fix: {fix}"
        self.problems: list[ConfigError] = [self]
        super().__init__(text)

    @classmethod
    def many(cls, problems: list[ConfigError]) -> ConfigError:
        """One error that carries several problems, so the user fixes them all in one pass."""
        if len(problems) == 1:
            return problems[0]
        combined = cls(f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))
        combined.problems = list(problems)
        return combined


class SpaceError(ConfigError):
    """The search space (space file or `evolving.tunable_params`) is invalid."""


class PreflightError(UserError):
    """Preflight found at least one error-level finding; the findings are attached."""

    def __init__(self, findings: list[Any]) -> None:
        self.findings = findings
        errors = [f for f in findings if getattr(f, "severity", "") == "error"]
        super().__init__(f"preflight found {len(errors)} error(s); run `tune check` to see every finding")


class DataError(ConfigError):
    """The training data (trajectories JSONL) cannot be converted."""


class LaunchError(TunerError):
    """A trial process could not be started at all (not the same as a trial that failed)."""


class TrialFailed(TunerError):
    """A trial ended without a usable metric. Carries its exit class and the log tail."""

    def __init__(self, exit_class: str, message: str, log_tail: str = "") -> None:
        self.exit_class, self.log_tail = exit_class, log_tail
        super().__init__(f"trial {exit_class}: {message}")


class StorageError(TunerError):
    """The study storage could not be read or written."""
