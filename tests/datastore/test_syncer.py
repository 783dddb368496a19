"""The syncer against each backend, and across an etcd outage long enough to need a re-list."""

import json
import time

from calico.datastore.etcd import EtcdBackend
from calico.datastore.syncer import Syncer, SyncStatus
from tests.fixtures.etcd import EtcdServer
from tests.unit.datastore.test_syncer import Recorder


def test_syncer_snapshot_and_changes(backend, prefix):
    backend.put(prefix + "a", json.dumps({"v": 1}))
    rec = Recorder()
    syncer = Syncer(backend, [prefix], rec).start()
    try:
        rec.wait(lambda r: SyncStatus.IN_SYNC in r.statuses)
        assert rec.take() == [(prefix + "a", {"v": 1})]
        backend.put(prefix + "b", json.dumps({"v": 2}))
        backend.delete(prefix + "a")
        rec.wait(lambda r: len(r.updates) >= 2)
        assert rec.take() == [(prefix + "b", {"v": 2}), (prefix + "a", None)]
    finally:
        syncer.stop()


def test_syncer_relists_after_an_etcd_outage():
    server = EtcdServer().start()
    backend = EtcdBackend([server.endpoint], unreachable_after=1)
    try:
        for name in ["same", "changed", "deleted"]:
            backend.put("/s/" + name, json.dumps({"v": 1}))
        rec = Recorder()
        syncer = Syncer(backend, ["/s/"], rec, retry_delay=0.2).start()
        rec.wait(lambda r: SyncStatus.IN_SYNC in r.statuses)
        rec.take()
        server.kill()
        time.sleep(1.5)  # the watch gives up: Unreachable
        server.start()
        backend.put("/s/changed", json.dumps({"v": 2}))
        backend.delete("/s/deleted")
        rec.wait(lambda r: len(r.updates) >= 2, timeout=10)
        time.sleep(0.3)
        assert sorted(rec.take()) == [("/s/changed", {"v": 2}), ("/s/deleted", None)]
        syncer.stop()
    finally:
        backend.close()
        server.stop()
