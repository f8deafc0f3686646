"""The GPU route without Docker (`pip install -c requirements/gpu.lock -e ".[gpu]"`) resolves on every
Python that requires-python admits, to exactly the lock; and the prepared GPU check's dry run works here.

The resolve is pip's own resolver in dry-run mode against the real index, for Linux x86_64 and each
supported Python: a conflict between our pins, the lock and what llamafactory, unsloth, torch, ... declare
fails it, as does a package that has no wheel for one of those Pythons. Nothing is installed and no torch
or CUDA wheel is downloaded: pip 26.3's fast-deps reads each wheel's METADATA through HTTP range requests
(the venv's pip 23.2 downloads whole wheels, several GB, as this index serves no PEP 658 metadata).

It needs the index. When the index cannot be reached it fails, saying so, rather than skipping: a skip
would let a conflicting pin through CI unnoticed. UPDATE_GOLDEN=1 rewrites requirements/gpu.lock from a
fresh resolve (for the lowest supported Python, so that every pin exists for all of them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "gpu.lock"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RESOLVER_PIP = "26.3"
# pip expands only the legacy manylinux2014 alias, so list every glibc from CentOS 7's (2.17) up to
# torch 2.8's floor (2.28): a package whose only Linux wheel needs a newer glibc fails the resolve.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)] + ["manylinux2014_x86_64"]
# flash-attn is an sdist whose setup.py downloads a prebuilt wheel from its GitHub release (unreachable
# from CI) or else compiles for an hour. What release v2.8.3 ships, as public install scripts name it:
# flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp3{10,11,12}-...-linux_x86_64.whl (torch 2.8, CUDA 12).
FLASH_ATTN_PREBUILT = {"2.8.3": {"torch": "2.8", "pythons": ("3.10", "3.11", "3.12")}}

HEADER = """\
# The GPU route without Docker (README.md, Install notes), Linux x86_64, Python 3.11 and 3.12:
#   pip install -c requirements/gpu.lock -e ".[gpu]"
#   pip install --no-build-isolation -c requirements/gpu.lock flash-attn   # optional, afterwards
# Every package that route installs, pinned: pip's resolve of pyproject.toml's dependencies plus its gpu
# extra for the lowest supported Python (each pin also has wheels for the others).
# tests/unit/test_gpu_route.py re-resolves it against the index for every supported Python;
# UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_gpu_route.py rewrites it.
# flash-attn is pinned here only (not in the extra): its sdist imports torch to build.
"""


def supported_pythons() -> list[str]:
    spec = SpecifierSet(PROJECT["requires-python"])
    return [f"3.{minor}" for minor in range(8, 16) if Version(f"3.{minor}") in spec]


def pin(requirement: str) -> tuple[str, str]:
    name, version = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]+\])?==([^;\s]+)", requirement).groups()
    return canonicalize_name(name), version


def lock_pins() -> dict[str, str]:
    lines = [line.strip() for line in LOCK.read_text().splitlines()]
    return dict(pin(line) for line in lines if line and not line.startswith("#"))


def route_requirements() -> list[str]:
    """What `pip install -e ".[gpu]"` asks for: the project's dependencies plus the gpu extra."""
    return PROJECT["dependencies"] + PROJECT["optional-dependencies"]["gpu"]


def index_failure(what: str, output: str) -> str:
    network = re.search(
        r"NewConnectionError|Max retries exceeded|name resolution|Name or service not known|Network is unreachable"
        r"|Connection refused|connection error|timed out|ProxyError|SSLError",
        output,
    )
    why = (
        "the package index could not be reached: this test needs it (it checks the real index) and fails "
        "rather than skip"
        if network
        else "pip found no consistent set: a pin conflicts with what a package declares, or has no wheel"
    )
    return f"{what} failed: {why}.\n" + output[-6000:]


