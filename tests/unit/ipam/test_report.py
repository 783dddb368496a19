"""usage(), blocks(), check() and fix() against an in-memory backend."""

import json

import pytest

from calico.ipam import IPAM, model, workload_attrs

from .helpers import add_node, add_pool, add_wep, allocations, blocks, check_invariants
from .memkv import MemoryBackend


@pytest.fixture
def kv() -> MemoryBackend:
    kv = MemoryBackend()
    add_pool(kv, "p", "10.65.0.0/24", blockSize=28)
    add_pool(kv, "off", "10.66.0.0/24", disabled=True)
    add_node(kv, "n1")
    add_node(kv, "n2")
    return kv


def test_usage_and_blocks(kv: MemoryBackend) -> None:
    IPAM(kv, "n1").auto_assign(3, 0, "a", {"node": "n1"})
    IPAM(kv, "n2").auto_assign(1, 0, "b", {"node": "n2"})
    off, p = IPAM(kv, "n1").usage()
    assert (off.name, off.disabled, off.allocated, off.blocks) == ("off", True, 0, 0)
    assert (p.name, p.cidr, p.size, p.allocated, p.free, p.blocks) == (
        "p", "10.65.0.0/24", 256, 4, 252, 2)
    infos = IPAM(kv, "n1").blocks()
    assert sorted((i.host, i.allocated, i.free, i.pool) for i in infos) == [
        ("n1", 3, 13, "p"), ("n2", 1, 15, "p")]


def test_clean_datastore_checks_ok(kv: MemoryBackend) -> None:
    ipam = IPAM(kv, "n1")
    ip = ipam.auto_assign(1, 0, "wl", workload_attrs("n1", "ns", "ep1"))[0][0]
    add_wep(kv, "ns", "ep1", [ip])
    report = ipam.check()
    assert report.ok and report.allocations == 1


def test_check_finds_and_fix_frees_leaks(kv: MemoryBackend) -> None:
    ipam = IPAM(kv, "n1")
    kept = ipam.auto_assign(1, 0, "wl-kept", workload_attrs("n1", "ns", "kept"))[0][0]
    gone = ipam.auto_assign(2, 0, "wl-gone", workload_attrs("n1", "ns", "gone"))[0]
    pod = ipam.auto_assign(1, 0, "k8s-pod", {"namespace": "ns", "pod": "web-0"})[0][0]
    tunnel = ipam.auto_assign(1, 0, "tunnel", {"node": "n1", "type": "vxlanTunnelAddress"})
    add_wep(kv, "ns", "kept", [kept])
    add_wep(kv, "ns", "gone", gone)
    kv.delete("/calico/resources/v3/projectcalico.org/workloadendpoints/ns/gone")  # no release
    report = ipam.check(grace=0)
    assert sorted((x.ip, x.endpoint) for x in report.leaked) == sorted(
        [(gone[0], "ns/gone"), (gone[1], "ns/gone"), (pod, "ns/web-0")])
    result = ipam.fix(report)
    assert sorted(result.released) == sorted(gone + [pod]) and result.skipped == []
    assert sorted(allocations(kv)) == sorted([kept, tunnel[0][0]])
    assert kv.get(model.handle_key("wl-gone")) is None
    assert ipam.check().ok
    check_invariants(kv, ["10.65.0.0/24"])


def test_young_allocations_are_not_leaks(kv: MemoryBackend) -> None:
    ipam = IPAM(kv, "n1")
    ipam.auto_assign(1, 0, "wl", workload_attrs("n1", "ns", "not-yet-written"))
    assert ipam.check().ok  # default grace: 60 s
    assert len(ipam.check(grace=0).leaked) == 1


def test_fix_skips_an_address_reallocated_since_the_report(kv: MemoryBackend) -> None:
    ipam = IPAM(kv, "n1")
    ip = ipam.auto_assign(1, 0, "old", {"namespace": "ns", "pod": "gone"})[0][0]
    report = ipam.check(grace=0)
    ipam.release_ips([ip])
    ipam.assign_ip(ip, "new", {"namespace": "ns", "pod": "gone"})
    result = ipam.fix(report)
    assert result.released == [] and result.skipped == [ip]
    assert allocations(kv) == {ip: "new"}


def test_orphan_and_mismatched_handles(kv: MemoryBackend) -> None:
    ipam = IPAM(kv, "n1")
    ipam.auto_assign(2, 0, "real")
    kv.put(model.handle_key("orphan"), json.dumps({"block": {"10.65.0.0/28": 1},
                                                   "deleted": False}))
    real = json.loads(kv.get(model.handle_key("real")).value)
    cidr = next(iter(real["block"]))
    kv.put(model.handle_key("real"), json.dumps({"block": {cidr: 5}, "deleted": False}))
    report = ipam.check()
    assert [h.handle_id for h in report.orphan_handles] == ["orphan"]
    assert [(h.handle_id, h.actual) for h in report.handle_mismatches] == [("real", {cidr: 2})]
    result = ipam.fix(report)
    assert result.handles_deleted == ["orphan"] and result.handles_rewritten == ["real"]
    assert ipam.check().ok
    check_invariants(kv, ["10.65.0.0/24"])


def test_blocks_of_deleted_nodes_are_released(kv: MemoryBackend) -> None:
    IPAM(kv, "n2").auto_assign(1, 0, "x")
    ip = IPAM(kv, "n2").auto_assign(1, 0, "y")[0][0]
    IPAM(kv, "n2").release_ips([ip])
    kv.delete("/calico/resources/v3/projectcalico.org/nodes/n2")
    report = IPAM(kv, "n1").check()
    assert [(a.host, a.reason) for a in report.dead_node_affinities] == [
        ("n2", "node n2 does not exist")]
    IPAM(kv, "n1").fix(report)
    (b,) = blocks(kv)
    assert b.affinity is None and b.num_allocated == 1  # still in use: kept, unaffine
    assert kv.list(model.HOSTS_PREFIX)[0] == []
    assert IPAM(kv, "n1").check().ok


def test_stale_affinity_is_reported_and_removed(kv: MemoryBackend) -> None:
    ipam = IPAM(kv, "n1")
    ipam.auto_assign(1, 0, "x")
    (b,) = blocks(kv)
    kv.put(model.affinity_key("n2", b.cidr), json.dumps({"state": "confirmed",
                                                         "deleted": False}))
    report = ipam.check()
    assert [(a.host, a.reason) for a in report.stale_affinities] == [
        ("n2", "block is affine to host:n1")]
    ipam.fix(report)
    assert ipam.check().ok
