"""The VXLAN tunnel address: allocated from a VXLAN pool by IPAM with Calico's handle and
attributes, kept while valid, replaced when its pool stops being VXLAN, released when no pool
wants VXLAN (local datastore, real IPAM)."""

import ipaddress

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.ipam import IPAM
from calico.node.tunneladdr import ATTR_TYPE_VXLAN, reconcile, vxlan_handle, vxlan_pools


@pytest.fixture
def env(tmp_path):
    b = LocalBackend(str(tmp_path / "calico.db"))
    client = ResourceClient(b)
    client.create({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                   "metadata": {"name": "node-1", "labels": {"rack": "a"}},
                   "spec": {"bgp": {"ipv4Address": "198.18.0.11/24"}}})
    yield client, IPAM(b, "node-1")
    b.close()


def pool(client, name, cidr, mode, **spec):
    client.apply({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                  "metadata": {"name": name},
                  "spec": {"cidr": cidr, "vxlanMode": mode, "ipipMode": "Never", **spec}})


def tunnel_addr(client):
    return client.get("Node", "node-1").to_dict()["spec"].get("ipv4VXLANTunnelAddr")


def test_no_vxlan_pool_no_address(env):
    client, ipam = env
    pool(client, "p", "10.65.0.0/16", "Never")
    assert reconcile(client, ipam, "node-1") is None
    assert tunnel_addr(client) is None


def test_allocated_with_calicos_handle_and_attributes_then_kept(env):
    client, ipam = env
    pool(client, "p", "10.65.0.0/16", "CrossSubnet")
    addr = reconcile(client, ipam, "node-1")
    assert addr and ipaddress.ip_address(addr) in ipaddress.ip_network("10.65.0.0/16")
    assert tunnel_addr(client) == addr
    attrs, handle = ipam.get_assignment_attributes(addr)
    assert handle == vxlan_handle("node-1") == "vxlan-tunnel-addr-node-1"
    assert attrs == {"node": "node-1", "type": ATTR_TYPE_VXLAN}
    assert reconcile(client, ipam, "node-1") == addr  # still valid: kept


def test_pool_turns_never_releases(env):
    client, ipam = env
    pool(client, "p", "10.65.0.0/16", "Always")
    addr = reconcile(client, ipam, "node-1")
    pool(client, "p", "10.65.0.0/16", "Never")
    assert reconcile(client, ipam, "node-1") is None
    assert tunnel_addr(client) is None
    assert ipam.get_assignment(addr) is None


def test_moves_to_the_remaining_vxlan_pool(env):
    client, ipam = env
    pool(client, "a", "10.65.0.0/16", "Always")
    old = reconcile(client, ipam, "node-1")
    pool(client, "a", "10.65.0.0/16", "Never")
    pool(client, "b", "10.66.0.0/16", "Always")
    new = reconcile(client, ipam, "node-1")
    assert ipaddress.ip_address(new) in ipaddress.ip_network("10.66.0.0/16")
    assert ipam.get_assignment(old) is None


def test_address_lost_from_ipam_is_replaced(env):
    client, ipam = env
    pool(client, "p", "10.65.0.0/16", "Always")
    addr = reconcile(client, ipam, "node-1")
    ipam.release_ips([addr])
    new = reconcile(client, ipam, "node-1")
    assert new and ipam.get_assignment_attributes(new)[1] == vxlan_handle("node-1")


def test_pool_selection_rules():
    node = {"metadata": {"name": "n", "labels": {"rack": "a"}}}

    def p(cidr, mode="Always", **spec):
        return {"spec": {"cidr": cidr, "vxlanMode": mode, **spec}}

    pools = [p("10.1.0.0/16"), p("10.2.0.0/16", "CrossSubnet"), p("10.3.0.0/16", "Never"),
             p("10.4.0.0/16", disabled=True), p("fd00::/48"),
             p("10.5.0.0/16", allowedUses=["Workload"]),
             p("10.6.0.0/16", nodeSelector="rack == 'b'"),
             p("10.7.0.0/16", nodeSelector="rack == 'a'")]
    assert vxlan_pools(pools, node) == ["10.1.0.0/16", "10.2.0.0/16", "10.7.0.0/16"]
