"""The install is reproducible: every dependency declared in pyproject.toml is pinned, at the same
version, in requirements/cpu.lock (what install.sh installs), and the lock is what is installed."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "cpu.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.split("+")[0]
    return pins


def test_every_declared_dependency_is_pinned_in_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    lock = _lock()
    for requirement in declared:
        if requirement.startswith("torch"):
            continue  # a range: the CPU lock and the GPU image pin different builds
        name, version = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]+\])?==(.+)$", requirement).groups()
        key = re.sub(r"[-_.]+", "-", name).lower()
        assert lock.get(key) == version, f"{requirement}: lock has {lock.get(key)}"


def test_installed_versions_match_the_lock():
    mismatched = {}
    for name, version in _lock().items():
        try:
            installed = importlib.metadata.version(name).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            mismatched[name] = (version, None)
            continue
        if installed != version:
            mismatched[name] = (version, installed)
    assert mismatched == {}
