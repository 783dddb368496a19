"""The driver core with a fake Neutron: event handlers, datastore trouble, election, status."""

import json
import threading

import pytest

from calico.datastore.kv import Unreachable
from calico.datastore.local import LocalBackend
from calico.openstack import names
from calico.openstack.driver import CalicoDriver, DriverConfig
from calico.openstack.election import Elector
from calico.openstack.status import StatusWatcher, neutron_status
from calico.openstack.syncer import Snapshot

WEP = "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/"


class FakeNeutron:
    def __init__(self):
        self.ports, self.groups, self.subnets_, self.fips = {}, {}, {}, {}
        self.networks_ = {}
        self.status, self.agents = {}, []

    def port(self, port_id):
        return self.ports.get(port_id)

    def snapshot(self):
        return Snapshot(ports=dict(self.ports), security_groups=dict(self.groups),
                        subnets=dict(self.subnets_), floating_ips=dict(self.fips),
                        networks=dict(self.networks_))

    def floating_ips(self, port_ids):
        return {i: f for i, f in self.fips.items() if f.get("port_id") in set(port_ids)}

    def subnets(self, ids):
        return {i: self.subnets_[i] for i in ids if i in self.subnets_}

    def networks(self, ids):
        return {i: self.networks_[i] for i in ids if i in self.networks_}

    def security_groups(self, ids):
        return {i: self.groups[i] for i in ids if i in self.groups}

    def set_port_status(self, port_id, status):
        self.status[port_id] = status

    def felix_alive(self, host):
        self.agents.append(host)


class FlakyBackend:
    """A LocalBackend whose writes fail with Unreachable while `down` is set."""

    def __init__(self, inner):
        self.inner, self.down = inner, False

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name in ("create", "update", "put", "delete", "txn", "get", "list") and callable(attr):
            def guarded(*a, **kw):
                if self.down:
                    raise Unreachable("datastore down (test)")
                return attr(*a, **kw)
            return guarded
        return attr


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend(str(tmp_path / "calico.db"))
    yield b
    b.close()


def port(pid="p1", host="h1"):
    return {"id": pid, "device_id": "vm-" + pid, "device_owner": "compute:nova",
            "binding:host_id": host, "binding:vif_type": "tap",
            "mac_address": "fa:16:3e:00:00:01", "network_id": "n", "project_id": "proj",
            "security_groups": ["sg"], "allowed_address_pairs": [],
            "fixed_ips": [{"subnet_id": "s", "ip_address": "10.65.0.5"}]}


def neutron_with_port():
    n = FakeNeutron()
    n.subnets_["s"] = {"id": "s", "network_id": "n", "cidr": "10.65.0.0/24",
                       "gateway_ip": "10.65.0.1", "enable_dhcp": True, "host_routes": [],
                       "dns_nameservers": []}
    n.groups["sg"] = {"id": "sg", "name": "g", "security_group_rules": []}
    n.ports["p1"] = port()
    return n


def test_handlers_write_move_and_delete(backend):
    n = neutron_with_port()
    d = CalicoDriver(backend, n, DriverConfig(ipam=False), sleep=lambda s: None)
    d.port_changed(port(), {**port(), "binding:host_id": "", "binding:vif_type": "unbound"})
    assert [kv.key for kv in backend.list(WEP)[0]] == [WEP + "h1-openstack-vm--p1-p1"]
    d.port_changed(port(host="h2"), port())
    assert [kv.key for kv in backend.list(WEP)[0]] == [WEP + "h2-openstack-vm--p1-p1"]
    d.port_deleted(port(host="h2"))
    assert backend.list(WEP)[0] == []
    d.subnet_changed(n.subnets_["s"])
    assert backend.get(names.subnet_key("s")) is not None
    d.subnet_changed({**n.subnets_["s"], "enable_dhcp": False})
    assert backend.get(names.subnet_key("s")) is None
    d.security_group_changed("sg")
    assert backend.list("/calico/resources/v3/projectcalico.org/networkpolicies/")[0]
    d.security_group_deleted("sg")
    assert not backend.list("/calico/resources/v3/projectcalico.org/networkpolicies/")[0]


