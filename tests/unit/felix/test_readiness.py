"""Felix and the migration lock (ClusterInformation default's datastoreReady), on a real
local store: wait at start while locked, and a watcher that fires when a lock appears."""

import json
import threading

from calico.datastore.local import LocalBackend
from calico.felix import readiness


def _info(backend, ready):
    spec = {} if ready is None else {"datastoreReady": ready}
    backend.put(readiness.KEY, json.dumps({"apiVersion": "projectcalico.org/v3",
                                           "kind": "ClusterInformation",
                                           "metadata": {"name": "default"}, "spec": spec}))


def test_ready_unless_explicitly_false(tmp_path):
    backend = LocalBackend(str(tmp_path / "c.db"))
    assert readiness.datastore_ready(backend)  # no ClusterInformation at all
    _info(backend, None)
    assert readiness.datastore_ready(backend)
    _info(backend, False)
    assert not readiness.datastore_ready(backend)
    _info(backend, True)
    assert readiness.datastore_ready(backend)
    backend.close()


def test_start_waits_while_locked(tmp_path, caplog):
    backend = LocalBackend(str(tmp_path / "c.db"))
    _info(backend, False)
    sleeps = []

    def sleep(seconds):  # the operator unlocks during the third wait
        sleeps.append(seconds)
        if len(sleeps) == 3:
            _info(backend, True)

    assert readiness.wait_until_ready(backend, lambda: False, sleep)
    assert len(sleeps) == 3
    assert sum("locked for migration" in r.getMessage() for r in caplog.records) == 1
    backend.close()


def test_stop_request_ends_the_wait(tmp_path):
    backend = LocalBackend(str(tmp_path / "c.db"))
    _info(backend, False)
    assert not readiness.wait_until_ready(backend, lambda: True, lambda s: None)
    backend.close()


def test_watcher_fires_when_the_store_is_locked(tmp_path):
    backend = LocalBackend(str(tmp_path / "c.db"))
    _info(backend, True)
    fired = threading.Event()
    watcher = readiness.LockWatcher(backend, fired.set).start()
    try:
        _info(backend, False)
        assert fired.wait(10), "the lock was not noticed"
    finally:
        watcher.stop()
        backend.close()
