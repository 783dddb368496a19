"""The resource syncers against the local datastore: create, repair, delete, CAS, IPAM."""

import json

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.kv import RevisionConflict
from calico.datastore.local import LocalBackend
from calico.ipam import IPAM
from calico.openstack import names
from calico.openstack.addresses import PortAddresses
from calico.openstack.syncer import Snapshot
from calico.openstack.syncers import EndpointSyncer, PolicySyncer, SubnetSyncer

WEP_PREFIX = "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/"
NP_PREFIX = "/calico/resources/v3/projectcalico.org/networkpolicies/openstack/"


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend(str(tmp_path / "calico.db"))
    yield b
    b.close()


def port(pid, host="compute-1", ip="10.65.0.5", sgs=("sg-a",), **over):
    p = {"id": pid, "device_id": "vm-" + pid, "device_owner": "compute:nova",
         "binding:host_id": host, "binding:vif_type": "tap", "mac_address": "fa:16:3e:00:00:01",
         "network_id": "net-1", "project_id": "proj-1", "security_groups": list(sgs),
         "fixed_ips": [{"subnet_id": "s4", "ip_address": ip}], "allowed_address_pairs": []}
    p.update(over)
    return p


def snapshot(ports=(), sgs=None, subnets=None):
    sgs = sgs if sgs is not None else {"sg-a": {"id": "sg-a", "name": "web", "security_group_rules": [
        {"id": "r1", "security_group_id": "sg-a", "direction": "ingress", "ethertype": "IPv4",
         "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
         "remote_ip_prefix": None, "remote_group_id": None}]}}
    subnets = subnets if subnets is not None else {"s4": {
        "id": "s4", "network_id": "net-1", "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
        "enable_dhcp": True, "host_routes": [], "dns_nameservers": ["192.0.2.53"]}}
    return Snapshot(ports={p["id"]: p for p in ports}, security_groups=sgs, subnets=subnets)


def keys(backend, prefix):
    return [kv.key[len(prefix):] for kv in backend.list(prefix)[0]]


def test_endpoints_created_then_idempotent(backend):
    syncer = EndpointSyncer(backend)
    snap = snapshot([port("p1"), port("p2", ip="10.65.0.6"),
                     port("p3", device_owner="network:dhcp")])
    report = syncer.resync(snap)
    assert len(report.created) == 2
    assert keys(backend, WEP_PREFIX) == ["compute--1-openstack-vm--p1-p1",
                                         "compute--1-openstack-vm--p2-p2"]
    rev = backend.revision()
    again = syncer.resync(snap)
    assert again.changes == 0 and backend.revision() == rev
    wep = ResourceClient(backend).get("WorkloadEndpoint", "compute--1-openstack-vm--p1-p1",
                                      "openstack")
    assert wep.spec.ipv4Gateway == "10.65.0.1"
    assert wep.metadata.labels["sg.projectcalico.org/openstack-sg-a"] == "web"


def test_endpoint_repairs_junk_stale_and_keeps_uid(backend):
    syncer = EndpointSyncer(backend)
    syncer.resync(snapshot([port("p1"), port("p2", ip="10.65.0.6")]))
    client = ResourceClient(backend)
    name1 = "compute--1-openstack-vm--p1-p1"
    uid = client.get("WorkloadEndpoint", name1, "openstack").metadata.uid
    # Damage: edit one endpoint, delete another, add junk and a stale endpoint.
    kv = backend.get(WEP_PREFIX + name1)
    doc = json.loads(kv.value)
    doc["spec"]["ipNetworks"] = ["10.99.0.1/32"]
    backend.put(kv.key, json.dumps(doc))
    backend.delete(WEP_PREFIX + "compute--1-openstack-vm--p2-p2")
    backend.put(WEP_PREFIX + "junk", "{not json")
    stale = port("gone", ip="10.65.0.9")
    EndpointSyncer(backend).sync_one(*_rec(syncer, stale))
    report = syncer.resync(snapshot([port("p1"), port("p2", ip="10.65.0.6")]))
    assert report.updated == [WEP_PREFIX + name1]
    assert report.created == [WEP_PREFIX + "compute--1-openstack-vm--p2-p2"]
    assert sorted(report.deleted) == [WEP_PREFIX + "compute--1-openstack-vm--gone-gone",
                                      WEP_PREFIX + "junk"]
    wep = client.get("WorkloadEndpoint", name1, "openstack")
    assert wep.spec.ipNetworks == ["10.65.0.5/32"] and wep.metadata.uid == uid


