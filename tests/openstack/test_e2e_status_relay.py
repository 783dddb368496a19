"""The status relay of the end-to-end path when Neutron's database refuses a write.

In test_e2e.py the driver's status thread shares Neutron's SQLite database with API requests
and sometimes gets "database is locked" (on MySQL: a deadlock). Felix writes each endpoint
report once, so a failed push must be retried, not dropped. Real local datastore, the
driver's StatusWatcher, a Neutron stand-in that fails its first writes.
"""

import json
import threading

from calico.datastore.local import LocalBackend
from calico.openstack import names
from calico.openstack.status import StatusWatcher
from tests.openstack.conftest import wait_for

KEY = names.FELIX_STATUS_PREFIX + "host1/workload/openstack/openstack%2fvm1/endpoint/"


class BusyNeutron:
    def __init__(self, failures: int) -> None:
        self.failures, self.statuses = failures, {}

    def set_port_status(self, port_id: str, status: str) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        self.statuses[port_id] = status


def test_failed_status_push_is_retried_until_neutron_takes_it(tmp_path):
    backend = LocalBackend(str(tmp_path / "calico.db"))
    neutron = BusyNeutron(failures=3)
    watcher = StatusWatcher(backend, neutron.set_port_status)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run_while, args=(lambda: True, stop, 0.1))
    thread.start()
    try:
        backend.put(KEY + "p1", json.dumps({"status": "up"}))
        wait_for(lambda: neutron.statuses.get("p1") == "ACTIVE", timeout=5,
                 what="p1 ACTIVE despite three failed pushes")
        # A newer report replaces a pending retry: the port ends with the newest status.
        neutron.failures = 1
        backend.put(KEY + "p2", json.dumps({"status": "up"}))
        backend.put(KEY + "p2", json.dumps({"status": "error"}))
        wait_for(lambda: neutron.statuses.get("p2") == "ERROR", timeout=5, what="p2 ERROR")
        stop.wait(0.5)
        assert neutron.statuses == {"p1": "ACTIVE", "p2": "ERROR"}
    finally:
        stop.set()
        thread.join(10)
        backend.close()
