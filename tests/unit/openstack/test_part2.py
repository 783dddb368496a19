"""Driver behaviour for real clouds, with a fake Neutron and a real local datastore: ports,
groups and subnets that cannot be mapped; node names; regions; ClusterInformation; live
migration; etcd compaction; bind_port's Felix check; Kuryr ports."""

import json
import logging

from calico.datastore.client import ResourceClient
from calico.openstack import names
from calico.openstack.compaction import LAST_KEY, TRIGGER_KEY, Compactor
from calico.openstack.driver import CalicoDriver, DriverConfig
from calico.openstack.status import StatusWatcher
from tests.unit.openstack.test_driver import WEP, backend, neutron_with_port, port  # noqa: F401

R1_WEP = "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack-region-r1/"


def driver(backend, n, **kw):  # noqa: F811
    return CalicoDriver(backend, n, DriverConfig(ipam=False, **kw), sleep=lambda s: None)


def wep_keys(backend, prefix=WEP):  # noqa: F811
    return sorted(kv.key[len(prefix):] for kv in backend.list(prefix)[0])


def test_host_names_are_lower_cased_and_unmappable_ports_go_to_error(backend, caplog):  # noqa: F811
    n = neutron_with_port()
    n.ports["p1"] = port("p1", host="Compute-1")
    n.ports["p2"] = port("p2", host="compute_1")
    n.ports["p3"] = {**port("p3"), "device_id": "Bad_VM"}
    n.ports["p4"] = {**port("p4"), "fixed_ips": [{"subnet_id": "s", "ip_address": "junk"}]}
    n.ports["p5"] = port("p5")
    d = driver(backend, n)
    d.resync()
    assert wep_keys(backend) == ["compute--1-openstack-vm--p1-p1", "h1-openstack-vm--p5-p5"]
    ep = ResourceClient(backend).get("WorkloadEndpoint", "compute--1-openstack-vm--p1-p1",
                                     "openstack")
    assert ep.spec.node == "compute-1"
    assert n.status == {"p2": "ERROR", "p3": "ERROR", "p4": "ERROR"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert "p2" in errors[0] and "'compute_1'" in errors[0]
    assert "p3" in errors[1] and "'Bad_VM'" in errors[1]
    assert "p4" in errors[2] and "junk" in errors[2]
    caplog.clear()
    n.ports["p2"]["status"] = "ERROR"
    d.resync()  # the same problems: no new log lines, no status writes again
    assert not [r for r in caplog.records if r.levelno == logging.ERROR]
    # The operator fixes p2's host: it gets its endpoint and leaves ERROR.
    n.ports["p2"] = {**port("p2", host="compute-2"), "status": "ERROR"}
    d.resync()
    assert "compute--2-openstack-vm--p2-p2" in wep_keys(backend)
    assert n.status["p2"] == "DOWN"
    # An upper-case port id is not lower-cased (Felix reports it back): ERROR.
    n.ports["P6"] = port("P6")
    d.resync()
    assert n.status["P6"] == "ERROR" and "'P6'" in caplog.text


def test_event_for_unmappable_port_sets_error_and_carries_on(backend):  # noqa: F811
    n = neutron_with_port()
    d = driver(backend, n)
    d.port_changed(port("p9", host="compute_9"), None)
    assert n.status == {"p9": "ERROR"} and not d._kick.is_set()
    assert wep_keys(backend) == []


def test_bad_rules_and_upper_case_group_ids(backend, caplog):  # noqa: F811
    n = neutron_with_port()
    n.groups["SG-UPPER"] = {"id": "SG-UPPER", "name": "u", "security_group_rules": [
        {"id": "r1", "security_group_id": "SG-UPPER", "direction": "ingress",
         "ethertype": "IPv4", "protocol": None, "port_range_min": 80,
         "port_range_max": 90},
        {"id": "r2", "security_group_id": "SG-UPPER", "direction": "ingress",
         "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
         "port_range_max": 22}]}
    n.groups["junk"] = {"id": "junk", "security_group_rules": "not a list"}
    n.subnets_["bad"] = {"id": "bad", "enable_dhcp": True, "cidr": "not a cidr"}
    d = driver(backend, n)
    d.resync()
    pol = ResourceClient(backend).get("NetworkPolicy", "ossg.default.sg-upper", "openstack")
    assert pol.spec.selector == "has(sg.projectcalico.org/openstack-SG-UPPER)"
    assert [r.destination.ports for r in pol.spec.ingress] == [[22]]  # r1 left out
    assert "rule r1" in caplog.text and "port range 80-90" in caplog.text
    assert "security group junk" in caplog.text and "subnet bad" in caplog.text
    assert wep_keys(backend) == ["h1-openstack-vm--p1-p1"]  # the rest is written


def test_kuryr_container_ports_are_endpoints(backend):  # noqa: F811
    n = neutron_with_port()
    n.ports["k1"] = {**port("k1"), "device_owner": "kuryr:container"}
    n.ports["r1"] = {**port("r1"), "device_owner": "network:router_interface"}
    driver(backend, n).resync()
    assert wep_keys(backend) == ["h1-openstack-vm--k1-k1", "h1-openstack-vm--p1-p1"]


def test_region_namespace_keys_and_status(backend):  # noqa: F811
    n = neutron_with_port()
    d = driver(backend, n, region="r1")
    d.resync()
    assert wep_keys(backend, R1_WEP) == ["h1-openstack-vm--p1-p1"] and not wep_keys(backend)
    assert ResourceClient(backend).get("NetworkPolicy", "ossg.default.sg",
                                       "openstack-region-r1")
    assert backend.get("/calico/dhcp/v2/region-r1/subnet/s") is not None
    assert backend.get(names.subnet_key("s")) is None
    assert d.elector.key == "/calico/openstack/v2/region-r1/neutron_election"
    watcher = StatusWatcher(backend, n.set_port_status, region=d.region)
    watcher.apply("/calico/felix/v2/region-r1/host/h1/workload/openstack/openstack%2fvm/"
                  "endpoint/p1", json.dumps({"status": "up"}))
    watcher.apply("/calico/felix/v2/no-region/host/h1/workload/openstack/openstack%2fvm/"
                  "endpoint/p1", json.dumps({"status": "error"}))  # another region's
    assert n.status == {"p1": "ACTIVE"}


def test_felix_region_string_is_the_drivers():
    from calico.felix.config import ConfigLoader

    cfg = ConfigLoader(env={"FELIX_OPENSTACKREGION": "r1"}).load({})
    assert cfg.region == names.Region("r1").string == "region-r1"


def test_cluster_information_merged_as_calico_does(backend):  # noqa: F811
    client = ResourceClient(backend)
    client.create({"apiVersion": "projectcalico.org/v3", "kind": "ClusterInformation",
                   "metadata": {"name": "default"},
                   "spec": {"clusterType": "k8s,bgp", "datastoreReady": False,
                            "calicoVersion": "v3.30.0"}})
    d = driver(backend, neutron_with_port())
    d.resync()
    spec = client.get("ClusterInformation", "default").spec
    assert spec.clusterType == "k8s,bgp,openstack" and spec.datastoreReady is False
    assert len(spec.clusterGUID) == 32 and spec.calicoVersion == "v3.30.0"
    revision = backend.revision()
    d.resync()  # nothing to change: nothing written
    assert client.get("ClusterInformation", "default").spec == spec
    assert backend.revision() == revision
    client.delete("ClusterInformation", "default")
    d.resync()
    spec = client.get("ClusterInformation", "default").spec
    assert spec.clusterType == "openstack" and spec.datastoreReady is True


def test_live_migration_keeps_both_endpoints_until_the_host_changes(backend):  # noqa: F811
    n = neutron_with_port()
    d = driver(backend, n)
    src = port()
    d.port_changed(src, None)
    pre = {**src, "binding:profile": {"migrating_to": "h2"}}
    d.port_changed(pre, src)
    both = ["h1-openstack-vm--p1-p1", "h2-openstack-vm--p1-p1"]
    assert wep_keys(backend) == both
    n.ports["p1"] = pre
    d.resync()  # the resync agrees while migrating_to is set
    assert wep_keys(backend) == both
    # Switch-over, as ML2 delivers it: the host changes (unbound), then the new binding.
    moving = {**src, "binding:host_id": "h2", "binding:vif_type": "unbound"}
    d.port_changed(moving, pre)
    assert wep_keys(backend) == ["h2-openstack-vm--p1-p1"]
    done = {**src, "binding:host_id": "h2"}
    d.port_changed(done, moving)
    assert wep_keys(backend) == ["h2-openstack-vm--p1-p1"]


def test_cancelled_migration_and_delete_during_migration(backend):  # noqa: F811
    d = driver(backend, neutron_with_port())
    src = port()
    pre = {**src, "binding:profile": {"migrating_to": "h2"}}
    d.port_changed(pre, src)
    d.port_changed(src, pre)  # migrating_to cleared, same host: the destination goes
    assert wep_keys(backend) == ["h1-openstack-vm--p1-p1"]
    d.port_changed(pre, src)
    d.port_deleted(pre)
    assert wep_keys(backend) == []


def test_bind_port_needs_a_live_felix(backend):  # noqa: F811
    d = driver(backend, neutron_with_port())
    assert not d.felix_live("Compute-1")
    lease = backend.grant_lease(60)
    backend.put(names.felix_status_key("compute-1"), "{}", lease=lease)
    assert d.felix_live("Compute-1") and d.felix_live("compute-1")
    backend.revoke(lease)
    assert not d.felix_live("Compute-1")
    r1 = driver(backend, neutron_with_port(), region="r1")
    backend.put(names.felix_status_key("h1"), "{}")  # no-region's Felix: not ours
    assert not r1.felix_live("h1")


def test_compaction_keeps_a_period_and_min_revisions(backend):  # noqa: F811
    c = Compactor(backend, period_mins=1, min_revisions=10)
    assert c.check() is None and backend.get(LAST_KEY).value == "0"  # first check: record
    assert c.check() is None  # trigger still alive
    for i in range(40):
        backend.put(f"/x/{i}", "v")
    trigger = backend.get(TRIGGER_KEY)
    backend.delete(TRIGGER_KEY)  # as if the period had passed
    assert trigger is not None
    current, last_check = backend.revision(), backend.get(LAST_KEY).mod_revision
    at = c.check()
    # keeps the whole last period (everything since the last check), at least 10 revisions
    assert at == current - max(10, current - last_check) == last_check
    assert c.compactions == 1
    assert backend.get(LAST_KEY).value == str(at)
    backend.delete(TRIGGER_KEY)
    current = backend.revision()
    assert c.check() == current - 10  # little happened in the period: keep min_revisions
    assert Compactor(backend, period_mins=0).check() is None
