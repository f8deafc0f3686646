"""The GPU image cannot be built here (no Docker engine): its files are linted for real instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_dockerfile_passes_hadolint():
    done = subprocess.run([str(BIN / "hadolint"), str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_file_matches_the_compose_spec():
    done = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker" / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_pins_what_the_design_names():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    for pin in ("flash-attn==2.8.3", "llamafactory==0.9.5", "deepspeed==0.19.8", "liger-kernel==", "unsloth=="):
        assert pin in text
