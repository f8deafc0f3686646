"""The command line as a user meets it: exit codes, messages without tracebacks, light --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tuner.config import yaml_io

TUNE = str(Path(sys.executable).with_name("tune"))


def _tune(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TUNE, *args], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200", **(env or {})}
    )


def test_help_explains_and_imports_no_heavy_modules():
    code = (
        "import sys; from typer.testing import CliRunner; from tuner.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "print(r.output); heavy = [m for m in ('torch', 'ray', 'llamafactory', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("check", "render", "trial"):
        assert command in done.stdout


def test_check_bad_config_exits_2_with_message_not_traceback(make_block):
    path = make_block({"runtime_info.input.training.learning_rate": "fast", "evolvng": {}})
    done = _tune("check", "--config", str(path))
    assert done.returncode == 2
    assert "runtime_info.input.training.learning_rate" in done.stderr and "evolvng" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_check_reports_findings_and_exit_code(make_block):
    ok = _tune("check", "--config", str(make_block()), env={"CUDA_VISIBLE_DEVICES": ""})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = _tune(
        "check",
        "--config",
        str(
            make_block(
                {"runtime_info.input.training.cutoff_len": 40000, "runtime_info.input.training.use_unsloth": True}
            )
        ),
    )
    assert bad.returncode == 2
    assert "rope_scaling" in bad.stdout and "use_unsloth" in bad.stdout and "2 error(s)" in bad.stdout


def test_render_prints_the_trial_yaml(make_block, tmp_path):
    done = _tune(
        "render",
        "--config",
        str(make_block()),
        "--set",
        "learning_rate=2e-4",
        "--set",
        "max_instances=150",
        "--trials-dir",
        str(tmp_path / "trials"),
    )
    assert done.returncode == 0, done.stderr
    args = yaml_io.loads(done.stdout)
    assert args["learning_rate"] == 2e-4 and args["output_dir"].startswith(str(tmp_path / "trials"))


def test_trial_with_bad_set_exits_2(make_block, tmp_path):
    done = _tune("trial", "--config", str(make_block()), "--set", "learning_rate=-3", "--trials-dir", str(tmp_path))
    assert done.returncode == 2 and "greater than 0" in done.stderr and "Traceback" not in done.stderr


def test_bad_startup_trials_is_a_user_error(make_block, tmp_path):
    done = _tune(
        "start",
        "--config",
        str(make_block()),
        "--budget",
        "2",
        "--startup-trials",
        "0",
        "--storage",
        f"sqlite:///{tmp_path / 's.db'}",
        "--trials-dir",
        str(tmp_path / "trials"),
    )
    assert done.returncode == 2 and "--startup-trials" in done.stderr and "must be >= 1" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "s.db").exists()


def test_gp_with_asha_no_longer_warns(make_block, tmp_path):
    """`--sampler gp` learns from the rung values under ASHA (tuner.study.fidelity): nothing to warn about."""
    bad = make_block({"runtime_info.input.training.cutoff_len": 40000})  # a preflight error stops the start
    done = _tune(
        "start",
        "--config",
        str(bad),
        "--budget",
        "2",
        "--sampler",
        "gp",
        "--storage",
        f"sqlite:///{tmp_path / 's.db'}",
        "--trials-dir",
        str(tmp_path / "trials"),
    )
    assert done.returncode == 2 and "rope_scaling" in done.stdout + done.stderr
    assert "--sampler gp learns only from completed trials" not in done.stderr
