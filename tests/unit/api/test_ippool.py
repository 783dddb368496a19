"""IPPool and IPReservation: Calico's defaults, its single-pool checks, overlap, round trips."""

from pathlib import Path

import pytest

from calico import api
from calico.api.ippool import IPPool, check_pool_overlap

INFRA = Path(__file__).parents[2] / "fixtures" / "manifests" / "infra"


def pool(spec, name="p1"):
    return api.validate({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                         "metadata": {"name": name}, "spec": spec})


def test_defaults_are_filled_as_clientv3_does():
    assert pool({"cidr": "10.1.0.0/16"}).to_dict()["spec"] == {
        "cidr": "10.1.0.0/16", "vxlanMode": "Never", "ipipMode": "Never", "blockSize": 26,
        "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"],
        "assignmentMode": "Automatic"}
    assert pool({"cidr": "fd00::/48"}).spec.blockSize == 122


def test_cidr_is_stored_canonical_and_bare_address_is_a_host_network():
    assert pool({"cidr": "FD00:0:0::/48"}).spec.cidr == "fd00::/48"
    assert pool({"cidr": "10.0.0.1", "disabled": True}).spec.cidr == "10.0.0.1/32"


def test_false_flags_are_not_stored():
    spec = pool({"cidr": "10.1.0.0/16", "natOutgoing": False, "disabled": False}).to_dict()["spec"]
    assert "natOutgoing" not in spec and "disabled" not in spec
    assert pool({"cidr": "10.1.0.0/16", "natOutgoing": True}).to_dict()["spec"]["natOutgoing"]


def test_small_pool_is_allowed_when_disabled():
    assert pool({"cidr": "10.0.0.0/28", "disabled": True}).spec.blockSize == 26


