"""Acceptance for `calicoctl datastore migrate`: a lab on the embedded store moves to a real
etcd (lock, export, import, hosts restarted on etcd, unlock); its workloads keep their
addresses and connectivity, IPAM carries on without reusing an address, and the cluster
exported back from etcd into a new local store is the same cluster."""

from __future__ import annotations

import pytest

from calico.datastore import DatastoreConfig, connect
from calico.datastore.client import ResourceClient
from tests.fixtures.calicoctl import calicoctl
from tests.fixtures.etcd import EtcdServer

from .conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]



def ctl(env: dict[str, str], *args: str, input: str | None = None) -> str:
    res = calicoctl(args, env, input=input)
    assert res.returncode == 0, f"calicoctl {' '.join(args)}: {res.stderr}"
    return res.stdout


def endpoint_addresses(env: dict[str, str]) -> dict[str, set[str]]:
    backend = connect(DatastoreConfig.from_env(env), create=False)
    try:
        weps = ResourceClient(backend).list("WorkloadEndpoint").items
        return {w.to_dict()["metadata"]["name"]: {n.split("/")[0] for n in
                                                  w.to_dict()["spec"]["ipNetworks"]}
                for w in weps}
    finally:
        backend.close()


def without_store_metadata(dump: str) -> list[str]:
    """An export's lines, less what each store sets for itself."""
    skip = ("uid:", "creationTimestamp:", "\"datastoreReady\"", "\"resourceVersion\"",
            "\"uid\"", "\"creationTimestamp\"")
    return [line for line in dump.splitlines() if not line.strip().startswith(skip)]


def _reach(lab, pairs):
    for src, dst in pairs:
        for addr in lab.workload(dst)["addresses"]:
            wait_until(lambda s=src, a=addr: lab.ping(s, a), 10.0, f"{src} -> {dst} ({addr})")


@pytest.fixture
def etcd():
    server = EtcdServer().start()
    yield server
    server.stop()


def test_local_lab_moves_to_etcd_and_back(make_lab, etcd, tmp_path):
    lab = make_lab("g", hosts=2, datastore="local")
    lab.add_workload("host1", "w1")
    lab.add_workload("host2", "w2")
    _reach(lab, [("w1", "w2"), ("w2", "w1")])
    local = lab.datastore_env(inside=False)
    before = endpoint_addresses(local)

    ctl(local, "datastore", "migrate", "lock")
    dump = ctl(local, "datastore", "migrate", "export")
    remote = {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": etcd.endpoint}
    out = ctl(remote, "datastore", "migrate", "import", "-f", "-", input=dump)
    assert "successfully imported" in out

    # Point every host at etcd and restart its calico-node, as an operator would.
    lab.state["datastore"] = {"type": "etcdv3", "endpoints": [etcd.endpoint], "etcd": None}
    lab.save()
    lab._start_proxy()
    for host in ("host1", "host2"):
        lab.stop_node(host)
        lab.start_node(host)
    ctl(remote, "datastore", "migrate", "unlock")
    lab.wait_established(30.0)

    assert endpoint_addresses(remote) == before
    _reach(lab, [("w1", "w2"), ("w2", "w1")])
    rec = lab.add_workload("host2", "w3")
    used = set().union(*before.values())
    assert not set(rec["addresses"]) & used, (rec["addresses"], used)
    _reach(lab, [("w1", "w3"), ("w3", "w1")])

    # And back: etcd's cluster exported into a new local store is the same cluster.
    ctl(remote, "datastore", "migrate", "lock")
    dump2 = ctl(remote, "datastore", "migrate", "export")
    back = {"DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": str(tmp_path / "back.db")}
    ctl(back, "datastore", "migrate", "import", "-f", "-", input=dump2)
    dump3 = ctl(back, "datastore", "migrate", "export")
    assert without_store_metadata(dump3) == without_store_metadata(dump2)
    assert endpoint_addresses(back) == endpoint_addresses(remote)
