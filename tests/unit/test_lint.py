"""One formatter and one linter over the whole tree, in the suite, so CI checks them too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    if not RUFF.exists():
        pytest.fail(f"ruff is not installed next to {sys.executable}; run ./install.sh")
    done = subprocess.run([str(RUFF), *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"ruff {' '.join(command)} failed:\n{done.stdout}{done.stderr}"


def test_fmt_skip_only_on_data_tables():
    """`# fmt: skip` keeps hand alignment where alignment is the point (data tables), nowhere else;
    each one left says so in a comment above its statement (`table`)."""
    found = []
    for path in sorted(p for folder in ("tuner", "tests", "bench") for p in (ROOT / folder).rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if "fmt: skip" in line or "fmt: off" in line:
                start = i  # the statement and the comment above it: back to the previous blank line
                while start > 0 and lines[start - 1].strip():
                    start -= 1
                context = " ".join(lines[start : i + 1]).lower()
                if "table" not in context and path.name != "test_lint.py":
                    found.append(f"{path.relative_to(ROOT)}:{i + 1}: {line.strip()}")
    assert not found, "formatter bypassed outside a data table:\n" + "\n".join(found)
