"""On one real demo study: the dashboard while it runs (HTTP API + a real browser), then promote
and report on the finished study."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import FAST_TUNABLES, run_tune
from tuner.config import yaml_io
from tuner.config.block import load_block
from tuner.trial.prepare import preview

TUNE = str(Path(sys.executable).with_name("tune"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by the test setup when missing (the machine allows apt)."""
    path = shutil.which("chromium")
    if path is None:
        done = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            update = subprocess.run(["apt-get", "update"], capture_output=True, text=True, timeout=600)
            done = subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, update.stderr[-2000:] + done.stderr[-2000:]
        path = shutil.which("chromium")
    assert path, "chromium is not installed"
    return path


@pytest.fixture(scope="module")
def live_study(tmp_path_factory, demo):
    """A real study, with the dashboard polled while it runs."""
    root = tmp_path_factory.mktemp("study")
    data = yaml_io.load(demo.block)
    section = data["runtime_info"]["input"]
    section["training"]["model_name_or_path"] = str(demo.model_dir)
    section["conversion"]["source"] = str(demo.root / section["conversion"]["source"])
    data["evolving"]["tunable_params"] = FAST_TUNABLES
    section["training"]["per_device_train_batch_size"] = 8  # short trials: promote and the dashboard are tested
    block = root / "block.yaml"
    block.write_text("# my production block\n" + yaml_io.dumps(data))
    url, trials_dir = f"sqlite:///{root / 'tuner.db'}", root / "trials"
    driver = subprocess.Popen(
        [
            TUNE,
            "start",
            "--config",
            str(block),
            "--budget",
            "2",
            "--study",
            "live",
            "--storage",
            url,
            "--trials-dir",
            str(trials_dir),
            "--scheduler",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = _free_port()
    deadline = time.monotonic() + 120
    while not (root / "tuner.db").exists() and time.monotonic() < deadline:
        time.sleep(0.5)  # the dashboard needs the database the driver creates
    dashboard = subprocess.Popen(
        [TUNE, "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen_running = False
    try:
        deadline = time.monotonic() + 600
        while driver.poll() is None and time.monotonic() < deadline:
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                if studies:
                    detail = _get(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}")
                    seen_running |= any(t["state"] == "Running" for t in detail["trials"])
            except OSError:
                pass  # the dashboard is still starting
            time.sleep(2)
        _, err = driver.communicate(timeout=60)
        assert driver.returncode == 0, err[-3000:]
        yield {
            "url": url,
            "trials_dir": trials_dir,
            "block": block,
            "port": port,
            "dashboard": dashboard,
            "seen_running": seen_running,
            "root": root,
        }
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
        driver.kill()


def test_dashboard_reads_a_running_study_without_breaking_it(live_study, chromium, tmp_path):
    assert live_study["seen_running"], "the dashboard never showed a running trial"
    port = live_study["port"]
    studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
    (live,) = [s for s in studies if s["study_name"] == "live"]
    detail = _get(f"http://127.0.0.1:{port}/api/studies/{live['study_id']}")
    assert [t["state"] for t in detail["trials"]] == ["Complete", "Complete"]  # the study was not disturbed
    keys = {a["key"] for a in detail["trials"][0]["user_attrs"]}
    assert {"exit_class", "global_batch_size", "wall_s", "gpu_hours"} <= keys
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/studies/{live['study_id']}", method="DELETE")
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(request, timeout=10)

    shot = tmp_path / "dashboard.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,900",
            "--virtual-time-budget=8000",
            f"--screenshot={shot}",
            f"http://127.0.0.1:{port}/dashboard/studies/{live['study_id']}",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    dashboard = live_study["dashboard"]
    dashboard.send_signal(2)  # Ctrl-C
    out, _ = dashboard.communicate(timeout=30)
    assert dashboard.returncode == 0 and "Dashboard stopped" in out
    with socket.socket() as s:  # the port is free again (for a server; our clients' TIME_WAITs remain)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_promote_the_best_trial(live_study, tmp_path):
    url, trials_dir, block = live_study["url"], live_study["trials_dir"], live_study["block"]
    original = block.read_text()
    target = tmp_path / "prod.yaml"
    done = run_tune("promote", "live", "--storage", url, "--trials-dir", str(trials_dir), "--to", str(target))
    assert done.returncode == 0, done.stderr
    assert block.read_text() == original  # the user's block is untouched
    text = target.read_text()
    assert text.startswith("# my production block")  # comments kept
    import optuna

    best = optuna.load_study(study_name="live", storage=url).best_trial
    promoted = load_block(target)
    for name, value in best.params.items():
        section = promoted.conversion if name == "max_instances" else promoted.training
        assert getattr(section, name) == pytest.approx(value)
    assert promoted.training.overwrite_output_dir is False and promoted.training.output_dir != "demo-sft"
    assert promoted.provenance["study"] == "live" and promoted.provenance["trial"] == best.number
    assert promoted.provenance["value"] == pytest.approx(best.value) and "storage" in promoted.provenance
    assert "@@" in done.stdout  # the diff was printed
    # The exact YAML the trial ran sits beside it; rendering the promoted block reproduces its keys.
    ran = yaml_io.load(target.with_name("prod.llamafactory.yaml"))
    assert ran == yaml_io.load(Path(best.user_attrs["trial_dir"]) / "llamafactory.yaml")
    rendered = preview(promoted, {}, tmp_path / "trials").args
    paths = {"output_dir", "dataset_dir", "deepspeed", "run_name", "tokenized_path"}
    assert {k: v for k, v in rendered.items() if k not in paths} == {k: v for k, v in ran.items() if k not in paths}
    assert run_tune("check", "--config", str(target)).returncode == 0
    again = run_tune("promote", "live", "--storage", url, "--trials-dir", str(trials_dir), "--to", str(target))
    assert again.returncode == 2 and "--force" in again.stderr
    forced = run_tune(
        "promote", "live", "--storage", url, "--trials-dir", str(trials_dir), "--to", str(target), "--force"
    )
    assert forced.returncode == 0
    status = run_tune("status", "live", "--storage", url)
    assert f"promoted: trial #{best.number}" in status.stdout


def test_report_on_the_real_study(live_study, tmp_path):
    done = run_tune("report", "live", "--storage", live_study["url"], "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Optimization history" in html and "<table>" in html
    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert pngs and all(p.stat().st_size > 10_000 for p in pngs)
