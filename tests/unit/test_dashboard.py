"""`tune dashboard`'s server: a connection that never sends a request does not block the others; it stops
cleanly on Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from tuner.outputs.dashboard import make_dashboard


def test_a_silent_connection_does_not_block_other_requests(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    optuna.create_study(study_name="s", storage=url).add_trial(optuna.trial.create_trial(value=1.0))
    server = make_dashboard(url, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port)):  # a browser's preconnect
            base = f"http://127.0.0.1:{server.server_port}/api/studies"
            with urllib.request.urlopen(base, timeout=20) as response:  # a single-threaded server hangs here
                (study,) = json.load(response)["study_summaries"]
    finally:
        server.shutdown()
        server.server_close()
    assert study["study_name"] == "s"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_dashboard_stops_cleanly_even_when_started_in_the_background(tmp_path, sig):
    """A script's `tune dashboard &` inherits SIGINT ignored; Ctrl-C/kill must still stop it and free the port."""
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    optuna.create_study(study_name="s", storage=url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dashboard = subprocess.Popen(
        [str(Path(sys.executable).with_name("tune")), "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as bash does for `cmd &`
    )
    try:
        for _ in range(300):  # until it answers
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        dashboard.send_signal(sig)
        out, err = dashboard.communicate(timeout=60)
    finally:
        dashboard.kill()
    assert dashboard.returncode == 0, err
    assert "Dashboard stopped." in out and "Traceback" not in err
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
