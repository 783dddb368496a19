"""AddressSpace (our extension) through the typed client: prefix allocation and claims, and the
checks of spaces, pools and endpoints against each other (nothing written on a refusal)."""

import ipaddress
import threading

import pytest

from calico.api import ValidationError, validate
from calico.api.addressspace import allocate_prefix, translated, translated_net
from calico.datastore.client import ResourceClient
from calico.datastore.errors import OperationNotSupported, ResourceAlreadyExists
from calico.datastore.local import LocalBackend
from calico.datastore.spaces import CLAIM_PREFIX

V3 = "projectcalico.org/v3"


def space(name, prefix=None):
    spec = {"translationPrefix": prefix} if prefix else {}
    return {"apiVersion": V3, "kind": "AddressSpace", "metadata": {"name": name}, "spec": spec}


def pool(name, cidr, space_name=None):
    spec = {"cidr": cidr, **({"addressSpace": space_name} if space_name else {})}
    return {"apiVersion": V3, "kind": "IPPool", "metadata": {"name": name}, "spec": spec}


def wep(ip, space_name=None):
    spec = {"orchestrator": "k8s", "node": "h1", "pod": "p1", "endpoint": "eth0",
            "interfaceName": "cali1", "ipNetworks": [ip]}
    if space_name:
        spec["addressSpace"] = space_name
    return {"apiVersion": V3, "kind": "WorkloadEndpoint",
            "metadata": {"name": "h1-k8s-p1-eth0", "namespace": "ns"}, "spec": spec}


@pytest.fixture
def backend(tmp_path):
    backend = LocalBackend(str(tmp_path / "calico.db"))
    yield backend
    backend.close()


@pytest.fixture
def client(backend):
    return ResourceClient(backend)


def _keys(backend):
    """What is stored, less the ClusterInformation a client's first write creates."""
    return sorted(kv.key for kv in backend.list("/calico/")[0]
                  if "/clusterinformations/" not in kv.key)


def test_prefix_allocated_from_rfc8215_range_and_claimed(client, backend):
    blue = client.create(space("blue"))
    green = client.create(space("green"))
    assert blue.spec.translationPrefix == "64:ff9b:1::/96"
    assert green.spec.translationPrefix == "64:ff9b:1::1:0:0/96"
    assert backend.get(CLAIM_PREFIX + "64:ff9b:1::-96").value == "blue"


def test_prefix_range_from_environment(client, monkeypatch):
    monkeypatch.setenv("CALICO_ADDRESS_SPACE_RANGE", "fd00:64::/80")
    assert client.create(space("blue")).spec.translationPrefix == "fd00:64::/96"
    monkeypatch.setenv("CALICO_ADDRESS_SPACE_RANGE", "10.0.0.0/8")
    with pytest.raises(ValidationError, match="CALICO_ADDRESS_SPACE_RANGE"):
        client.create(space("green"))


def test_allocation_skips_taken_prefixes_and_reports_a_full_range():
    span = ipaddress.IPv6Network("fd00::/95")
    taken = [ipaddress.IPv6Network("fd00::/96")]
    assert str(allocate_prefix(span, taken, "x")) == "fd00::1:0:0/96"
    with pytest.raises(ValidationError, match="every /96 of fd00::/95 is taken"):
        allocate_prefix(span, taken + [ipaddress.IPv6Network("fd00::1:0:0/96")], "x")


