"""`tune pin` on finished trials: kept on the study, shown by `tune status`, honoured by disk pruning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from optuna.distributions import FloatDistribution

from tuner.study.disk import free_weights
from tuner.study.store import StudyStore

TUNE = str(Path(sys.executable).with_name("tune"))
DIST = {"learning_rate": FloatDistribution(1e-5, 1e-3, log=True)}


def _tune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TUNE, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}
    )


def _finished_study(tmp_path: Path) -> tuple[str, list[Path]]:
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    store = StudyStore.open(url, "s")
    outputs = []
    for number, value in enumerate((1.0, 2.0, 3.0)):
        output = tmp_path / f"t{number}" / "output"
        (output / "checkpoint-4").mkdir(parents=True)
        (output / "model.safetensors").write_bytes(b"w" * 100)
        outputs.append(output)
        n, _ = store.ask(DIST)
        store.set_trial_attrs(n, {"output_dir": str(output), "trial_dir": str(output.parent)})
        store.tell(n, "COMPLETE", value)
    return url, outputs


def test_pin_a_finished_trial_then_status_and_disk_honour_it(tmp_path):
    url, outputs = _finished_study(tmp_path)
    done = _tune("pin", "s", "2", "--storage", url)
    assert done.returncode == 0 and "trial #2 of s pinned" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr

    status = _tune("status", "s", "--storage", url)
    assert status.returncode == 0 and "(pinned: [2])" in status.stdout

    store = StudyStore.open(url, "s", create=False)
    free_weights(store, keep_best=1, weightless=set())
    assert (outputs[0] / "model.safetensors").exists()  # the best
    assert not (outputs[1] / "model.safetensors").exists()  # neither best nor pinned
    assert (outputs[2] / "model.safetensors").exists() and (outputs[2] / "checkpoint-4").exists()  # pinned

    done = _tune("pin", "s", "2", "--unpin", "--storage", url)
    assert done.returncode == 0 and "unpinned" in done.stdout
    assert StudyStore.open(url, "s", create=False).pinned() == set()


def test_pin_of_a_missing_trial_is_a_clear_error(tmp_path):
    url, _ = _finished_study(tmp_path)
    done = _tune("pin", "s", "9", "--storage", url)
    assert done.returncode == 2 and "study 's' has no trial 9" in done.stderr and "Traceback" not in done.stderr
