"""Neutron floating IPs -> WorkloadEndpoint ipNATs: the resync (EndpointSyncer on the local
datastore) and the floating-IP event handler (CalicoDriver with a fake Neutron)."""

from __future__ import annotations

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.openstack.driver import CalicoDriver, DriverConfig
from calico.openstack.floating import ip_nats, ports_of_event
from calico.openstack.syncers import EndpointSyncer
from tests.unit.openstack.test_driver import FakeNeutron, neutron_with_port
from tests.unit.openstack.test_driver import port as driver_port
from tests.unit.openstack.test_syncers import port, snapshot

P1 = "compute--1-openstack-vm--p1-p1"
P2 = "compute--1-openstack-vm--p2-p2"


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend(str(tmp_path / "calico.db"))
    yield b
    b.close()


def fip(fid="f1", addr="172.16.1.3", port_id="p1", fixed="10.65.0.5"):
    return {"id": fid, "floating_ip_address": addr, "port_id": port_id,
            "fixed_ip_address": fixed if port_id else None, "router_id": "r1"}


def nats(backend, name):
    wep = ResourceClient(backend).get("WorkloadEndpoint", name, "openstack")
    return [(n.internalIP, n.externalIP) for n in wep.spec.ipNATs or []]


def resync(backend, ports, fips):
    snap = snapshot(ports)
    snap.floating_ips = {f["id"]: f for f in fips}
    return EndpointSyncer(backend).resync(snap)


PORTS = [port("p1"), port("p2", ip="10.65.0.6")]


def test_resync_associate_reassociate_disassociate_delete(backend):
    resync(backend, PORTS, [fip()])
    assert nats(backend, P1) == [("10.65.0.5", "172.16.1.3")]
    assert nats(backend, P2) == []
    assert resync(backend, PORTS, [fip()]).changes == 0  # idempotent
    resync(backend, PORTS, [fip(port_id="p2", fixed="10.65.0.6")])  # re-associate
    assert nats(backend, P1) == []
    assert nats(backend, P2) == [("10.65.0.6", "172.16.1.3")]
    resync(backend, PORTS, [fip(port_id=None)])  # disassociate
    assert nats(backend, P2) == []
    resync(backend, PORTS, [fip(), fip("f2", "172.16.1.9")])  # two on one port
    assert nats(backend, P1) == [("10.65.0.5", "172.16.1.3"), ("10.65.0.5", "172.16.1.9")]
    resync(backend, PORTS, [])  # deleted
    assert nats(backend, P1) == []
    report = resync(backend, PORTS[1:], [fip()])  # the port is gone, its FIP still listed
    assert report.deleted and nats(backend, P2) == []


def test_floating_ip_on_a_stale_fixed_address_is_left_out_not_the_endpoint(backend):
    report = resync(backend, PORTS, [fip(fixed="10.65.0.77"), fip("f2", "172.16.1.9")])
    assert not report.errors
    assert nats(backend, P1) == [("10.65.0.5", "172.16.1.9")]


def test_ipv6_floating_ip():
    p = port("p1", fixed_ips=[{"subnet_id": "s6", "ip_address": "fd00::5"}])
    assert ip_nats(p, {"f": fip(addr="2001:db8::5", fixed="fd00:0::5")}) == [
        {"internalIP": "fd00::5", "externalIP": "2001:db8::5"}]


def test_event_states_name_old_and_new_ports():
    assert ports_of_event((fip(port_id="p1"), fip(port_id="p2"))) == {"p1", "p2"}
    assert ports_of_event((fip(port_id="p1"), {"floatingip": {"port_id": None}})) == {"p1"}
    assert ports_of_event((fip(port_id=None),)) == set()
    assert ports_of_event(()) == set()


def driver(backend) -> tuple[CalicoDriver, FakeNeutron]:
    n = neutron_with_port()
    n.ports["p2"] = {**driver_port("p2"),
                      "fixed_ips": [{"subnet_id": "s", "ip_address": "10.65.0.6"}]}
    d = CalicoDriver(backend, n, DriverConfig(ipam=False), sleep=lambda s: None)
    for p in n.ports.values():
        d.port_changed(p, None)
    return d, n


def test_events_rewrite_the_endpoints_of_old_and_new_ports(backend):
    d, n = driver(backend)
    e1, e2 = "h1-openstack-vm--p1-p1", "h1-openstack-vm--p2-p2"
    n.fips["f1"] = fip()
    d.floating_ips_changed(ports_of_event((n.fips["f1"],)))  # AFTER_CREATE, associated
    assert nats(backend, e1) == [("10.65.0.5", "172.16.1.3")]
    old, n.fips["f1"] = n.fips["f1"], fip(port_id="p2", fixed="10.65.0.6")
    d.floating_ips_changed(ports_of_event((old, n.fips["f1"])))  # AFTER_UPDATE, moved
    assert nats(backend, e1) == []
    assert nats(backend, e2) == [("10.65.0.6", "172.16.1.3")]
    old = n.fips.pop("f1")
    d.floating_ips_changed(ports_of_event((old,)))  # AFTER_DELETE
    assert nats(backend, e2) == []
    n.fips["f1"] = fip()
    d.floating_ips_changed({"p1"})
    del n.ports["p1"]  # port deleted: Neutron disassociates; the endpoint goes with it
    d.port_deleted(driver_port("p1"))
    d.floating_ips_changed({"p1"})
    assert [kv.key.rsplit("/", 1)[1] for kv in backend.list(
        "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/")[0]] == [e2]
    assert not d._kick.is_set()  # nothing failed, nothing left to the resync


def test_port_update_keeps_its_floating_ip(backend):
    d, n = driver(backend)
    n.fips["f1"] = fip()
    d.floating_ips_changed({"p1"})
    d.port_changed({**n.ports["p1"], "security_groups": []}, n.ports["p1"])
    assert nats(backend, "h1-openstack-vm--p1-p1") == [("10.65.0.5", "172.16.1.3")]