def test_network_mtu_and_domain_reach_the_subnet_records(backend):
    n = neutron_with_port()
    net_id = n.subnets_["s"]["network_id"]
    n.networks_[net_id] = {"id": net_id, "mtu": 1450, "subnets": ["s"]}
    d = CalicoDriver(backend, n, DriverConfig(ipam=False), sleep=lambda s: None)

    def record():
        return json.loads(backend.get(names.subnet_key("s")).value)
    d.subnet_changed(n.subnets_["s"])  # network read from Neutron
    assert record()["mtu"] == 1450 and "dns_domain" not in record()
    d.subnet_changed(n.subnets_["s"], {"id": net_id, "mtu": 1400})  # as ML2 passes it
    assert record()["mtu"] == 1400
    n.networks_[net_id] = {**n.networks_[net_id], "mtu": 9000, "dns_domain": "example.org."}
    d.network_changed(n.networks_[net_id])
    assert record()["mtu"] == 9000 and record()["dns_domain"] == "example.org."
    d.subnets.resync(n.snapshot())
    assert record()["mtu"] == 9000


def test_datastore_trouble_never_raises_and_resync_repairs(backend):
    n = neutron_with_port()
    flaky = FlakyBackend(backend)
    slept = []
    d = CalicoDriver(flaky, n, DriverConfig(ipam=False), sleep=slept.append)
    flaky.down = True
    d.port_changed(port(), None)  # must not raise
    d.security_group_changed("sg")
    assert len(slept) == 6 and d._kick.is_set()  # retried, then asked for a resync
    flaky.down = False
    assert backend.list(WEP)[0] == []
    d.resync()
    assert [kv.key for kv in backend.list(WEP)[0]] == [WEP + "h1-openstack-vm--p1-p1"]
    assert backend.get(names.subnet_key("s")) is not None
    felix = json.loads(backend.get(
        "/calico/resources/v3/projectcalico.org/felixconfigurations/default").value)
    assert felix["spec"]["endpointReportingEnabled"] is True


def test_unexpected_errors_do_not_escape(backend):
    class Broken(FakeNeutron):
        def subnets(self, ids):
            raise RuntimeError("bug")
    d = CalicoDriver(backend, Broken(), DriverConfig(ipam=False), sleep=lambda s: None)
    d.port_changed(port(), None)
    assert d._kick.is_set()


def test_election_one_master_then_takeover(backend):
    now = [0.0]
    a = Elector(backend, "a", ttl=3, interval=1, clock=lambda: now[0])
    b = Elector(backend, "b", ttl=3, interval=1, clock=lambda: now[0])
    a.step()
    b.step()
    assert a.is_master and not b.is_master
    assert backend.get(names.ELECTION_KEY).value == a.id
    a.step()
    b.step()
    assert a.is_master and not b.is_master
    # a dies: its lease is revoked as expiry would; b takes over on its next round.
    backend.revoke(a._lease)
    b.step()
    assert b.is_master
    a.step()  # a notices it lost
    assert not a.is_master
    # A master that cannot renew stops believing it is master after the lease time.
    now[0] += 5
    assert not b.is_master


def test_elector_stop_hands_over(backend):
    a = Elector(backend, "a", ttl=3, interval=1)
    a.step()
    assert a.is_master
    a.stop()
    assert backend.get(names.ELECTION_KEY) is None and not a.is_master


def test_status_watcher(backend):
    got, alive = {}, []
    w = StatusWatcher(backend, lambda p, s: got.__setitem__(p, s), alive.append)
    key = names.FELIX_STATUS_PREFIX + "h1/workload/openstack/openstack%2fvm/endpoint/p1"
    backend.put(key, json.dumps({"status": "up"}))
    backend.put(names.felix_status_key("h1"), "{}")
    stop = threading.Event()
    active = iter([True, True, False])
    t = threading.Thread(target=w.run_while, args=(lambda: next(active, False), stop, 0.2))
    t.start()
    t.join(5)
    assert got == {"p1": "ACTIVE"} and alive == ["h1"]
    assert neutron_status(None) == "DOWN"
    assert neutron_status('{"status": "error"}') == "ERROR"
    assert neutron_status('{"status": "down"}') == "DOWN"
    assert neutron_status("junk") == "ERROR"
