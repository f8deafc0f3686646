from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.storage import BACKENDS, storage_url, unique_name
from tuner.errors import ConfigError
from tuner.study.lease import PREFIX, Lease, StudyBusy, live_drivers
from tuner.study.store import StudyStore


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    return StudyStore.open(storage_url(request.param, tmp_path), unique_name("lease"))


def _holder(**kw):
    record = {
        "host": "gpu-node-7",
        "pid": 4242,
        "since": time.time() - 300,
        "heartbeat": time.time(),
        "token": "other",
        "released": False,
    }
    record.update(kw)
    return record


def test_live_holder_is_refused_with_who_holds_it(store):
    store.set_attrs({PREFIX + "other": _holder()})
    with pytest.raises(StudyBusy) as info:
        Lease(store).acquire()
    text = str(info.value)
    assert "gpu-node-7 pid 4242" in text and "last heartbeat" in text and "Fix:" in text


def test_stale_holder_is_taken_over(store):
    store.set_attrs({PREFIX + "other": _holder(heartbeat=time.time() - 600)})
    lease = Lease(store).acquire()
    assert lease.took_over["host"] == "gpu-node-7"
    assert store.attrs()[lease.key]["pid"] == os.getpid()
    lease.release()
    assert store.attrs()[lease.key]["released"] is True


def test_dead_holder_on_this_host_is_taken_over_at_once(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.set_attrs({PREFIX + "other": _holder(host=socket.gethostname(), pid=dead.pid)})
    assert Lease(store).acquire().took_over["pid"] == dead.pid


def test_released_lease_is_free_and_heartbeat_advances(store):
    store.set_attrs({PREFIX + "other": _holder(released=True)})
    lease = Lease(store, heartbeat_s=0.2).acquire()
    first = store.attrs()[lease.key]["heartbeat"]
    time.sleep(0.8)
    assert store.attrs()[lease.key]["heartbeat"] > first
    with pytest.raises(StudyBusy):
        Lease(store).acquire()  # a second driver while the first is alive
    lease.release()


def test_join_runs_next_to_a_live_driver_on_postgres_only(store):
    first = Lease(store).acquire()
    if store.url.startswith("sqlite"):
        with pytest.raises(ConfigError, match="SQLite allows one driver"):
            Lease(store, join=True).acquire()
    else:
        second = Lease(store, join=True).acquire()
        assert [d["pid"] for d in second.joined] == [os.getpid()]
        assert len(live_drivers(store.attrs())) == 2
        second.release()
    first.release()
    assert live_drivers(store.attrs()) == {}
