"""`tune dashboard`: optuna-dashboard on the study storage, read-only.

The dashboard can edit studies (tell trials, delete studies, change attributes). Against a study a
driver is writing, it must only read: SQLite is opened read-only (`mode=ro`, and the writer uses
WAL, so readers never block it); for other databases the dashboard's write routes are refused.
Localhost by default: binding elsewhere must be asked for, and is printed.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tuner.errors import ConfigError, StorageError
from tuner.redact import redact_url
from tuner.study.storage import open_storage

log = logging.getLogger(__name__)

_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def readonly_url(url: str) -> str:
    if url.startswith("sqlite:///") and "mode=ro" not in url:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise StorageError(f"no study database at {path}. Fix: pass the --storage that `tune start` used")
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    return url


def _read_only(app: Callable[..., Any]) -> Callable[..., Any]:
    """WSGI middleware: refuse every request that would write to the study."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD", "GET") in _WRITES:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"tune dashboard is read-only: studies are changed by tune start/resume only\n"]
        return app(environ, start_response)

    return guarded


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    """One thread per request, as optuna-dashboard's own CLI serves: a browser that holds a connection
    open without sending (a speculative preconnect) cannot block other requests, and daemon threads
    cannot keep the process alive after Ctrl-C."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: " + format, *args)


def make_dashboard(url: str, host: str, port: int) -> WSGIServer:
    """A ready (bound) server; `serve_forever()` runs it."""
    from optuna_dashboard import wsgi

    storage = open_storage(readonly_url(url), read_only=True)
    try:
        return make_server(
            host, port, _read_only(wsgi(storage)), server_class=_ThreadedServer, handler_class=_QuietHandler
        )
    except OSError as e:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {e.strerror}",
            key="--port",
            value=port,
            fix="choose a free port, e.g. --port 8081",
        ) from None


class _Stop(BaseException):
    """Not an Exception: socketserver's request handling catches those and would serve on."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop


def serve_until_stopped(server: WSGIServer) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the port. Both are handled here, as the driver does:
    a dashboard started in the background of a script inherits SIGINT ignored, and `kill`, systemd
    and `docker stop` send SIGTERM; either must stop it cleanly rather than be lost or kill it."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    except _Stop:
        pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        server.server_close()


def describe(url: str, host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("127.0.0.1", "localhost") else host
    return f"http://{shown}:{port}/dashboard  (study storage {redact_url(url)}, read-only)"
