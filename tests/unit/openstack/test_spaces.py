"""`[calico] address_spaces = per_network`: Neutron networks -> AddressSpaces (spaces.py)."""

import json

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.ipam import IPAM
from calico.openstack import names
from calico.openstack.config import calico_config
from calico.openstack.driver import CalicoDriver, DriverConfig
from calico.openstack.spaces import endpoint_in_space, space_name, wanted

from .test_driver import FakeNeutron

WEP = "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/"


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend(str(tmp_path / "calico.db"))
    yield b
    b.close()


def subnet(sid, net, cidr="10.0.0.0/24"):
    return {"id": sid, "network_id": net, "cidr": cidr, "gateway_ip": cidr[:-4] + "1",
            "enable_dhcp": True, "host_routes": [], "dns_nameservers": []}


def port(pid, net, sid, ip, host="h1", project="proj"):
    return {"id": pid, "device_id": "vm-" + pid, "device_owner": "compute:nova",
            "binding:host_id": host, "binding:vif_type": "tap", "mac_address": "fa:16:3e:00:00:01",
            "network_id": net, "project_id": project, "security_groups": [],
            "allowed_address_pairs": [], "fixed_ips": [{"subnet_id": sid, "ip_address": ip}]}


def two_projects():
    n = FakeNeutron()
    n.subnets_ = {"sa": subnet("sa", "neta"), "sb": subnet("sb", "netb"),
                  "s6": {**subnet("s6", "netb"), "cidr": "fd00::/64", "gateway_ip": "fd00::1"}}
    n.ports = {"pa": port("pa", "neta", "sa", "10.0.0.5", project="a"),
               "pb": port("pb", "netb", "sb", "10.0.0.5", project="b")}
    n.ports["pb"]["fixed_ips"].append({"subnet_id": "s6", "ip_address": "fd00::5"})
    return n


def endpoint(backend, pid):
    kv = next(kv for kv in backend.list(WEP)[0] if kv.key.endswith("-" + pid))
    return json.loads(kv.value)["spec"]


def test_option_default_off_and_per_network():
    assert calico_config({}).address_spaces == "off"
    assert calico_config({"address_spaces": "per_network"}).address_spaces == "per_network"
    assert calico_config({"address_spaces": "per_router"}).address_spaces == "off"


def test_one_space_per_network_with_its_ipv4_pools_only():
    n = two_projects()
    spaces, pools = wanted(n.snapshot(), names.NO_REGION)
    assert sorted(spaces) == ["openstack-neta", "openstack-netb"]
    assert {p: d["spec"]["addressSpace"] for p, d in pools.items()} == {
        "openstack-sa": "openstack-neta", "openstack-sb": "openstack-netb"}
    assert space_name(names.Region("r1"), "NetA") == "openstack-r1-neta"


def test_space_endpoint_is_ipv4_only():
    doc = {"spec": {"ipNetworks": ["10.0.0.5/32", "fd00::5/128"], "ipv6Gateway": "fd00::1",
                    "allowedIps": ["fd00::9/128"]}}
    assert endpoint_in_space(doc, "s")["spec"] == {"ipNetworks": ["10.0.0.5/32"],
                                                    "addressSpace": "s"}


def test_off_writes_no_space(backend):
    n = two_projects()
    del n.ports["pb"]
    CalicoDriver(backend, n, DriverConfig(), sleep=lambda s: None).resync()
    assert ResourceClient(backend).list("AddressSpace").items == []
    assert "addressSpace" not in endpoint(backend, "pa")


def test_resync_writes_spaces_pools_endpoints_and_claims_per_space(backend):
    n = two_projects()
    d = CalicoDriver(backend, n, DriverConfig(address_spaces="per_network"),
                     sleep=lambda s: None)
    d.resync()
    client = ResourceClient(backend)
    prefixes = {s.name: s.spec.translationPrefix for s in client.list("AddressSpace").items}
    assert sorted(prefixes) == ["openstack-neta", "openstack-netb"]
    assert len(set(prefixes.values())) == 2
    assert endpoint(backend, "pa")["addressSpace"] == "openstack-neta"
    assert endpoint(backend, "pb")["addressSpace"] == "openstack-netb"
    assert endpoint(backend, "pb")["ipNetworks"] == ["10.0.0.5/32"]
    for space, pid in (("openstack-neta", "pa"), ("openstack-netb", "pb")):
        held = IPAM(backend, "h1", address_space=space).get_assignment("10.0.0.5")
        assert held is not None and held.handle_id == pid
    assert IPAM(backend, "h1").get_assignment("10.0.0.5") is None
    d.resync()  # converged: the same spaces, prefixes unchanged
    assert {s.name: s.spec.translationPrefix
            for s in client.list("AddressSpace").items} == prefixes


def test_network_delete_removes_pool_then_space_and_releases(backend):
    n = two_projects()
    d = CalicoDriver(backend, n, DriverConfig(address_spaces="per_network"),
                     sleep=lambda s: None)
    d.resync()
    gone = n.ports.pop("pb")
    d.port_deleted(gone)
    assert IPAM(backend, "h1", address_space="openstack-netb").get_assignment("10.0.0.5") is None
    del n.subnets_["sb"], n.subnets_["s6"]
    d.subnet_deleted("sb")
    client = ResourceClient(backend)
    assert [p.name for p in client.list("IPPool").items] == ["openstack-sa"]
    d.resync()
    assert [s.name for s in client.list("AddressSpace").items] == ["openstack-neta"]


def test_subnet_event_creates_space_before_port(backend):
    n = two_projects()
    d = CalicoDriver(backend, n, DriverConfig(address_spaces="per_network"),
                     sleep=lambda s: None)
    d.subnet_changed(n.subnets_["sa"], {"id": "neta"})
    d.port_changed(n.ports["pa"], None)
    assert endpoint(backend, "pa")["addressSpace"] == "openstack-neta"
    held = IPAM(backend, "h1", address_space="openstack-neta").get_assignment("10.0.0.5")
    assert held is not None and held.handle_id == "pa"


def test_floating_ip_of_a_space_port_is_left_out_and_logged(backend, caplog):
    n = two_projects()
    n.fips = {"f1": {"id": "f1", "floating_ip_address": "172.24.4.9",
                     "fixed_ip_address": "10.0.0.5", "port_id": "pa"}}
    CalicoDriver(backend, n, DriverConfig(address_spaces="per_network"),
                 sleep=lambda s: None).resync()
    assert "ipNATs" not in endpoint(backend, "pa")
    assert "floating IPs are not supported" in caplog.text
