"""IPAM's acceptance cases on the real backends (local SQLite and etcd): exhaustion names the
pool, a disabled pool is never used, strict affinity fails instead of borrowing, check() finds
an endpoint deleted without release and fix() frees it, and the stored keys are Calico's."""

from __future__ import annotations

import json

import pytest

from calico.datastore import DatastoreConfig, connect
from calico.ipam import (
    IPAM,
    IPAMConfig,
    NoPoolsError,
    PoolExhaustedError,
    StrictAffinityError,
    workload_attrs,
)
from tests.fixtures.etcd import EtcdServer
from tests.unit.ipam.helpers import add_node, add_pool, add_wep, allocations, check_invariants


@pytest.fixture(scope="module")
def own_etcd():
    """A private etcd: IPAM keys are absolute, so these tests must not share a server."""
    server = EtcdServer("ipam-acceptance").start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "etcdv3"])
def kv(request, tmp_path):
    if request.param == "local":
        backend = connect(DatastoreConfig(type="local", path=str(tmp_path / "calico.db")))
    else:
        server = request.getfixturevalue("own_etcd")
        backend = connect(DatastoreConfig(type="etcdv3", etcd_endpoints=(server.endpoint,)))
        for prefix in ("/calico/ipam/", "/calico/resources/"):  # the previous test's keys
            for item in backend.list(prefix)[0]:
                backend.delete(item.key)
    yield backend
    backend.close()


def test_stored_keys_and_json(kv) -> None:
    add_pool(kv, "default-ipv4-ippool", "10.65.0.0/16")
    ipam = IPAM(kv, "node-1")
    (ip,), _ = ipam.auto_assign(1, 0, "wl-1", {"node": "node-1"})
    block = ipam.get_assignment(ip).block
    part = block.replace("/", "-")
    stored = json.loads(kv.get(f"/calico/ipam/v2/assignment/ipv4/block/{part}").value)
    assert stored["cidr"] == block and stored["affinity"] == "host:node-1"
    assert stored["attributes"] == [{"handle_id": "wl-1", "secondary": {"node": "node-1"}}]
    assert json.loads(kv.get(f"/calico/ipam/v2/host/node-1/ipv4/block/{part}").value) == {
        "state": "confirmed", "deleted": False}
    assert json.loads(kv.get("/calico/ipam/v2/handle/wl-1").value) == {
        "block": {block: 1}, "deleted": False}


def test_exhaustion_disabled_pool_and_strict_affinity(kv) -> None:
    add_pool(kv, "tiny", "10.65.0.0/29", blockSize=30)
    add_pool(kv, "off", "10.66.0.0/24", disabled=True)
    a, b, c = IPAM(kv, "a"), IPAM(kv, "b"), IPAM(kv, "c")
    a.auto_assign(1, 0, "ha")
    b.auto_assign(1, 0, "hb")
    c.set_config(IPAMConfig(strict_affinity=True))
    with pytest.raises(StrictAffinityError, match="strict affinity"):
        c.auto_assign(1, 0, "hc")
    c.set_config(IPAMConfig())
    assert len(c.auto_assign(6, 0, "hc")[0]) == 6  # borrowed
    with pytest.raises(PoolExhaustedError, match=r"tiny \(10.65.0.0/29\)"):
        c.auto_assign(1, 0, "hd")
    with pytest.raises(NoPoolsError, match="off .* is disabled"):
        c.auto_assign(1, 0, "he", pools=["off"])
    assert all(ip.startswith("10.65.0.") for ip in allocations(kv))
    check_invariants(kv, ["10.65.0.0/29"])


def test_check_finds_a_deleted_endpoint_and_fix_frees_it(kv) -> None:
    add_pool(kv, "p", "10.65.0.0/24")
    add_node(kv, "n1")
    ipam = IPAM(kv, "n1")
    keep = ipam.auto_assign(1, 0, "keep", workload_attrs("n1", "ns", "keep"))[0][0]
    gone, gone6 = ipam.auto_assign(1, 0, "gone", workload_attrs("n1", "ns", "gone"))
    add_wep(kv, "ns", "keep", [keep])
    report = ipam.check(grace=0)
    assert [(x.ip, x.endpoint) for x in report.leaked] == [(gone[0], "ns/gone")]
    result = ipam.fix(report)
    assert result.released == gone and kv.get("/calico/ipam/v2/handle/gone") is None
    assert ipam.check(grace=0).ok and allocations(kv) == {keep: "keep"}