@pytest.mark.parametrize("spec, path, reason", [
    ({}, "spec.cidr", "is required"),
    ({"cidr": "10.0.0.0/33"}, "spec.cidr", "is not a valid CIDR"),
    ({"cidr": "10.1.0.1/16"}, "spec.cidr", "is not strictly masked"),
    ({"cidr": "169.254.0.0/24"}, "spec.cidr", "link-local range 169.254.0.0/16"),
    ({"cidr": "fe80::/64"}, "spec.cidr", "link-local range fe80::/10"),
    ({"cidr": "10.0.0.0/8", "blockSize": 19}, "spec.blockSize", "(20-32)"),
    ({"cidr": "10.0.0.0/8", "blockSize": 33}, "spec.blockSize", "(20-32)"),
    ({"cidr": "fd00::/48", "blockSize": 115}, "spec.blockSize", "(116-128)"),
    ({"cidr": "fd00::/48", "blockSize": 129}, "spec.blockSize", "(116-128)"),
    ({"cidr": "10.0.0.0/27"}, "spec.cidr", "at least as large as one block (/26)"),
    ({"cidr": "fd00::/123"}, "spec.cidr", "at least as large as one block (/122)"),
    ({"cidr": "fd00::/48", "ipipMode": "Always"}, "spec.ipipMode", "IPv6 pool"),
    ({"cidr": "10.0.0.0/16", "ipipMode": "Always", "vxlanMode": "Always"}, "spec.vxlanMode",
     "cannot be enabled together with ipipMode"),
    ({"cidr": "10.0.0.0/16", "ipipMode": "always"}, "spec.ipipMode", "is not one of"),
    ({"cidr": "10.0.0.0/16", "vxlanMode": "Sometimes"}, "spec.vxlanMode", "is not one of"),
    ({"cidr": "10.0.0.0/16", "assignmentMode": "Auto"}, "spec.assignmentMode", "is not one of"),
    ({"cidr": "10.0.0.0/16", "allowedUses": ["Workload", "Pods"]}, "spec.allowedUses[1]",
     "is not a known use"),
    ({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer", "Workload"]}, "spec.allowedUses",
     "cannot combine LoadBalancer with Workload"),
    ({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer"], "vxlanMode": "Always"},
     "spec.vxlanMode", "LoadBalancer pool"),
    ({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer"], "disableBGPExport": True},
     "spec.disableBGPExport", "LoadBalancer pool"),
    ({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer"], "nodeSelector": "a == 'b'"},
     "spec.nodeSelector", 'must be "all()"'),
    ({"cidr": "10.0.0.0/16", "nodeSelector": "rack =="}, "spec.nodeSelector",
     "is not a valid selector"),
    ({"cidr": "10.0.0.0/16", "namespaceSelector": "has("}, "spec.namespaceSelector",
     "is not a valid selector"),
    ({"cidr": "10.0.0.0/16", "ipip": {"enabled": True}}, "spec.ipip", "API v1 field"),
    ({"cidr": "10.0.0.0/16", "nat-outgoing": True}, "spec.nat-outgoing", "API v1 field"),
    ({"cidr": "10.0.0.0/16", "natOutgoing": "yes"}, "spec.natOutgoing", "is not a boolean"),
    ({"cidr": "10.0.0.0/16", "ipipMod": "Always"}, "spec.ipipMod", "is not a known field"),
])
def test_invalid_pools(spec, path, reason):
    with pytest.raises(api.ValidationError) as err:
        pool(spec)
    assert err.value.path == path
    assert reason in str(err.value)
    assert str(err.value).startswith(f'IPPool "p1": {path}: ')


def test_deprecated_nat_outgoing_false_is_accepted_and_dropped():
    spec = pool({"cidr": "10.0.0.0/16", "nat-outgoing": False}).to_dict()["spec"]
    assert "nat-outgoing" not in spec and "natOutgoingV1" not in spec


def test_overlap_with_another_pool_is_rejected():
    existing = [pool({"cidr": "10.1.0.0/16"}, "a"), pool({"cidr": "fd00::/48"}, "b")]
    check_pool_overlap(pool({"cidr": "10.2.0.0/16"}, "new"), existing)
    check_pool_overlap(pool({"cidr": "10.1.0.0/16"}, "a"), existing)  # replacing itself
    with pytest.raises(api.ValidationError) as err:
        check_pool_overlap(pool({"cidr": "10.1.128.0/24"}, "new"), existing)
    assert str(err.value) == ('IPPool "new": spec.cidr: "10.1.128.0/24" overlaps with '
                              'IPPool "a" (10.1.0.0/16)')
    with pytest.raises(api.ValidationError, match='IPPool "b"'):
        check_pool_overlap(pool({"cidr": "fd00::/40"}, "new"), existing)


def test_reservation():
    res = api.validate({"apiVersion": "projectcalico.org/v3", "kind": "IPReservation",
                        "metadata": {"name": "r"},
                        "spec": {"reservedCIDRs": ["10.0.0.1", "fd00::/120"]}})
    assert [str(n) for n in res.networks()] == ["10.0.0.1/32", "fd00::/120"]
    with pytest.raises(api.ValidationError) as err:
        api.validate({"apiVersion": "projectcalico.org/v3", "kind": "IPReservation",
                      "metadata": {"name": "r"}, "spec": {"reservedCIDRs": ["10.0.0.1", "x"]}})
    assert err.value.path == "spec.reservedCIDRs[1]"


@pytest.mark.parametrize("name", ["ippools.yaml", "ipreservations.yaml"])
def test_fixture_manifests_load_and_round_trip(name):
    resources = api.load((INFRA / name).read_text(), name)
    assert resources
    for res in resources:
        assert api.load(api.dump_yaml([res]))[0] == res
        assert api.load(api.dump_json([res]))[0] == res
        assert api.validate(res.to_dict()).to_dict() == res.to_dict()


def test_fixture_pool_gets_defaults():
    pools = {p.name: p for p in api.load((INFRA / "ippools.yaml").read_text())}
    assert isinstance(pools["my.ippool-1"], IPPool)
    assert pools["default-ipv6-ippool"].spec.ipipMode == "Never"
    assert pools["rack-1-pool"].spec.blockSize == 28
    assert pools["loadbalancer-ipv4-ippool"].key() == \
        "/calico/resources/v3/projectcalico.org/ippools/loadbalancer-ipv4-ippool"