def _rec(syncer, p):
    key, res = syncer.record(syncer.port_record_doc(p, snapshot()))
    return key, res


def test_migration_moves_the_endpoint(backend):
    syncer = EndpointSyncer(backend)
    syncer.resync(snapshot([port("p1")]))
    report = syncer.resync(snapshot([port("p1", host="compute-2")]))
    assert report.created == [WEP_PREFIX + "compute--2-openstack-vm--p1-p1"]
    assert report.deleted == [WEP_PREFIX + "compute--1-openstack-vm--p1-p1"]


def test_policies_only_ossg_names_are_owned(backend):
    client = ResourceClient(backend)
    client.create({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                   "metadata": {"name": "operator-policy", "namespace": "openstack"},
                   "spec": {"selector": "all()"}})
    syncer = PolicySyncer(backend)
    snap = snapshot(sgs={"sg-a": {"id": "sg-a", "security_group_rules": []},
                         "sg-b": {"id": "sg-b", "security_group_rules": []}})
    assert len(syncer.resync(snap).created) == 2
    snap = snapshot(sgs={"sg-b": {"id": "sg-b", "security_group_rules": [
        {"id": "r", "security_group_id": "sg-b", "direction": "egress", "ethertype": "IPv6",
         "protocol": None, "port_range_min": None, "port_range_max": None,
         "remote_ip_prefix": None, "remote_group_id": "sg-b"}]}})
    report = syncer.resync(snap)
    assert report.deleted == [NP_PREFIX + "ossg.default.sg-a"]
    assert report.updated == [NP_PREFIX + "ossg.default.sg-b"]
    assert keys(backend, NP_PREFIX) == ["operator-policy", "ossg.default.sg-b"]
    pol = client.get("NetworkPolicy", "ossg.default.sg-b", "openstack")
    assert pol.spec.egress[0].destination.selector == "has(sg.projectcalico.org/openstack-sg-b)"


def test_subnets(backend):
    syncer = SubnetSyncer(backend)
    snap = snapshot(subnets={
        "s4": {"id": "s4", "network_id": "n", "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
               "enable_dhcp": True, "host_routes": [], "dns_nameservers": []},
        "s5": {"id": "s5", "network_id": "n", "cidr": "10.66.0.0/24", "gateway_ip": None,
               "enable_dhcp": False, "host_routes": [], "dns_nameservers": []}})
    backend.put(names.subnet_key("old"), "{}")
    report = syncer.resync(snap)
    assert report.created == [names.subnet_key("s4")]
    assert report.deleted == [names.subnet_key("old")]
    assert json.loads(backend.get(names.subnet_key("s4")).value)["cidr"] == "10.65.0.0/24"
    assert syncer.resync(snap).changes == 0


def test_cas_conflict_rereads_and_retries(backend):
    syncer = SubnetSyncer(backend)
    key = names.subnet_key("s4")
    backend.put(key, '{"cidr": "old"}')
    stale = backend.get(key)
    backend.put(key, '{"cidr": "newer"}')  # another writer got in between
    report = syncer.sync_one(key, '{"cidr": "wanted"}')
    assert report.updated == [key] and not report.conflicts
    assert json.loads(backend.get(key).value) == {"cidr": "wanted"}
    with pytest.raises(RevisionConflict):
        backend.update(key, "x", stale.mod_revision)


def test_endpoint_addresses_recorded_in_ipam(backend):
    ResourceClient(backend).create({
        "apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "os"},
        "spec": {"cidr": "10.65.0.0/16", "blockSize": 26}})
    syncer = EndpointSyncer(backend, PortAddresses(backend))
    syncer.resync(snapshot([port("p1"), port("p2", ip="10.65.0.6"),
                            port("p9", ip="192.0.2.9")]))  # outside every pool: skipped
    ipam = IPAM(backend, "compute-1")
    assert ipam.get_assignment("10.65.0.5").handle_id == "p1"
    assert ipam.get_assignment("10.65.0.6").handle_id == "p2"
    # Migration keeps the addresses; deletion releases them.
    syncer.resync(snapshot([port("p1", host="compute-2"), port("p2", ip="10.65.0.6")]))
    assert ipam.get_assignment("10.65.0.5").handle_id == "p1"
    syncer.resync(snapshot([port("p1", host="compute-2")]))
    assert ipam.get_assignment("10.65.0.6") is None
    assert ipam.get_assignment("10.65.0.5").handle_id == "p1"
