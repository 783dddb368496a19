"""IPAM per address space (our extension): addresses unique within a space, repeated across
spaces, explicit addresses checked against the space's own pools and allocations, and the
default space keeping Calico's keys and never seeing a space's pools."""

import pytest

from calico.ipam import IPAM, AddressInUseError, NoPoolsError, NotInPoolError

from .helpers import add_pool
from .memkv import MemoryBackend


@pytest.fixture
def kv() -> MemoryBackend:
    kv = MemoryBackend()
    add_pool(kv, "blue", "10.200.0.0/24", addressSpace="blue")
    add_pool(kv, "green", "10.200.0.0/24", addressSpace="green")
    return kv


def _keys(kv: MemoryBackend) -> list[str]:
    return sorted(item.key for item in kv.list("/calico/ipam/v2/")[0])


def test_same_address_in_two_spaces_under_per_space_keys(kv: MemoryBackend) -> None:
    IPAM(kv, "h1", address_space="blue").assign_ip("10.200.0.5", "a1")
    IPAM(kv, "h1", address_space="green").assign_ip("10.200.0.5", "b1")
    assert _keys(kv) == [
        "/calico/ipam/v2/spaces/blue/assignment/ipv4/block/10.200.0.0-26",
        "/calico/ipam/v2/spaces/blue/handle/a1",
        "/calico/ipam/v2/spaces/blue/host/h1/ipv4/block/10.200.0.0-26",
        "/calico/ipam/v2/spaces/green/assignment/ipv4/block/10.200.0.0-26",
        "/calico/ipam/v2/spaces/green/handle/b1",
        "/calico/ipam/v2/spaces/green/host/h1/ipv4/block/10.200.0.0-26",
    ]
    assert IPAM(kv, "h1", address_space="blue").get_assignment("10.200.0.5").handle_id == "a1"


def test_address_used_in_the_space_is_refused(kv: MemoryBackend) -> None:
    blue = IPAM(kv, "h1", address_space="blue")
    blue.assign_ip("10.200.0.5", "a1")
    before = _keys(kv)
    with pytest.raises(AddressInUseError, match='10.200.0.5 is already assigned in address '
                                                'space "blue"'):
        IPAM(kv, "h2", address_space="blue").assign_ip("10.200.0.5", "a9")
    assert _keys(kv) == before


def test_address_outside_the_space_pools_is_refused(kv: MemoryBackend) -> None:
    with pytest.raises(NotInPoolError, match='10.201.0.5 is not in any enabled IP pool of '
                                             'address space "blue"'):
        IPAM(kv, "h1", address_space="blue").assign_ip("10.201.0.5", "a1")
    assert _keys(kv) == []


def test_auto_assign_in_space_and_release(kv: MemoryBackend) -> None:
    blue, green = (IPAM(kv, "h1", address_space=s) for s in ("blue", "green"))
    (a,), _ = blue.auto_assign(1, 0, "a1")
    (b,), _ = green.auto_assign(1, 0, "b1")
    assert a == b  # each space starts its own block at the same place
    assert blue.release_by_handle("a1") == [a]
    assert green.get_assignment(b).handle_id == "b1"


def test_default_space_never_uses_a_space_pool(kv: MemoryBackend) -> None:
    with pytest.raises(NoPoolsError):
        IPAM(kv, "h1").auto_assign(1, 0, "x")
    with pytest.raises(NotInPoolError):
        IPAM(kv, "h1").assign_ip("10.200.0.5", "x")
    add_pool(kv, "default", "10.200.0.0/24")
    IPAM(kv, "h1").assign_ip("10.200.0.5", "x")
    assert "/calico/ipam/v2/assignment/ipv4/block/10.200.0.0-26" in _keys(kv)
