"""Shared fixtures: the embedded demo (built once per session) and block files in tmp_path."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuner.config import yaml_io
from tuner.demo import Demo, build_demo


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI the PostgreSQL server must answer before any test runs: the multi-driver suites
    need it, and failing here says so at once instead of after the whole run."""
    from tests.storage import POSTGRES_URL, postgres_available

    if os.environ.get("CI") and not postgres_available():
        pytest.exit(f"CI: no PostgreSQL answers at {POSTGRES_URL}; start it before the tests", returncode=3)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo model, data and block. TUNER_TEST_CACHE reuses a cache across runs (CI sets none)."""
    root = os.environ.get("TUNER_TEST_CACHE")
    return build_demo(Path(root) if root else tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def demo_data(demo: Demo) -> dict[str, Any]:
    return yaml_io.load(demo.block)


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value


_DELETE = object()


@pytest.fixture()
def delete() -> object:
    return _DELETE


@pytest.fixture()
def make_block(tmp_path: Path, demo: Demo, demo_data: dict[str, Any]) -> Callable[..., Path]:
    """Write a copy of the demo block (absolute paths) with dotted-key changes; returns its path."""

    def make(changes: dict[str, Any] | None = None, *, raw: str | None = None, name: str = "block.yaml") -> Path:
        path = tmp_path / name
        if raw is not None:
            path.write_text(raw, encoding="utf-8")
            return path
        data = copy.deepcopy(demo_data)
        section = data["runtime_info"]["input"]
        section["training"]["model_name_or_path"] = str(demo.model_dir)
        section["conversion"]["source"] = str(demo.root / section["conversion"]["source"])
        for key, value in (changes or {}).items():
            _set(data, key, value)
        path.write_text(yaml_io.dumps(data), encoding="utf-8")
        return path

    return make


FAKE_NVIDIA_SMI = """#!/bin/sh
# A simulated GPU node for tests: `nvidia-smi -L` lists {n} GPUs; `--query-gpu=FIELDS` (memory.total,
# memory.used, name, index) answers one CSV line per GPU with 80 GiB each; everything else fails
# like a broken driver.
if [ "$1" = "-L" ]; then
  i=0
  while [ $i -lt {n} ]; do echo "GPU $i: NVIDIA H100 80GB HBM3 (UUID: GPU-0000000$i-fake)"; i=$((i+1)); done
  exit 0
fi
case "$1" in
  --query-gpu=*)
    fields=$(echo "${1#--query-gpu=}" | tr ',' ' ')
    i=0
    while [ $i -lt {n} ]; do
      line=""
      for f in $fields; do
        case "$f" in
          memory.total) v=81920 ;;
          memory.used) v=0 ;;
          name) v="NVIDIA H100 80GB HBM3" ;;
          index) v=$i ;;
          *) echo "fake nvidia-smi: field $f is not simulated" >&2; exit 9 ;;
        esac
        line="${line:+$line, }$v"
      done
      echo "$line"
      i=$((i+1))
    done
    exit 0 ;;
esac
echo "fake nvidia-smi: only -L and --query-gpu are simulated" >&2
exit 9
"""


@pytest.fixture()
def gpu_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], dict[str, str]]:
    """Make this process (and the commands it starts) see a GPU node with `n` GPUs: a fake
    `nvidia-smi` first on PATH and `n` Ray logical GPUs. Returns the environment for subprocesses."""

    def make(n: int) -> dict[str, str]:
        bin_dir = tmp_path / "fake-gpu-bin"
        bin_dir.mkdir(exist_ok=True)
        smi = bin_dir / "nvidia-smi"
        smi.write_text(FAKE_NVIDIA_SMI.replace("{n}", str(n)), encoding="utf-8")
        smi.chmod(0o755)
        env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "TUNER_RAY_NUM_GPUS": str(n)}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        return env

    return make
