"""One driver per study: a lease with a heartbeat, kept in the study itself (not a local file), so
it holds across machines that share the storage.

The holder writes {host, pid, since, heartbeat, token} every HEARTBEAT_S seconds from a thread.
Another driver is refused while the heartbeat is fresh and takes over once it is STALE_S old.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from tuner.errors import StorageError, UserError
from tuner.study import StudyStore

log = logging.getLogger(__name__)

KEY = "driver"
HEARTBEAT_S = 10.0
STALE_S = 60.0


class StudyBusy(UserError):
    """Another live driver holds the study."""


def _now() -> float:
    return time.time()


def _dead_here(holder: dict[str, Any]) -> bool:
    """A holder on this very host whose process is gone is dead now: no need to wait for staleness."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError):
        return False
    return False


def describe(holder: dict[str, Any], now: float) -> str:
    since = dt.datetime.fromtimestamp(holder["since"], dt.UTC).isoformat(timespec="seconds")
    return (f"{holder['host']} pid {holder['pid']} since {since} "
            f"(last heartbeat {now - holder['heartbeat']:.0f} s ago)")  # fmt: skip


class Lease:
    def __init__(self, store: StudyStore, *, stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.store, self.stale_s, self.heartbeat_s = store, stale_s, heartbeat_s
        self.token = uuid.uuid4().hex
        self.took_over: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: StorageError | None = None

    def _record(self, since: float) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "since": since, "heartbeat": _now(),
                "token": self.token, "released": False}  # fmt: skip

    def acquire(self) -> Lease:
        holder = self.store.attrs().get(KEY)
        now = _now()
        if holder and not holder.get("released") and holder.get("token") != self.token:
            if now - float(holder.get("heartbeat", 0)) < self.stale_s and not _dead_here(holder):
                raise StudyBusy(
                    f"study {self.store.name!r} is being run by another driver: {describe(holder, now)}. "
                    f"Fix: wait for it to finish or stop it (kill {holder['pid']} on {holder['host']}); "
                    f"a driver silent for {self.stale_s:.0f} s is taken over"
                )
            self.took_over = holder
            log.warning("taking over study %s from %s", self.store.name, describe(holder, now))
        self.store.set_attrs({KEY: self._record(now)})
        time.sleep(0.2)  # two drivers racing for a free lease: the last writer wins, the other sees it
        current = self.store.attrs().get(KEY) or {}
        if current.get("token") != self.token:
            raise StudyBusy(f"study {self.store.name!r} was just claimed by {describe(current, _now())}")
        self._since = now
        self._thread = threading.Thread(target=self._beat, name="tuner-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        failures = 0
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.store.set_attrs({KEY: self._record(self._since)})
                failures = 0
            except StorageError as e:  # noted; the driver stops on the next write it needs
                failures += 1
                log.warning("heartbeat of study %s failed (%d in a row): %s", self.store.name, failures, e)
                if failures >= 3:
                    self.error = e

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        record = self._record(getattr(self, "_since", _now()))
        record["released"] = True
        try:
            self.store.set_attrs({KEY: record})
        except StorageError as e:
            log.warning("could not release study %s: %s", self.store.name, e)
