"""Mask the secrets that a library wrote into a trial's folder (logs, wandb files) after the trial.

Secrets reach a trial through its environment only and are never rendered, but wandb and others
may still copy the environment into files; this sweeps the folder once the processes are gone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tuner.redact import Redactor

log = logging.getLogger(__name__)


def scrub_secrets(root: Path, secrets: list[str], max_bytes: int = 20 << 20) -> list[Path]:
    """Overwrite any secret that a library wrote into the trial folder (logs, wandb files) with
    '*' of the same length (binary files keep their layout). Weight files are skipped."""
    redactor = Redactor(secrets)
    scrubbed: list[Path] = []
    if not redactor:
        return scrubbed
    for path in root.rglob("*"):
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > max_bytes:
                continue
            if path.suffix in (".safetensors", ".bin", ".pt", ".pth"):
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if redactor.found_in(data):
            path.write_bytes(redactor.raw(data))
            scrubbed.append(path)
    if scrubbed:
        log.warning("removed a credential from %d file(s) under %s", len(scrubbed), root)
    return scrubbed
