"""What a real cloud needs from the driver, against a real Neutron 29 server and a real etcd,
driven through openstacksdk (cloud_sdk.py): networking-calico's `[calico]` options as an
operator writes them (etcd_host/etcd_port, openstack_region, etcd compaction; a typo and an
invalid value), regions, ClusterInformation, unmappable host names and ids, junk in
Neutron's database, bind_port's live-Felix check, Kuryr ports, Keystone project labels (a
stand-in Keystone: keystone_standin.py) and the live-migration endpoints.

Felix's side of the region is Felix's own StatusReporter with the region string Felix's
config derives from `OpenstackRegion`; hosts with a "live Felix" get a status key on a
lease, as Felix writes it (conftest.live_felix).
"""

import json
import sqlite3

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceNotFound
from calico.datastore.etcd import EtcdBackend
from calico.datastore.kv import Compacted
from calico.felix.config import ConfigLoader
from calico.felix.status import EndpointKey, StatusReporter
from calico.openstack import names
from tests.fixtures.etcd import EtcdServer
from tests.openstack.conftest import live_felix, wait_for
from tests.openstack.harness import NeutronAPI, NeutronServer, run_sdk
from tests.openstack.keystone_standin import KeystoneStandIn

REGION = names.Region("r1")
NS = REGION.namespace
WEP = f"/calico/resources/v3/projectcalico.org/workloadendpoints/{NS}/"
PROJECTS = [{"id": "proj-a", "name": "Project A", "parent_id": "dom-parent"}]


@pytest.fixture(scope="module")
def cloud(neutron_venv, tmp_path_factory):
    etcd = EtcdServer().start()
    keystone = KeystoneStandIn(PROJECTS).start()
    host, port = etcd.endpoint.split("//")[1].rsplit(":", 1)
    policy = tmp_path_factory.mktemp("policy") / "policy.yaml"
    # Nova sets binding:profile with the `service` role; noauth makes every call admin only.
    policy.write_text("".join(f'"{a}_port:binding:profile": "rule:admin_only"\n'
                              for a in ("create", "update")))
    server = NeutronServer(neutron_venv, tmp_path_factory.mktemp("neutron-r1"), "", calico={
        "etcd_host": host, "etcd_port": port, "openstack_region": REGION.name,
        "etcd_compaction_period_mins": "1", "etcd_compaction_min_revisions": "10",
        "etcd_hots": "typo.example", "project_name_cache_max": "lots",
        "num_port_status_threads": "4"},
        extra=f"[keystone_authtoken]\nauth_url = {keystone.url}\nusername = neutron\n"
              "password = secret\nproject_name = service\n"
              f"[oslo_policy]\npolicy_file = {policy}\n")
    store = EtcdBackend([etcd.endpoint])
    try:
        live_felix(store, "compute-1", "compute-2", "compute_1", region=REGION)
        server.start()
        topo = sdk(neutron_venv, server, "topology")
        yield {"server": server, "store": store, "topo": topo, "api": NeutronAPI(server.url),
               "keystone": keystone, "venv": neutron_venv}
    finally:
        server.stop()
        store.close()
        keystone.stop()
        etcd.stop()


def sdk(venv, server, *args):
    return run_sdk(venv, "cloud_sdk.py", server.url, *args)


def endpoints(store):
    out = {}
    for kv in store.list(WEP)[0]:
        doc = json.loads(kv.value)
        out.setdefault(doc["spec"]["endpoint"], []).append(doc)
    return out


def port(cloud, name):
    return cloud["api"].get(f"/v2.0/ports/{cloud['topo']['ports'][name]}")["port"]


def log(cloud):
    return (cloud["server"].dir / "neutron.log").read_text(errors="replace")


