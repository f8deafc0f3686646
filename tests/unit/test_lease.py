from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
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


def test_a_driver_taken_over_learns_it_at_its_next_heartbeat(store):
    """Fencing: a driver silent past the stale time is taken over; when it comes back, its next
    heartbeat reads the take-over and it stops instead of running on next to the new driver."""
    old = Lease(store, stale_s=0.5, heartbeat_s=0.05).acquire()
    old._stop.set()  # the old driver freezes (a long GC pause, a network partition)
    old._thread.join()
    time.sleep(0.7)
    new = Lease(StudyStore.open(store.url, store.name, create=False), stale_s=0.5, heartbeat_s=0.05).acquire()
    assert new.took_over is not None
    old._stop.clear()  # it comes back
    thread = threading.Thread(target=old._beat, daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert old.lost and "was taken over by" in old.lost and socket.gethostname() in old.lost
    new.release()


def test_a_session_that_lost_its_lease_starts_nothing_and_says_why(make_block, tmp_path):
    from tuner.config.block import load_block
    from tuner.config.space import build_space
    from tuner.study.budget import Budget, Ledger
    from tuner.study.session import StudySession

    block = load_block(make_block())
    store = StudyStore.open(f"sqlite:///{tmp_path / 'l.db'}", "l")
    session = StudySession(store, block, build_space(block), Ledger(Budget("trials", 5)), tmp_path / "trials")
    assert session.next_trial() is not None
    session.lease_lost = lambda: "study 'l' was taken over by h pid 1"
    assert session.next_trial() is None
    assert session.interrupted and "taken over" in str(session.fatal)


def test_a_trial_recorded_by_another_driver_is_not_an_error(store):
    from optuna.distributions import FloatDistribution

    number, _ = store.ask({"x": FloatDistribution(0, 1)})
    store.tell(number, "FAIL", attrs={"exit_class": "interrupted"})  # recovery by the new driver
    store.tell(number, "COMPLETE", 1.0, attrs={"exit_class": "ok"})  # the old driver, back: no traceback
    (trial,) = store.trials()
    assert trial.state.name == "FAIL" and trial.user_attrs["exit_class"] == "interrupted"


def test_a_joining_driver_recovers_only_dead_peers_trials(store, make_block):
    from optuna.distributions import FloatDistribution

    from tuner.config.block import load_block
    from tuner.study.recovery import recover

    dist = {"x": FloatDistribution(0, 1)}
    live, _ = store.ask(dist)
    store.set_trial_attrs(live, {"driver": "node-a:100"})
    dead, _ = store.ask(dist)
    store.set_trial_attrs(dead, {"driver": "node-b:200"})
    recovered = recover(store, load_block(make_block()), live_drivers={"node-a:100"})
    assert recovered.interrupted == [dead] and list(recovered.requeued) == [dead]
    states = {t.number: t.state.name for t in store.trials()}
    assert states[live] == "RUNNING" and states[dead] == "FAIL"
