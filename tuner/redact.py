"""One redactor for secrets and URLs: what never reaches a log, a YAML, the study or a screen.

The rule, everywhere: every non-empty secret is masked wherever it occurs, longest first (a secret
that contains another is masked whole). Text gets `***`; bytes get `*` of the same length, so a
binary file keeps its layout. URLs lose their password. Imports nothing of tuner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "***"


def redact_url(url: str) -> str:
    """The URL without its password (storage URLs in messages, attributes and logs)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


class Redactor:
    """Masks a fixed set of secrets in text, nested values and bytes."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets: tuple[str, ...] = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def value(self, value: Any) -> Any:
        """Strings inside dicts, lists and tuples masked; other values as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def found_in(self, data: bytes) -> bool:
        return any(secret.encode() in data for secret in self.secrets)

    def raw(self, data: bytes) -> bytes:
        for secret in self.secrets:
            needle = secret.encode()
            data = data.replace(needle, b"*" * len(needle))
        return data