def test_options_as_operators_write_them_are_used_or_logged_by_name(cloud):
    text = log(cloud)
    assert "[calico] etcd_hots: unknown option; ignored" in text
    assert "[calico] project_name_cache_max = 'lots' is invalid" in text
    assert "[calico] num_port_status_threads = 4: a networking-calico option with no effect" \
        in text
    # etcd_host/etcd_port took us to this etcd, and openstack_region to its names.
    wait_for(lambda: cloud["store"].get(REGION.election_key), what="the region's election")


def test_region_namespace_paths_and_cluster_information(cloud):
    store, topo = cloud["store"], cloud["topo"]
    eps = wait_for(lambda: (e := endpoints(store)) and topo["ports"]["good"] in e and e,
                   what="endpoints in the region's namespace")
    assert not store.list("/calico/resources/v3/projectcalico.org/workloadendpoints/"
                          "openstack/")[0]
    client = ResourceClient(store)
    pol = wait_for(lambda: _get(client, "NetworkPolicy", names.sg_policy_name(topo["web"]),
                                NS), what="the region's policy")
    assert pol.namespace == NS and len(pol.spec.ingress) == 2
    assert wait_for(lambda: store.get(REGION.subnet_key(topo["subnet"])), what="subnet")
    info = wait_for(lambda: _get(client, "ClusterInformation", "default"), what="cluster info")
    assert "openstack" in info.spec.clusterType.split(",")
    assert info.spec.datastoreReady is True and len(info.spec.clusterGUID) == 32
    assert eps[topo["ports"]["good"]][0]["metadata"]["labels"][
        "projectcalico.org/namespace"] == NS


def test_felix_in_the_region_reports_port_status(cloud):
    store, good = cloud["store"], cloud["topo"]["ports"]["good"]
    wait_for(lambda: good in endpoints(store), what="good's endpoint")
    region = ConfigLoader(env={"FELIX_OPENSTACKREGION": REGION.name}).load({}).region
    reporter = StatusReporter(store, "compute-1", region, endpoint_reporting=True)
    ep = endpoints(store)[good][0]
    reporter.report_status()
    reporter.set_endpoints({EndpointKey.from_resource(NS, ep["spec"]): "up"})
    reporter.report_endpoints()
    wait_for(lambda: port(cloud, "good")["status"] == "ACTIVE", what="ACTIVE via the region")


def test_unmappable_names_and_missing_felix(cloud):
    store, ports = cloud["store"], cloud["topo"]["ports"]
    good = wait_for(lambda: endpoints(store).get(ports["good"]), what="good's endpoint")[0]
    assert good["spec"]["node"] == "compute-1"  # Compute-1, lower-cased
    assert port(cloud, "good")["binding:vif_type"] == "tap"
    for name, value in (("badhost", "'compute_1'"), ("badvm", "'Bad_VM'")):
        wait_for(lambda n=name: port(cloud, n)["status"] == "ERROR", what=f"{name} ERROR")
        assert ports[name] not in endpoints(store)
        lines = [x for x in log(cloud).splitlines()
                 if "cannot be mapped" in x and ports[name] in x]
        assert len(lines) == 1 and value in lines[0], lines  # one line, naming the value
    nofelix = port(cloud, "nofelix")
    assert nofelix["binding:vif_type"] == "binding_failed"
    assert ports["nofelix"] not in endpoints(store)
    assert "not binding to host 'host-z': no live Felix" in log(cloud)


def test_a_fixed_host_maps_and_leaves_error(cloud):
    store, pid = cloud["store"], cloud["topo"]["ports"]["badhost"]
    wait_for(lambda: port(cloud, "badhost")["status"] == "ERROR", what="badhost ERROR")
    cloud["api"].put(f"/v2.0/ports/{pid}", {"port": {"binding:host_id": "compute-2"}})
    ep = wait_for(lambda: endpoints(store).get(pid), what="badhost's endpoint")[0]
    assert ep["spec"]["node"] == "compute-2"
    wait_for(lambda: port(cloud, "badhost")["status"] == "DOWN", what="out of ERROR")