def test_concurrent_creates_get_distinct_prefixes(tmp_path):
    path = str(tmp_path / "c.db")
    names = [f"s{i}" for i in range(6)]
    errors = []

    def make(name):
        b = LocalBackend(path)
        try:
            ResourceClient(b).create(space(name))
        except Exception as err:  # noqa: BLE001  (reported below)
            errors.append(err)
        finally:
            b.close()

    threads = [threading.Thread(target=make, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    b = LocalBackend(path)
    prefixes = [s.spec.translationPrefix for s in ResourceClient(b).list("AddressSpace").items]
    b.close()
    assert len(prefixes) == 6 and len(set(prefixes)) == 6


@pytest.mark.parametrize("prefix, message", [
    ("fd00::/64", "is a /64: a translation prefix must be an IPv6 /96"),
    ("10.0.0.0/8", "is not an IPv6 CIDR"),
    ("fd00::1/96", "is not strictly masked"),
])
def test_bad_prefix_one_line_nothing_written(client, backend, prefix, message):
    with pytest.raises(ValidationError) as err:
        client.create(space("blue", prefix))
    text = str(err.value)
    assert "AddressSpace" in text and "translationPrefix" in text and message in text
    assert "\n" not in text
    assert _keys(backend) == []


def test_prefix_colliding_with_ipv6_pool_or_other_space(client, backend):
    client.create(pool("v6", "fd00:1::/64"))
    client.create(space("blue", "fd00:2::/96"))
    before = _keys(backend)
    with pytest.raises(ValidationError, match=r'AddressSpace "green".*translationPrefix.*'
                                              r'collides with IPPool "v6"'):
        client.create(space("green", "fd00:1::/96"))
    with pytest.raises(ValidationError, match='collides with AddressSpace "blue"'):
        client.create(space("green", "fd00:2::/96"))
    with pytest.raises(ValidationError, match=r'IPPool "v6b".*spec.cidr.*AddressSpace "blue"'):
        client.create(pool("v6b", "fd00:2::/112"))
    assert _keys(backend) == before


def test_pools_overlap_across_spaces_not_within_one(client):
    client.create(space("blue"))
    client.create(space("green"))
    client.create(pool("p0", "10.200.0.0/24"))
    client.create(pool("pb", "10.200.0.0/24", "blue"))
    client.create(pool("pg", "10.200.0.0/24", "green"))
    with pytest.raises(ValidationError, match=r'spec.cidr.*overlaps with IPPool "pb"'):
        client.create(pool("pb2", "10.200.0.0/25", "blue"))


def test_pool_or_endpoint_naming_missing_space(client, backend):
    with pytest.raises(ValidationError, match=r'IPPool "p".*spec.addressSpace.*"nope" is not '
                                              r"an existing AddressSpace"):
        client.create(pool("p", "10.200.0.0/24", "nope"))
    with pytest.raises(ValidationError, match=r"WorkloadEndpoint.*spec.addressSpace.*\"nope\""):
        client.apply(wep("10.200.0.5/32", "nope"))
    assert _keys(backend) == []


def test_space_endpoint_is_ipv4_and_space_pool_is_ipv4(client):
    client.create(space("blue"))
    with pytest.raises(ValidationError, match="ipNetworks.*IPv4 addresses only"):
        validate(wep("fd00::5/128", "blue"))
    with pytest.raises(ValidationError, match="cannot hold IPv6 pool"):
        client.create(pool("p6", "fd10::/64", "blue"))
    assert client.apply(wep("10.200.0.5/32", "blue")).spec.addressSpace == "blue"


def test_update_keeps_prefix_and_refuses_a_change(client):
    created = client.create(space("blue"))
    again = client.apply(space("blue"))
    assert again.spec.translationPrefix == created.spec.translationPrefix
    with pytest.raises(ValidationError, match="cannot be modified"):
        client.apply(space("blue", "fd00:9::/96"))


def test_delete_refused_while_used_then_frees_the_claim(client, backend):
    client.create(space("blue", "fd00:2::/96"))
    client.create(pool("pb", "10.200.0.0/24", "blue"))
    with pytest.raises(OperationNotSupported, match='IPPool "pb" is in address space "blue"'):
        client.delete("AddressSpace", "blue")
    client.delete("IPPool", "pb")
    client.delete("AddressSpace", "blue")
    assert _keys(backend) == [k for k in _keys(backend) if not k.startswith(CLAIM_PREFIX)]
    client.create(space("green", "fd00:2::/96"))


def test_duplicate_create_and_reserved_name(client):
    client.create(space("blue"))
    with pytest.raises(ResourceAlreadyExists):
        client.create(space("blue"))
    with pytest.raises(ValidationError, match="metadata.name.*reserved"):
        validate(space("default"))


def test_translated_forms():
    p = ipaddress.IPv6Network("64:ff9b:1::/96")
    assert str(translated(p, "10.200.0.5")) == "64:ff9b:1::ac8:5"
    assert str(translated_net(p, "10.200.0.0/26")) == "64:ff9b:1::ac8:0/122"
