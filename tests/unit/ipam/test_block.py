"""Pure block logic: allocation order, bitmap and attribute bookkeeping, release, JSON."""

import ipaddress
import json

import pytest

from calico.ipam.block import AllocationBlock
from calico.ipam.errors import AddressInUseError


def new(cidr: str = "10.65.0.0/29", host: str | None = "node-1") -> AllocationBlock:
    return AllocationBlock.new(ipaddress.ip_network(cidr), host)


def test_new_block_is_empty_and_affine() -> None:
    b = new()
    assert b.size == 8 and b.num_free == 8 and b.empty()
    assert b.affinity == "host:node-1" and b.host == "node-1"
    assert b.unallocated == list(range(8))


def test_auto_assign_in_order_shares_one_attribute() -> None:
    b = new()
    ips = b.auto_assign(3, "h1", {"node": "node-1"})
    assert ips == ["10.65.0.0", "10.65.0.1", "10.65.0.2"]
    assert b.allocations[:4] == [0, 0, 0, None]
    assert [a.to_dict() for a in b.attributes] == [{"handle_id": "h1",
                                                    "secondary": {"node": "node-1"}}]
    assert b.unallocated == [3, 4, 5, 6, 7]
    assert b.handle_counts() == {"h1": 3}


def test_auto_assign_takes_what_is_left() -> None:
    b = new()
    assert len(b.auto_assign(10, "h1", {})) == 8
    assert b.num_free == 0 and b.auto_assign(1, "h2", {}) == []


def test_released_addresses_go_to_the_back() -> None:
    b = new()
    b.auto_assign(2, "h1", {})
    b.release(["10.65.0.0"])
    assert b.unallocated == [2, 3, 4, 5, 6, 7, 0]
    assert b.auto_assign(1, "h2", {}) == ["10.65.0.2"]


def test_attributes_are_reference_counted_and_renumbered() -> None:
    b = new()
    b.auto_assign(1, "h1", {"pod": "a"})
    b.auto_assign(2, "h2", {"pod": "b"})
    b.auto_assign(1, "h3", {"pod": "c"})
    assert b.allocations[:4] == [0, 1, 1, 2]
    r = b.release(["10.65.0.1"])
    assert r.by_handle == {"h2": 1} and len(b.attributes) == 3  # h2 still holds .2
    r = b.release(["10.65.0.2", "10.65.0.0"])
    assert r.by_handle == {"h2": 1, "h1": 1}
    assert [a.handle_id for a in b.attributes] == ["h3"]
    assert b.allocations[3] == 0
    assert b.allocation("10.65.0.3").handle_id == "h3"


def test_assign_specific_and_in_use() -> None:
    b = new()
    b.assign("10.65.0.5", "h1", {"x": "1"})
    assert 5 not in b.unallocated and b.allocation("10.65.0.5").attrs == {"x": "1"}
    with pytest.raises(AddressInUseError, match="10.65.0.5 is already assigned .handle h1"):
        b.assign("10.65.0.5", "h2", {})
    with pytest.raises(ValueError, match="not in block"):
        b.assign("10.65.1.5", "h2", {})


def test_release_reports_unallocated_and_changed() -> None:
    b = new()
    b.auto_assign(2, "h1", {})
    seq = b.allocation("10.65.0.0").sequence
    b.bump()
    r = b.release(["10.65.0.0", "10.65.0.1", "10.65.0.7"],
                  expect={"10.65.0.0": ("h1", seq), "10.65.0.1": ("h1", seq + 99)})
    assert r.released == ["10.65.0.0"] and r.changed == ["10.65.0.1"]
    assert r.not_allocated == ["10.65.0.7"]


def test_release_by_handle() -> None:
    b = new()
    b.auto_assign(2, "h1", {})
    b.auto_assign(2, "h2", {})
    r = b.release_by_handle("h1")
    assert r.released == ["10.65.0.0", "10.65.0.1"] and b.handle_counts() == {"h2": 2}


def test_sequence_numbers_per_allocation() -> None:
    b = new()
    first = b.sequence_number
    b.auto_assign(1, "h1", {})
    b.bump()
    b.auto_assign(1, "h2", {})
    assert b.sequence_for_allocation == {"0": first, "1": first + 1}
    b.release(["10.65.0.0"])
    assert "0" not in b.sequence_for_allocation


def test_json_is_calicos_shape_and_round_trips() -> None:
    b = new("10.65.0.0/30")
    b.auto_assign(1, "h1", {"node": "node-1"})
    d = json.loads(b.to_json())
    assert list(d) == ["cidr", "affinity", "affinity_claim_time", "allocations", "unallocated",
                       "attributes", "sequenceNumber", "sequenceNumberForAllocation", "deleted"]
    assert d["cidr"] == "10.65.0.0/30" and d["affinity"] == "host:node-1"
    assert d["allocations"] == [0, None, None, None] and d["unallocated"] == [1, 2, 3]
    assert d["attributes"] == [{"handle_id": "h1", "secondary": {"node": "node-1"}}]
    assert d["deleted"] is False
    again = AllocationBlock.from_json(b.to_json())
    assert again.to_json() == b.to_json()


def test_reads_calico_written_block_and_keeps_unknown_fields() -> None:
    text = json.dumps({
        "cidr": "fd00:10::/126", "affinity": None, "strictAffinity": False,
        "allocations": [None, 0, None, None], "unallocated": [0, 2, 3],
        "attributes": [{"handle_id": "k8s-pod-network.abc",
                        "secondary": {"namespace": "default", "node": "n1", "pod": "p"}}],
        "sequenceNumber": 7, "sequenceNumberForAllocation": {"1": 5}, "deleted": False})
    b = AllocationBlock.from_json(text)
    assert b.cidr.version == 6 and b.host is None
    assert b.allocation("fd00:10::1").handle_id == "k8s-pod-network.abc"
    assert b.allocation("fd00:10::1").sequence == 5
    assert json.loads(b.to_json())["strictAffinity"] is False


def test_ipv6_block() -> None:
    b = new("fd00:65::/122")
    assert b.size == 64
    assert b.auto_assign(2, "h", {}) == ["fd00:65::", "fd00:65::1"]
