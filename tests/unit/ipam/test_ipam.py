"""IPAM against an in-memory backend: affinity, claiming, borrowing, strict affinity, pools,
handles, explicit addresses, affinity release, CAS retries."""

import ipaddress
import json

import pytest

from calico.ipam import (
    IPAM,
    AddressInUseError,
    IPAMConfig,
    NoPoolsError,
    NotInPoolError,
    PoolExhaustedError,
    StrictAffinityError,
    model,
)
from calico.ipam.block import AllocationBlock

from .helpers import add_node, add_pool, allocations, blocks, check_invariants
from .memkv import MemoryBackend


@pytest.fixture
def kv() -> MemoryBackend:
    return MemoryBackend()


def block_hosts(kv: MemoryBackend) -> dict[str, str | None]:
    return {str(b.cidr): b.host for b in blocks(kv)}


def test_first_allocation_claims_a_block_with_calicos_keys(kv: MemoryBackend) -> None:
    add_pool(kv, "default-ipv4-ippool", "10.65.0.0/16")
    v4, v6 = IPAM(kv, "node-1").auto_assign(1, 0, "wl-1", {"node": "node-1"})
    assert v6 == [] and len(v4) == 1
    (b,) = blocks(kv)
    assert b.cidr.prefixlen == 26 and ipaddress.ip_address(v4[0]) in b.cidr
    cidr = str(b.cidr).replace("/", "-")
    assert kv.get(f"/calico/ipam/v2/assignment/ipv4/block/{cidr}") is not None
    aff = kv.get(f"/calico/ipam/v2/host/node-1/ipv4/block/{cidr}")
    assert json.loads(aff.value) == {"state": "confirmed", "deleted": False}
    handle = json.loads(kv.get("/calico/ipam/v2/handle/wl-1").value)
    assert handle == {"block": {str(b.cidr): 1}, "deleted": False}


