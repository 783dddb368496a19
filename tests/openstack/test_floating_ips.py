"""Floating IPs in a real Neutron server (router service plugin loaded) with our driver: an
operator's openstacksdk calls — router with an external gateway, floating IP associated,
moved to another port, disassociated, deleted; a port deleted with its floating IP — and the
ipNATs of the WorkloadEndpoints in the datastore after each, plus the resync's repair."""

from __future__ import annotations

import json

import pytest

from calico.datastore.local import LocalBackend
from tests.openstack.conftest import live_felix, wait_for
from tests.openstack.harness import NeutronServer, run_sdk

WEP = "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/"


@pytest.fixture(scope="module")
def server(neutron_venv, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("calico-fip") / "calico.db")
    neutron = NeutronServer(neutron_venv, tmp_path_factory.mktemp("neutron-fip"), path,
                            service_plugins="router")
    neutron.start()
    backend = LocalBackend(path)
    live_felix(backend, "host-a")  # ports bind only where a Felix reports
    try:
        yield neutron, backend
    finally:
        backend.close()
        neutron.stop()


def sdk(venv, url: str, *args: str) -> dict:
    return run_sdk(venv, "fip_sdk.py", url, *args)


def nats(store) -> dict[str, list[tuple[str, str]]]:
    """Port id -> its endpoint's (internalIP, externalIP) pairs, for every endpoint."""
    out = {}
    for kv in store.list(WEP)[0]:
        spec = json.loads(kv.value)["spec"]
        out[spec["endpoint"]] = [(n["internalIP"], n["externalIP"])
                                 for n in spec.get("ipNATs") or []]
    return out


def test_floating_ip_lifecycle(neutron_venv, server):
    neutron, store = server
    topo = sdk(neutron_venv, neutron.url, "topology")
    vm1, vm2 = topo["ports"]["vm1"], topo["ports"]["vm2"]
    wait_for(lambda: set(nats(store)) == {vm1["id"], vm2["id"]}, what="the two endpoints")
    assert nats(store) == {vm1["id"]: [], vm2["id"]: []}

    fip = sdk(neutron_venv, neutron.url, "associate", vm1["id"])
    on_vm1 = {vm1["id"]: [(vm1["ip"], fip["address"])], vm2["id"]: []}
    wait_for(lambda: nats(store) == on_vm1, what="ipNATs on vm1")

    sdk(neutron_venv, neutron.url, "move", fip["id"], vm2["id"])
    on_vm2 = {vm1["id"]: [], vm2["id"]: [(vm2["ip"], fip["address"])]}
    wait_for(lambda: nats(store) == on_vm2, what="ipNATs moved to vm2")

    sdk(neutron_venv, neutron.url, "move", fip["id"], "none")
    wait_for(lambda: nats(store) == {vm1["id"]: [], vm2["id"]: []}, what="disassociated")

    sdk(neutron_venv, neutron.url, "move", fip["id"], vm1["id"])
    wait_for(lambda: nats(store) == on_vm1, what="associated again")
    sdk(neutron_venv, neutron.url, "delete-fip", fip["id"])
    wait_for(lambda: nats(store) == {vm1["id"]: [], vm2["id"]: []}, what="floating IP deleted")

    # The resync repairs an endpoint whose ipNATs were lost behind the driver's back.
    fip2 = sdk(neutron_venv, neutron.url, "associate", vm2["id"])
    wanted = {vm1["id"]: [], vm2["id"]: [(vm2["ip"], fip2["address"])]}
    wait_for(lambda: nats(store) == wanted, what="second floating IP on vm2")
    kv = next(kv for kv in store.list(WEP)[0]
              if json.loads(kv.value)["spec"]["endpoint"] == vm2["id"])
    doc = json.loads(kv.value)
    del doc["spec"]["ipNATs"]
    store.put(kv.key, json.dumps(doc))
    wait_for(lambda: nats(store) == wanted, what="the resync restoring ipNATs")

    # A port deleted with its floating IP still associated takes its endpoint with it.
    sdk(neutron_venv, neutron.url, "delete-port", vm2["id"])
    wait_for(lambda: nats(store) == {vm1["id"]: []}, what="vm2's endpoint gone")
