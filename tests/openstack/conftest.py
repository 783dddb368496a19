"""The openstack tier: a real Neutron API server (Neutron 29, own venv) with our driver.

`neutron_venv` builds (or reuses) the venv with scripts/neutron-venv.sh — a cold build takes
about a minute, a cached one well under a second. `neutron` is one server per module with
the local datastore in a temp dir, resyncing every 2 s with a 3 s election lease so repair
and takeover are quick to observe. `store` reads that datastore from the test process.
"""

import json
import time

import pytest

from calico.datastore.local import LocalBackend
from calico.openstack import names
from tests.openstack.harness import NeutronAPI, NeutronServer, build_venv, run_sdk


@pytest.fixture(scope="session")
def neutron_venv():
    return build_venv()


@pytest.fixture(scope="module")
def datastore_path(tmp_path_factory):
    return str(tmp_path_factory.mktemp("calico") / "calico.db")


@pytest.fixture(scope="module")
def neutron(neutron_venv, datastore_path, tmp_path_factory):
    server = NeutronServer(neutron_venv, tmp_path_factory.mktemp("neutron"), datastore_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(neutron):
    return NeutronAPI(neutron.url)


@pytest.fixture(scope="module")
def store(datastore_path, neutron):
    backend = LocalBackend(datastore_path)
    yield backend
    backend.close()


def live_felix(store, *hosts: str, region: names.Region = names.NO_REGION,
               ttl: int = 3600) -> int:
    """What a Felix on each host writes: its status key on a lease (the driver binds ports
    only to hosts with a live Felix). Returns the lease; revoke it for "Felix died"."""
    lease = store.grant_lease(ttl)
    for host in hosts:
        store.put(region.felix_status_key(host), json.dumps({"time": "now", "uptime": 1.0,
                                                             "first_update": True}),
                  lease=lease)
    return lease


def run_sdk_scenario(venv, url: str) -> dict:
    return run_sdk(venv, "sdk_scenario.py", url)


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