def test_host_fills_its_block_then_claims_another(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24", blockSize=29)
    ipam = IPAM(kv, "node-1")
    for i in range(10):
        ipam.auto_assign(1, 0, f"h{i}")
    assert list(block_hosts(kv).values()) == ["node-1", "node-1"]
    assert [b.num_allocated for b in sorted(blocks(kv), key=lambda b: b.num_free)] == [8, 2]
    check_invariants(kv, ["10.65.0.0/24"])


def test_hosts_get_their_own_blocks(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24", blockSize=28)
    a, b = IPAM(kv, "node-a"), IPAM(kv, "node-b")
    ip_a = a.auto_assign(1, 0, "ha")[0][0]
    ip_b = b.auto_assign(1, 0, "hb")[0][0]
    hosts = block_hosts(kv)
    assert sorted(hosts.values()) == ["node-a", "node-b"]
    assert a.get_assignment(ip_a).block_affinity == "host:node-a"
    assert b.get_assignment(ip_b).block_affinity == "host:node-b"


def test_borrows_when_no_block_is_free(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/29", blockSize=30)  # two blocks of 4
    a, b, c = IPAM(kv, "a"), IPAM(kv, "b"), IPAM(kv, "c")
    a.auto_assign(1, 0, "ha")
    b.auto_assign(1, 0, "hb")
    got = c.auto_assign(2, 0, "hc", {"node": "c"})[0]
    assert len(got) == 2
    assert sorted(block_hosts(kv).values()) == ["a", "b"]  # c holds no block
    for ip in got:
        assert c.get_assignment(ip).block_affinity in ("host:a", "host:b")
    assert sum(u.borrowed for u in c.usage()) == 2
    check_invariants(kv, ["10.65.0.0/29"])


def test_strict_affinity_fails_instead_of_borrowing(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/29", blockSize=30)
    IPAM(kv, "a").auto_assign(1, 0, "ha")
    IPAM(kv, "b").auto_assign(1, 0, "hb")
    c = IPAM(kv, "c")
    c.set_config(IPAMConfig(strict_affinity=True))
    with pytest.raises(StrictAffinityError, match=r"strict affinity forbids borrowing.*"):
        c.auto_assign(1, 0, "hc")
    assert sorted(allocations(kv).values()) == ["ha", "hb"]
    assert kv.get(model.handle_key("hc")) is None


def test_exhaustion_names_the_pool_and_is_all_or_nothing(kv: MemoryBackend) -> None:
    add_pool(kv, "tiny", "10.65.0.0/30", blockSize=30)
    ipam = IPAM(kv, "n")
    ipam.auto_assign(3, 0, "h1")
    with pytest.raises(PoolExhaustedError, match=r"tiny \(10.65.0.0/30\)") as err:
        ipam.auto_assign(2, 0, "h2")
    assert err.value.pools == ["tiny"]
    assert set(allocations(kv).values()) == {"h1"}
    assert kv.get(model.handle_key("h2")) is None
    check_invariants(kv, ["10.65.0.0/30"])


def test_dual_stack_and_rollback_when_v6_fails(kv: MemoryBackend) -> None:
    add_pool(kv, "v4", "10.65.0.0/24")
    add_pool(kv, "v6", "fd00:65::/120")
    ipam = IPAM(kv, "n")
    v4, v6 = ipam.auto_assign(1, 1, "h1")
    assert ipaddress.ip_address(v4[0]).version == 4 and ipaddress.ip_address(v6[0]).version == 6
    handle = json.loads(kv.get(model.handle_key("h1")).value)["block"]
    assert handle == {ipam.get_assignment(v4[0]).block: 1, ipam.get_assignment(v6[0]).block: 1}
    with pytest.raises(PoolExhaustedError, match="IPv6"):
        ipam.auto_assign(1, 300, "h2")
    assert set(allocations(kv).values()) == {"h1"}
    check_invariants(kv, ["10.65.0.0/24", "fd00:65::/120"])


def test_disabled_pool_is_never_used(kv: MemoryBackend) -> None:
    add_pool(kv, "off", "10.66.0.0/24", disabled=True)
    ipam = IPAM(kv, "n")
    with pytest.raises(NoPoolsError, match="no enabled IPv4 IP pool"):
        ipam.auto_assign(1, 0, "h")
    add_pool(kv, "on", "10.65.0.0/24")
    for i in range(20):
        ip = ipam.auto_assign(1, 0, f"h{i}")[0][0]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.65.0.0/24")
    with pytest.raises(NoPoolsError, match=r"IP pool off \(10.66.0.0/24\) is disabled"):
        ipam.auto_assign(1, 0, "x", pools=["off"])
    with pytest.raises(NotInPoolError, match="not in any enabled IP pool"):
        ipam.assign_ip("10.66.0.5", "x")


def test_node_selector_chooses_pools(kv: MemoryBackend) -> None:
    add_pool(kv, "rack1", "10.65.1.0/24", nodeSelector="rack == '1'")
    add_pool(kv, "rack2", "10.65.2.0/24", nodeSelector="rack == '2'")
    add_node(kv, "n1", {"rack": "1"})
    add_node(kv, "n2", {"rack": "2"})
    ip1 = IPAM(kv, "n1").auto_assign(1, 0, "a")[0][0]
    ip2 = IPAM(kv, "n2").auto_assign(1, 0, "b")[0][0]
    assert ip1.startswith("10.65.1.") and ip2.startswith("10.65.2.")
    with pytest.raises(NoPoolsError, match="host n3"):
        IPAM(kv, "n3").auto_assign(1, 0, "c")  # no Node: no labels
    with pytest.raises(NoPoolsError, match="does not select host n1"):
        IPAM(kv, "n1").auto_assign(1, 0, "d", pools=["rack2"])


def test_requested_pool_by_name_or_cidr(kv: MemoryBackend) -> None:
    add_pool(kv, "a", "10.65.1.0/24")
    add_pool(kv, "b", "10.65.2.0/24")
    ipam = IPAM(kv, "n")
    assert ipam.auto_assign(1, 0, "x", pools=["b"])[0][0].startswith("10.65.2.")
    assert ipam.auto_assign(1, 0, "y", pools=["10.65.1.0/24"])[0][0].startswith("10.65.1.")
    with pytest.raises(NoPoolsError, match="IP pool nope does not exist"):
        ipam.auto_assign(1, 0, "z", pools=["nope"])


def test_release_by_ip_and_by_handle(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24")
    ipam = IPAM(kv, "n")
    ips = ipam.auto_assign(3, 0, "h1")[0]
    other = ipam.auto_assign(1, 0, "h2")[0]
    assert ipam.release_ips([ips[0], "10.65.0.200"]) == ["10.65.0.200"]
    block = ipam.get_assignment(ips[1]).block
    assert json.loads(kv.get(model.handle_key("h1")).value)["block"] == {block: 2}
    assert sorted(ipam.release_by_handle("h1")) == sorted(ips[1:])
    assert kv.get(model.handle_key("h1")) is None
    assert allocations(kv) == {other[0]: "h2"}
    assert ipam.release_by_handle("h1") == []
    check_invariants(kv, ["10.65.0.0/24"])


def test_borrowed_block_is_deleted_when_emptied_after_affinity_release(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24", blockSize=28)
    ipam = IPAM(kv, "n1")
    ips = ipam.auto_assign(2, 0, "h")[0]
    assert ipam.release_host_affinities("n1") == ["10.65.0.0/28"] or len(blocks(kv)) == 1
    (b,) = blocks(kv)
    assert b.affinity is None and b.num_allocated == 2
    assert kv.list(model.affinities_prefix("n1"))[0] == []
    ipam.release_ips(ips)
    assert blocks(kv) == []


def test_release_host_affinities_deletes_empty_blocks(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24", blockSize=28)
    ipam = IPAM(kv, "n1")
    ipam.auto_assign(1, 0, "h")
    ipam.release_by_handle("h")
    assert len(blocks(kv)) == 1  # an affine block stays when emptied
    assert len(ipam.release_host_affinities()) == 1
    assert blocks(kv) == [] and kv.list(model.HOSTS_PREFIX)[0] == []


def test_assign_specific_address(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24")
    a, b = IPAM(kv, "a"), IPAM(kv, "b")
    a.assign_ip("10.65.0.77", "port-1", {"node": "a"})
    assert a.get_assignment_attributes("10.65.0.77") == ({"node": "a"}, "port-1")
    assert block_hosts(kv) == {"10.65.0.64/26": "a"}
    with pytest.raises(AddressInUseError, match="10.65.0.77 is already assigned .handle port-1"):
        b.assign_ip("10.65.0.77", "port-2")
    b.assign_ip("10.65.0.78", "port-2")  # borrowed from a's block
    assert b.get_assignment("10.65.0.78").block_affinity == "host:a"
    b.set_config(IPAMConfig(strict_affinity=True))
    with pytest.raises(StrictAffinityError, match="10.65.0.79 is in block 10.65.0.64/26"):
        b.assign_ip("10.65.0.79", "port-3")
    check_invariants(kv, ["10.65.0.0/24"])


def test_auto_assign_skips_explicitly_assigned_addresses(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24", blockSize=30)
    ipam = IPAM(kv, "n")
    first = ipam.auto_assign(1, 0, "h0")[0][0]
    block = ipaddress.ip_network((first, 30), strict=False)
    ipam.assign_ip(str(block.network_address + 1), "fixed")
    got = ipam.auto_assign(3, 0, "h1")[0]
    assert str(block.network_address + 1) not in got
    check_invariants(kv, ["10.65.0.0/24"])


def test_cas_conflicts_are_retried(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24")
    ipam = IPAM(kv, "n")
    ipam.auto_assign(1, 0, "h0")
    kv.fail_next_txns = 5
    ipam.auto_assign(1, 0, "h1")
    assert ipam.store.conflicts == 5
    check_invariants(kv, ["10.65.0.0/24"])


def test_stale_cache_is_corrected_by_cas(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24")
    a1, a2 = IPAM(kv, "n"), IPAM(kv, "n")  # two processes of one host
    ips1 = a1.auto_assign(1, 0, "x")[0] + a2.auto_assign(1, 0, "y")[0]
    ips1 += a1.auto_assign(1, 0, "z")[0]  # a1's cached block is stale now
    assert len(set(ips1)) == 3 and len(blocks(kv)) == 1
    check_invariants(kv, ["10.65.0.0/24"])


def test_reused_handle_accumulates(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24")
    ipam, other = IPAM(kv, "n"), IPAM(kv, "n")
    ipam.auto_assign(1, 0, "same")
    other.auto_assign(2, 0, "same")
    (block,) = blocks(kv)
    assert json.loads(kv.get(model.handle_key("same")).value)["block"] == {str(block.cidr): 3}
    assert len(ipam.release_by_handle("same")) == 3


def test_crash_after_pending_affinity_and_block_is_recovered(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24", blockSize=26)
    cidr = ipaddress.ip_network("10.65.0.64/26")
    kv.put(model.affinity_key("n", cidr), json.dumps({"state": "pending", "deleted": False}))
    kv.put(model.block_key(cidr), AllocationBlock.new(cidr, "n").to_json())
    ip = IPAM(kv, "n").auto_assign(1, 0, "h")[0][0]
    assert ipaddress.ip_address(ip) in cidr
    aff = json.loads(kv.get(model.affinity_key("n", cidr)).value)
    assert aff["state"] == "confirmed"


def test_claim_lost_to_another_host_drops_pending_affinity(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/25", blockSize=26)
    from calico.ipam.pools import read_pools

    mine = next(read_pools(kv)[0].blocks_from("n"))
    kv.put(model.block_key(mine), AllocationBlock.new(mine, "thief").to_json())
    kv.put(model.affinity_key("thief", mine), json.dumps({"state": "confirmed",
                                                          "deleted": False}))
    ip = IPAM(kv, "n").auto_assign(1, 0, "h")[0][0]
    assert ipaddress.ip_address(ip) not in mine
    assert kv.get(model.affinity_key("n", mine)) is None


def test_max_blocks_per_host_borrows(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24", blockSize=30)
    IPAM(kv, "other").auto_assign(1, 0, "o")
    ipam = IPAM(kv, "n")
    ipam.set_config(IPAMConfig(max_blocks_per_host=1))
    got = ipam.auto_assign(6, 0, "h")[0]
    assert len(got) == 6
    assert list(block_hosts(kv).values()).count("n") == 1
    check_invariants(kv, ["10.65.0.0/24"])


def test_config_json_is_calicos(kv: MemoryBackend) -> None:
    ipam = IPAM(kv, "n")
    assert ipam.get_config() == IPAMConfig()
    ipam.set_config(IPAMConfig(strict_affinity=True, max_blocks_per_host=4))
    assert json.loads(kv.get("/calico/ipam/v2/config").value) == {
        "strict_affinity": True, "auto_allocate_blocks": True, "maxBlocksPerHost": 4}
    assert ipam.get_config().strict_affinity is True


def test_cached_context_notices_a_disabled_pool(kv: MemoryBackend) -> None:
    add_pool(kv, "a", "10.65.0.0/24")
    ipam = IPAM(kv, "n", refresh_seconds=3600)
    ipam.auto_assign(1, 0, "x")  # context cached, block in pool a is ours and has room
    add_pool(kv, "a", "10.65.0.0/24", disabled=True)
    add_pool(kv, "b", "10.66.0.0/24")
    ip = ipam.auto_assign(1, 0, "y")[0][0]
    assert ip.startswith("10.66.0.")
    assert [str(b.cidr) for b in blocks(kv) if b.cidr.overlaps(
        ipaddress.ip_network("10.65.0.0/24"))] == [ipam.get_assignment(
            next(iter(allocations(kv)))).block]  # no new block claimed in the disabled pool
    check_invariants(kv, ["10.65.0.0/24", "10.66.0.0/24"])


def test_cached_context_notices_strict_affinity(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/29", blockSize=30)
    IPAM(kv, "a").auto_assign(1, 0, "ha")
    IPAM(kv, "b").auto_assign(1, 0, "hb")
    c = IPAM(kv, "c", refresh_seconds=3600)
    c.auto_assign(1, 0, "hc1")  # borrowed; context cached
    IPAM(kv, "admin").set_config(IPAMConfig(strict_affinity=True))
    with pytest.raises(StrictAffinityError):
        c.auto_assign(1, 0, "hc2")


def test_cached_context_sees_a_new_pool_before_reporting_exhaustion(kv: MemoryBackend) -> None:
    add_pool(kv, "small", "10.65.0.0/30", blockSize=30)
    ipam = IPAM(kv, "n", refresh_seconds=3600)
    ipam.auto_assign(4, 0, "x")
    add_pool(kv, "more", "10.66.0.0/24")
    assert ipam.auto_assign(1, 0, "y")[0][0].startswith("10.66.0.")


def test_node_label_change_is_noticed(kv: MemoryBackend) -> None:
    add_pool(kv, "r1", "10.65.1.0/24", nodeSelector="rack == '1'")
    add_pool(kv, "r2", "10.65.2.0/24", nodeSelector="rack == '2'")
    add_node(kv, "n", {"rack": "1"})
    ipam = IPAM(kv, "n", refresh_seconds=3600)
    assert ipam.auto_assign(1, 0, "x")[0][0].startswith("10.65.1.")
    add_node(kv, "n", {"rack": "2"})
    assert ipam.auto_assign(1, 0, "y")[0][0].startswith("10.65.2.")


def test_a_block_write_applied_unseen_is_not_repeated(kv: MemoryBackend) -> None:
    # etcd retries a txn whose answer was lost; the retry's compare fails although the first
    # attempt was applied. IPAM must recognise its own write, not allocate again (a leak).
    add_pool(kv, "p", "10.65.0.0/24")
    ipam = IPAM(kv, "n")
    ipam.auto_assign(1, 0, "h0")
    kv.lose_next_txn_answers = 1
    (ip,), _ = ipam.auto_assign(1, 0, "h1")
    held = {a: h for a, h in allocations(kv).items() if h == "h1"}
    assert held == {ip: "h1"}
    (block,) = blocks(kv)
    assert json.loads(kv.get(model.handle_key("h1")).value)["block"] == {str(block.cidr): 1}
    check_invariants(kv, ["10.65.0.0/24"])


def test_an_explicit_address_applied_unseen_is_not_reported_in_use(kv: MemoryBackend) -> None:
    add_pool(kv, "p", "10.65.0.0/24")
    ipam = IPAM(kv, "n")
    ipam.auto_assign(1, 0, "h0")
    kv.lose_next_txn_answers = 1
    ipam.assign_ip("10.65.0.7", "port-1")  # not AddressInUseError for its own allocation
    assert ipam.get_assignment("10.65.0.7").handle_id == "port-1"
    check_invariants(kv, ["10.65.0.0/24"])
