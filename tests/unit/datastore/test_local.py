"""The local (SQLite) backend's own behaviour: several handles on one file, as several
processes would have. The shared contract (CAS, txn, watch, leases) is in tests/datastore."""

import time

import pytest

from calico.datastore.kv import Compacted, EventType, KeyNotFound, Unreachable
from calico.datastore.local import LocalBackend, prefix_range


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "calico.db")


def test_prefix_range():
    assert prefix_range("/calico/") == ("/calico/", "/calico0")
    assert prefix_range("") == ("", None)


def test_default_path_from_env(monkeypatch, path):
    monkeypatch.setenv("CALICO_DATASTORE_PATH", path)
    backend = LocalBackend()
    assert backend.path == path
    backend.close()


def test_two_handles_share_revisions_and_watches(path):
    a, b = LocalBackend(path), LocalBackend(path)
    try:
        start = a.revision()
        watcher = a.watch("/k/", start + 1)
        sent = time.monotonic()
        rev = b.put("/k/1", "from-b")
        events = watcher.events(timeout=5)
        assert (time.monotonic() - sent) < 2.5  # woken by b's write, not by the timeout
        assert [(e.type, e.key, e.revision) for e in events] == [(EventType.PUT, "/k/1", rev)]
        assert a.get("/k/1").mod_revision == rev
        watcher.close()
    finally:
        a.close()
        b.close()


def test_expired_lease_is_reaped_by_another_handle(path):
    a, b = LocalBackend(path), LocalBackend(path)
    now = [1000.0]
    a._clock = b._clock = lambda: now[0]
    lease = a.grant_lease(5)
    a.put("/felix/status", "up", lease=lease)
    a.close()  # the owner dies without revoking
    assert b.get("/felix/status").value == "up"
    now[0] += 6
    assert b.get("/felix/status") is None
    with pytest.raises(KeyNotFound):
        b.keepalive(lease)
    b.close()


def test_history_is_compacted_automatically(path):
    backend = LocalBackend(path, history_revisions=50)
    for i in range(1000):
        backend.put(f"/k/{i % 7}", str(i))
    with pytest.raises(Compacted):
        backend.list("/k/", revision=900)
    items, rev = backend.list("/k/", revision=backend.revision() - 10)
    assert len(items) == 7
    assert len(backend.list("/k/")[0]) == 7
    backend.close()


def test_closed_backend_stops_its_watchers(path):
    backend = LocalBackend(path)
    watcher = backend.watch("/", backend.revision() + 1)
    backend.close()
    with pytest.raises(Unreachable):
        watcher.events(timeout=1)


def _child_put(backend, key, out):
    out.put(backend.put(key, "from-child"))


def test_a_forked_child_reopens_the_file(path):
    import multiprocessing

    backend = LocalBackend(path)
    backend.put("/k/parent", "x")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_put, args=(backend, "/k/child", out))
    child.start()
    child.join(timeout=10)
    assert child.exitcode == 0
    assert backend.get("/k/child").mod_revision == out.get(timeout=1)
    backend.close()


def test_another_process_commit_wakes_the_poller_through_inotify(tmp_path):
    """The poller sleeps on a pipe (this process's writes) and inotify on the database's
    directory (anyone's): a file written there ends a wait long before its timeout."""
    from calico.datastore.localwatch import Wakeup

    wake = Wakeup(str(tmp_path))
    try:
        assert wake._inotify >= 0, "inotify is available on every machine we support"
        (tmp_path / "calico.db-wal").write_bytes(b"x")
        started = time.monotonic()
        wake.wait(30.0)
        assert time.monotonic() - started < 29.0  # woken, not timed out
        started = time.monotonic()
        wake.set()
        wake.wait(30.0)
        assert time.monotonic() - started < 29.0
        started = time.monotonic()
        wake.wait(0.05)  # both drained: nothing pending, the timeout ends this one
        assert time.monotonic() - started >= 0.04
    finally:
        wake.close()
