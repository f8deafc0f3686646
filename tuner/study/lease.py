"""Drivers of a study: leases with heartbeats, kept in the study itself (not a local file), so they
hold across machines that share the storage.

Each driver writes its own attribute `driver:<token>` = {host, pid, since, heartbeat, released}
every HEARTBEAT_S seconds from a thread (one key per driver: concurrent drivers never overwrite
each other's record). By default a driver is exclusive: another live driver (fresh heartbeat)
makes it refuse, naming the holder. On PostgreSQL, `join=True` runs next to the live drivers and
shares the study's budget. A driver silent for STALE_S seconds, or gone from this host, is dead.
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

from tuner.errors import ConfigError, StorageError, UserError
from tuner.study.store import StudyStore

log = logging.getLogger(__name__)

PREFIX = "driver:"
HEARTBEAT_S = 10.0
STALE_S = 60.0


class StudyBusy(UserError):
    """Another live driver holds the study."""


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
    return f"{holder['host']} pid {holder['pid']} since {since} (last heartbeat {now - holder['heartbeat']:.0f} s ago)"


def live_drivers(attrs: dict[str, Any], stale_s: float = STALE_S, now: float | None = None) -> dict[str, dict]:
    now = time.time() if now is None else now
    found = {}
    for key, record in attrs.items():
        if not key.startswith(PREFIX) or not isinstance(record, dict) or record.get("released"):
            continue
        if now - float(record.get("heartbeat", 0)) < stale_s and not _dead_here(record):
            found[key.removeprefix(PREFIX)] = record
    return found


class Lease:
    def __init__(
        self, store: StudyStore, *, join: bool = False, stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S
    ) -> None:
        self.store, self.join, self.stale_s, self.heartbeat_s = store, join, stale_s, heartbeat_s
        self.token = uuid.uuid4().hex
        self.key = PREFIX + self.token
        self.took_over: dict[str, Any] | None = None
        self.joined: list[dict[str, Any]] = []
        self.error: StorageError | None = None
        self.lost: str | None = None  # why this driver no longer holds the study, once it does not
        self._since = time.time()
        self._wall_keeper = not join  # a joining driver charges wall time only once it is the earliest
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, released: bool = False) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": self._since,
            "heartbeat": time.time(),
            "released": released,
        }

    def _busy(self, holder: dict[str, Any]) -> StudyBusy:
        several = (
            "run several drivers with PostgreSQL and --join"
            if self.store.url.startswith("sqlite")
            else "or add --join to run next to it and share the budget"
        )
        return StudyBusy(
            f"study {self.store.name!r} is being run by another driver: {describe(holder, time.time())}. "
            f"Fix: wait for it to finish or stop it (kill {holder['pid']} on {holder['host']}), {several}; "
            f"a driver silent for {self.stale_s:.0f} s is taken over"
        )

    def acquire(self) -> Lease:
        if self.join and self.store.url.startswith("sqlite"):
            raise ConfigError(
                "SQLite allows one driver per study",
                key="--join",
                value=self.store.url,
                fix="use PostgreSQL (--storage postgresql+psycopg://...) to run several drivers",
            )
        with self.store.exclusive():  # check and claim in one step (PostgreSQL: the study's advisory lock)
            attrs = self.store.attrs()
            live = live_drivers(attrs, self.stale_s)
            if live and not self.join:
                raise self._busy(next(iter(live.values())))
            stale = {
                k: r
                for k, r in attrs.items()
                if k.startswith(PREFIX)
                and isinstance(r, dict)
                and not r.get("released")
                and k.removeprefix(PREFIX) not in live
            }
            if stale and not self.join:
                self.took_over = next(iter(stale.values()))
                log.warning("taking over study %s from %s", self.store.name, describe(self.took_over, time.time()))
                # Fenced: a stale driver that comes back reads this and stops instead of going on.
                mark = {"released": True, "taken_over_by": f"{socket.gethostname()} pid {os.getpid()}"}
                self.store.set_attrs({k: {**r, **mark} for k, r in stale.items()})
            self.store.set_attrs({self.key: self._record()})
        if not self.join:  # two exclusive drivers racing: the earlier claim wins, the other backs off
            time.sleep(0.2)
            attrs = self.store.attrs()
            # This driver is a rival whatever its heartbeat's age (slow storage can make it look stale).
            rivals = {**live_drivers(attrs, self.stale_s), self.token: attrs.get(self.key) or self._record()}
            first = min(rivals.items(), key=lambda kv: (kv[1]["since"], kv[0]))
            if first[0] != self.token:
                self.release()
                raise self._busy(first[1])
        else:
            self.joined = [r for t, r in live.items() if t != self.token]
        self._thread = threading.Thread(target=self._beat, name="tuner-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        failures = 0
        while not self._stop.wait(self.heartbeat_s):
            try:
                mine = self.store.attrs().get(self.key) or {}
                if mine.get("taken_over_by"):
                    self.lost = (
                        f"study {self.store.name!r} was taken over by {mine['taken_over_by']} while this "
                        f"driver's heartbeat was silent for over {self.stale_s:.0f} s"
                    )
                    return
                self.store.set_attrs({self.key: self._record()})
                failures = 0
                if self.join:
                    self._update_wall_keeper()
            except StorageError as e:  # noted; the driver stops on the next write it needs
                failures += 1
                log.warning("heartbeat of study %s failed (%d in a row): %s", self.store.name, failures, e)
                if failures >= 3:
                    self.error = e
                    self.lost = f"the study's heartbeat failed {failures} times in a row: {e}"
                    return

    def live_addresses(self) -> set[str]:
        """ "host:pid" of every live driver of the study (this one included), as trials record theirs."""
        return {f"{r['host']}:{r['pid']}" for r in live_drivers(self.store.attrs(), self.stale_s).values()}

    def keeps_wall_clock(self) -> bool:
        """Whether this driver charges the study's wall time: the earliest live driver does, so
        joined drivers do not count the same hour twice (and another takes over if it dies)."""
        return self._wall_keeper

    def _update_wall_keeper(self) -> None:
        live = live_drivers(self.store.attrs(), self.stale_s)
        earliest = min(live.items(), key=lambda kv: (kv[1]["since"], kv[0]), default=(self.token, {}))
        self._wall_keeper = earliest[0] == self.token

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.set_attrs({self.key: self._record(released=True)})
        except StorageError as e:
            log.warning("could not release study %s: %s", self.store.name, e)
