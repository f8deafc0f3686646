"""`tune dashboard`'s server: a connection that never sends a request does not block the others."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request

import optuna

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