def test_junk_rule_in_neutrons_database_costs_only_that_rule(cloud):
    store, topo = cloud["store"], cloud["topo"]
    rule = topo["rules"]["8080"]
    with sqlite3.connect(str(cloud["server"].db), timeout=30) as db:
        db.execute("UPDATE securitygrouprules SET protocol = NULL WHERE id = ?", (rule,))
    client = ResourceClient(store)
    pol = wait_for(lambda: (p := _get(client, "NetworkPolicy",
                                       names.sg_policy_name(topo["web"]), NS))
                   and len(p.spec.ingress) == 1 and p, timeout=30, what="rule left out")
    assert pol.spec.ingress[0].destination.ports == [22]
    assert f"rule {rule}" in log(cloud) and "port range 8080-8080" in log(cloud)
    assert topo["ports"]["good"] in endpoints(store)  # the resync went on


def test_kuryr_container_port_is_an_endpoint(cloud):
    kuryr = cloud["topo"]["ports"]["kuryr"]
    ep = wait_for(lambda: endpoints(cloud["store"]).get(kuryr), what="kuryr endpoint")[0]
    assert ep["spec"]["workload"] == "container-1" and ep["spec"]["node"] == "compute-1"


def test_keystone_project_name_and_parent_labels(cloud):
    pid = cloud["topo"]["ports"]["projecta"]
    ep = wait_for(lambda: endpoints(cloud["store"]).get(pid), what="proj-a endpoint")[0]
    labels = ep["metadata"]["labels"]
    assert labels["projectcalico.org/openstack-project-id"] == "proj-a"
    assert labels["projectcalico.org/openstack-project-name"] == "Project_A"
    assert labels["projectcalico.org/openstack-project-parent-id"] == "dom-parent"
    assert "GET /v3/projects" in cloud["keystone"].requests


def test_live_migration_endpoints(cloud):
    store, mover = cloud["store"], cloud["topo"]["ports"]["mover"]
    wait_for(lambda: mover in endpoints(store), what="mover's endpoint")
    sdk(cloud["venv"], cloud["server"], "migrate-start", mover, "compute-2")
    both = wait_for(lambda: len(endpoints(store).get(mover, [])) == 2 and
                    endpoints(store)[mover], what="the destination's endpoint")
    assert sorted(e["spec"]["node"] for e in both) == ["compute-1", "compute-2"]
    sdk(cloud["venv"], cloud["server"], "migrate-cancel", mover)
    wait_for(lambda: [e["spec"]["node"] for e in endpoints(store).get(mover, [])]
             == ["compute-1"], what="cancelled: the destination's endpoint gone")
    sdk(cloud["venv"], cloud["server"], "migrate-start", mover, "compute-2")
    wait_for(lambda: len(endpoints(store).get(mover, [])) == 2, what="destination again")
    out = sdk(cloud["venv"], cloud["server"], "migrate-finish", mover, "compute-2")
    assert out["host"] == "compute-2" and out["vif_type"] == "tap"
    wait_for(lambda: [e["spec"]["node"] for e in endpoints(store).get(mover, [])]
             == ["compute-2"], what="switch-over: the source's endpoint gone")


def test_etcd_history_is_compacted(cloud):
    """Last: the first compaction comes one period (a minute) after the first check. The
    master compacts, then records the revision: both are waited for (between the two, the
    history is gone while `last` still holds the previous check's 0)."""
    store = cloud["store"]

    def compacted():
        try:
            store.list("/calico/", revision=2)
        except Compacted:
            return True
        return False

    def recorded():
        last = store.get("/calico/compaction/v1/last")
        return last is not None and int(last.value) > 2

    wait_for(lambda: compacted() and recorded(), timeout=180,
             what="an etcd compaction by the master, and its revision recorded")


def _get(client, kind, name, namespace=None):
    try:
        return client.get(kind, name, namespace)
    except ResourceNotFound:
        return None
