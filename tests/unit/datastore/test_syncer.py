"""The syncer over the local backend, with a wrapper that can make the datastore vanish."""

import json
import threading
import time

import pytest

from calico.datastore.client import ResourceClient, kind_prefix
from calico.datastore.kv import Compacted, Unreachable
from calico.datastore.local import LocalBackend
from calico.datastore.syncer import Syncer, SyncSource, SyncStatus

V3 = "projectcalico.org/v3"
POOLS = kind_prefix("IPPool")
BLOCKS = "/calico/ipam/v2/assignment/"


def pool(name, cidr):
    return {"apiVersion": V3, "kind": "IPPool", "metadata": {"name": name},
            "spec": {"cidr": cidr}}


class Recorder:
    def __init__(self):
        self.cond = threading.Condition()
        self.statuses, self.updates = [], []

    def on_status(self, status):
        with self.cond:
            self.statuses.append(status)
            self.cond.notify_all()

    def on_updates(self, updates):
        with self.cond:
            self.updates.extend(updates)
            self.cond.notify_all()

    def wait(self, predicate, timeout=5.0):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self), timeout), (
                self.statuses, self.updates)

    def take(self):
        with self.cond:
            out, self.updates = self.updates, []
        return [(u.key, u.value) for u in out]


class Flaky:
    """A backend wrapper: `down = True` makes lists and watches fail with `error`."""

    def __init__(self, backend):
        self.backend, self.down, self.error = backend, False, Unreachable("test: down")
        self.watchers = []

    def list(self, prefix, revision=None):
        if self.down:
            raise self.error
        return self.backend.list(prefix, revision)

    def watch(self, prefix, start):
        if self.down:
            raise self.error
        watcher = self.backend.watch(prefix, start)
        flaky = self

        class W:
            def events(self, timeout=None):
                deadline = time.monotonic() + (timeout or 0)
                while True:
                    if flaky.down:
                        watcher.close()
                        raise flaky.error
                    got = watcher.events(timeout=0.02)
                    if got or time.monotonic() >= deadline:
                        return got

            def close(self):
                watcher.close()
        return W()

    def __getattr__(self, name):
        return getattr(self.backend, name)


@pytest.fixture
def backend(tmp_path):
    backend = LocalBackend(str(tmp_path / "calico.db"))
    yield backend
    backend.close()


@pytest.fixture
def run_syncer():
    syncers = []

    def run(backend, sources, recorder, **kw):
        syncer = Syncer(backend, sources, recorder, retry_delay=0.05, **kw).start()
        syncers.append(syncer)
        return syncer
    yield run
    for s in syncers:
        s.stop()


def test_snapshot_then_changes(backend, run_syncer):
    client = ResourceClient(backend)
    client.create(pool("p1", "10.1.0.0/16"))
    backend.put(BLOCKS + "ipv4/block/10.1.0.0-26", json.dumps({"cidr": "10.1.0.0/26"}))
    backend.put("/calico/felix/v2/no-region/host/h1/status", "{}")  # not a source
    rec = Recorder()
    run_syncer(backend, ["IPPool", BLOCKS], rec)
    rec.wait(lambda r: SyncStatus.IN_SYNC in r.statuses)
    assert rec.statuses == [SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC, SyncStatus.IN_SYNC]
    snapshot = dict(rec.take())
    assert set(snapshot) == {POOLS + "p1", BLOCKS + "ipv4/block/10.1.0.0-26"}
    assert snapshot[POOLS + "p1"].spec.cidr == "10.1.0.0/16"
    assert snapshot[POOLS + "p1"].metadata.resourceVersion
    assert snapshot[BLOCKS + "ipv4/block/10.1.0.0-26"] == {"cidr": "10.1.0.0/26"}

    client.create(pool("p2", "10.2.0.0/16"))
    client.delete("IPPool", "p1")
    rec.wait(lambda r: len(r.updates) >= 2)
    assert [(k, v is None) for k, v in rec.take()] == [(POOLS + "p2", False), (POOLS + "p1", True)]