@pytest.fixture(scope="module")
def resolver_pip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip RESOLVER_PIP, run from its wheel (the venv's own pip is left alone)."""
    cache = Path(os.environ.get("TUNER_TEST_CACHE") or tmp_path_factory.mktemp("pip")) / "gpu-route"
    wheel = cache / f"pip-{RESOLVER_PIP}-py3-none-any.whl"
    if not wheel.exists():
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--timeout", "30"]
        argv += ["--disable-pip-version-check", "-d", str(cache), f"pip=={RESOLVER_PIP}"]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(index_failure(f"fetching pip {RESOLVER_PIP} (the resolver)", done.stdout + done.stderr))
    return wheel / "pip"


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DeepSpeed publishes only an sdist, which pip cannot evaluate for another Python: a local wheel
    carrying the installed (identical) release's metadata stands in for it. DeepSpeed's setup.py adds
    nvidia-ml-py only when torch imports at build time, never in pip's isolated build."""
    import importlib.metadata

    want = dict(pin(r) for r in PROJECT["dependencies"] if "==" in r)["deepspeed"]
    dist = importlib.metadata.distribution("deepspeed")
    assert dist.version == want, f"installed deepspeed {dist.version}, pinned {want}: run ./install.sh"
    folder = tmp_path_factory.mktemp("stubs")
    info = f"deepspeed-{want}.dist-info"
    with zipfile.ZipFile(folder / f"deepspeed-{want}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{info}/METADATA", dist.read_text("METADATA"))
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: stub\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return folder


def resolve_args(pip: Path, python: str, stubs: Path, report: Path, requirements: Path, lock: Path | None) -> list[str]:
    argv = [sys.executable, str(pip), "install", "--dry-run", "--ignore-installed", "--quiet", "--no-input"]
    argv += ["--disable-pip-version-check", "--use-feature=fast-deps", "--timeout", "30", "--retries", "2"]
    argv += ["--python-version", python, "--implementation", "cp", "--only-binary=:all:"]
    argv += [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    argv += ["--find-links", str(stubs), "--report", str(report), "-r", str(requirements)]
    return argv + (["-c", str(lock)] if lock else [])


@pytest.fixture(scope="module")
def resolved(resolver_pip: Path, stubs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Python version -> pip's report entries by name, all Pythons resolved at once (~20 s each)."""
    tmp = tmp_path_factory.mktemp("resolve")
    requirements = tmp / "requirements.txt"
    requirements.write_text("\n".join(route_requirements()) + "\n")
    pythons = supported_pythons()
    if os.environ.get("UPDATE_GOLDEN"):
        report = tmp / "fresh.json"
        args = resolve_args(resolver_pip, pythons[0], stubs, report, requirements, None)
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode == 0, index_failure(f"resolving for Python {pythons[0]}", done.stdout + done.stderr)
        items = sorted(json.loads(report.read_text())["install"], key=lambda i: i["metadata"]["name"].lower())
        flash = lock_pins()["flash-attn"] if LOCK.exists() else next(iter(FLASH_ATTN_PREBUILT))
        pins = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items] + [f"flash-attn=={flash}"]
        LOCK.write_text(HEADER + "\n".join(sorted(pins, key=str.lower)) + "\n")
    running = {}
    for python in pythons:
        report = tmp / f"report-{python}.json"
        args = resolve_args(resolver_pip, python, stubs, report, requirements, LOCK)
        running[python] = (report, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = {}
    for python, (report, process) in running.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, index_failure(f"resolving the GPU route for Python {python}", output)
        items = json.loads(report.read_text())["install"]
        results[python] = {canonicalize_name(i["metadata"]["name"]): i for i in items}
    return results


def test_supported_pythons_are_the_ones_checked():
    assert supported_pythons() == ["3.11", "3.12"]


def test_gpu_route_resolves_to_exactly_the_lock(resolved: dict[str, dict]):
    lock = lock_pins()
    for python, items in resolved.items():
        got = {name: item["metadata"]["version"] for name, item in items.items()}
        unpinned = {name: version for name, version in got.items() if lock.get(name) != version}
        assert unpinned == {}, f"Python {python}: resolved but not pinned in {LOCK.name} (UPDATE_GOLDEN=1)"
        for requirement in route_requirements():
            if "==" in requirement:
                name, version = pin(requirement)
                assert got[name] == version, f"Python {python}: {requirement} resolved to {got[name]}"
    used = {name for items in resolved.values() for name in items} | {"flash-attn"}
    assert sorted(set(lock) - used) == [], f"pinned in {LOCK.name} but installed for no Python"


def test_requires_python_floor_is_the_dependencies_floor(resolved: dict[str, dict]):
    """The lowest Python the resolved packages all accept is requires-python's floor: 3.10 is out
    because llamafactory 0.9.5 (and SQLAlchemy 2.1, typer 0.29.2, matplotlib 3.11) require >=3.11."""
    floors = {}
    for name, item in resolved[supported_pythons()[0]].items():
        spec = SpecifierSet(item["metadata"].get("requires_python") or "")
        floors[name] = next(f"3.{m}" for m in range(6, 16) if Version(f"3.{m}") in spec)
    highest = max(floors.values(), key=Version)
    assert highest == supported_pythons()[0], sorted(n for n, f in floors.items() if f == highest)
    assert floors["llamafactory"] == "3.11"


def test_flash_attn_pin_is_on_the_index_with_a_prebuilt_wheel_for_each_python(resolver_pip: Path):
    version = lock_pins()["flash-attn"]
    prebuilt = FLASH_ATTN_PREBUILT.get(version)
    assert prebuilt, f"flash-attn {version}: record which torch and Pythons its release has wheels for"
    torch = dict(pin(r) for r in PROJECT["optional-dependencies"]["gpu"])["torch"]
    assert torch.startswith(prebuilt["torch"] + "."), f"flash-attn {version} has prebuilt wheels for torch {prebuilt}"
    for python in supported_pythons():
        assert python in prebuilt["pythons"], f"no prebuilt flash-attn {version} wheel for Python {python}"
        # The index (sdists count; Requires-Python is applied for that Python): no download.
        argv = [sys.executable, str(resolver_pip), "index", "versions", "flash-attn", "--python-version", python]
        done = subprocess.run([*argv, "--disable-pip-version-check", "--timeout", "30"], capture_output=True, text=True)
        assert done.returncode == 0, index_failure(
            f"looking up flash-attn for Python {python}", done.stdout + done.stderr
        )
        available = re.search(r"Available versions: (.*)", done.stdout).group(1).split(", ")
        assert version in available, f"flash-attn {version} is not on the index for Python {python}"


def test_docker_image_pins_what_the_lock_pins():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    lock = lock_pins()
    docker = dict(pin(m) for m in re.findall(r"(?<![\w.\-])([A-Za-z][\w.\-]*==[\w.]+)", text))
    assert {name: (version, lock.get(name)) for name, version in docker.items() if lock.get(name) != version} == {}


def test_gpu_check_dry_run_renders_and_preflights_without_a_gpu(tmp_path):
    env = {**os.environ, "GPU_CHECK_PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    assert "0 error(s)" in out
    assert "Qwen3 of 0.494B parameters (config only, no weights)" in out
    for line in ("bf16: true", "flash_attn: auto", "include_num_input_tokens_seen: non_padding", '"stage": 3'):
        assert line in out
    assert "dry run OK" in out


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_gpu_check_summary_figures(tmp_path):
    gpu_check = _gpu_check()
    output = tmp_path / "output"
    output.mkdir()
    (output / "trainer_state.json").write_text(json.dumps({"num_input_tokens_seen": 400_000}))
    (output / "all_results.json").write_text(json.dumps({"train_runtime": 8.0}))
    bare = gpu_check.read_run("bare", output, 40.0, 20.0, 1)
    assert bare.tokens_per_s_per_gpu == 50_000
    trials = [gpu_check.Run(f"trial {i}", 44.0, 22.0, 400_000, 10.0, 2) for i in range(4)]
    summary = gpu_check.summarize(bare, trials, study_wall_s=200.0)
    assert summary["startup_share_mean"] == 0.5
    assert summary["bare"]["startup_share"] == 0.5
    assert summary["tokens_per_s_per_gpu_mean"] == 20_000  # 400k tokens / 10 s / 2 GPUs
    assert summary["overhead_per_trial"] == 1.1  # 44 / 40
    assert summary["overhead_study"] == 1.25  # 200 / (4 x 40)
    (output / "trainer_state.json").unlink()
    (output / "trainer_log.jsonl").write_text('{"loss": 1.0}\n{"loss": 0.9, "total_tokens": 123}\n')
    assert gpu_check.read_run("bare", output, 40.0, None, 1).tokens == 123
    assert gpu_check.parameter_count(gpu_check.MODEL_SHAPE) == 494_008_192
