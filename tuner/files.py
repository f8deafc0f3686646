"""Small file utilities at the bottom of the package: atomic writes and tuner's cache folder.

Imported by every layer; imports nothing of tuner.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """tuner's per-user cache (the demo, LLaMA-Factory facts): $TUNER_CACHE_DIR or ~/.cache/tuner."""
    configured = os.environ.get("TUNER_CACHE_DIR")
    base = Path(configured) if configured else Path.home() / ".cache" / "tuner"
    return base.expanduser().resolve()


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