def test_invalid_value_is_a_deletion_and_the_syncer_goes_on(backend, run_syncer, caplog):
    client = ResourceClient(backend)
    client.create(pool("p1", "10.1.0.0/16"))
    backend.put(POOLS + "bad", "{oops")
    rec = Recorder()
    run_syncer(backend, ["IPPool"], rec)
    rec.wait(lambda r: SyncStatus.IN_SYNC in r.statuses)
    assert [k for k, _ in rec.take()] == [POOLS + "p1"]
    assert POOLS + "bad" in caplog.text
    backend.put(POOLS + "p1", json.dumps({"kind": "IPPool"}))  # now invalid: deleted
    client.create(pool("p3", "10.3.0.0/16"))
    rec.wait(lambda r: len(r.updates) >= 2)
    assert rec.take() == [(POOLS + "p1", None), (POOLS + "p3", client.get("IPPool", "p3"))]


@pytest.mark.parametrize("error", [Unreachable("gone"), Compacted(5, 9)])
def test_resync_after_error_emits_only_differences(backend, run_syncer, error):
    for name in ["same", "changed", "deleted"]:
        backend.put(BLOCKS + name, json.dumps({"v": 1}))
    flaky = Flaky(backend)
    flaky.error = error
    rec = Recorder()
    run_syncer(flaky, [BLOCKS], rec)
    rec.wait(lambda r: SyncStatus.IN_SYNC in r.statuses)
    assert len(rec.take()) == 3
    flaky.down = True
    time.sleep(0.1)
    backend.put(BLOCKS + "changed", json.dumps({"v": 2}))
    backend.delete(BLOCKS + "deleted")
    backend.put(BLOCKS + "added", json.dumps({"v": 1}))
    flaky.down = False
    rec.wait(lambda r: len(r.updates) >= 3)
    time.sleep(0.1)
    assert sorted(rec.take()) == [(BLOCKS + "added", {"v": 1}), (BLOCKS + "changed", {"v": 2}),
                                  (BLOCKS + "deleted", None)]
    assert rec.statuses == [SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC, SyncStatus.IN_SYNC]
    backend.put(BLOCKS + "same", json.dumps({"v": 3}))  # and it is watching again
    rec.wait(lambda r: len(r.updates) >= 1)
    assert rec.take() == [(BLOCKS + "same", {"v": 3})]


def test_waits_for_the_datastore(backend, run_syncer):
    flaky = Flaky(backend)
    flaky.down = True
    rec = Recorder()
    run_syncer(flaky, [BLOCKS], rec)
    time.sleep(0.2)
    assert rec.statuses == [SyncStatus.WAIT_FOR_DATASTORE]
    flaky.down = False
    rec.wait(lambda r: SyncStatus.IN_SYNC in r.statuses)


def test_custom_source_and_batches(backend, run_syncer):
    for i in range(25):
        backend.put(f"/raw/{i:02d}", f"text {i}")
    rec = Recorder()
    batches = []
    rec_updates = rec.on_updates
    rec.on_updates = lambda updates: (batches.append(len(updates)), rec_updates(updates))
    run_syncer(backend, [SyncSource("/raw/", lambda key, value, rev: value.upper())], rec,
               batch_size=10)
    rec.wait(lambda r: SyncStatus.IN_SYNC in r.statuses)
    assert batches == [10, 10, 5]
    assert rec.take()[0] == ("/raw/00", "TEXT 0")


def test_stop_is_clean(backend):
    rec = Recorder()
    syncer = Syncer(backend, [BLOCKS], rec).start()
    rec.wait(lambda r: SyncStatus.IN_SYNC in r.statuses)
    started = time.monotonic()
    syncer.stop()
    assert not syncer._thread.is_alive()
    assert time.monotonic() - started < 2
