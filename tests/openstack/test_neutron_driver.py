"""Our ML2 driver in a real Neutron server: what Neutron API calls put in the datastore."""

import json

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceNotFound
from calico.openstack import names
from tests.openstack.conftest import live_felix, run_sdk_scenario, wait_for

WEP = "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/"
NP = "/calico/resources/v3/projectcalico.org/networkpolicies/openstack/"


@pytest.fixture(scope="module")
def topo(neutron_venv, neutron, store):
    live_felix(store, "host-a", "host-b")
    return run_sdk_scenario(neutron_venv, neutron.url)


def endpoints(store):
    out = {}
    for kv in store.list(WEP)[0]:
        try:
            doc = json.loads(kv.value)
            out[doc["spec"]["endpoint"]] = doc
        except (ValueError, KeyError):
            continue
    return out


def policy(store, sg_id):
    try:
        return ResourceClient(store).get("NetworkPolicy", names.sg_policy_name(sg_id),
                                         "openstack")
    except ResourceNotFound:
        return None


def test_ports_become_endpoints(topo, store, api):
    ports = topo["ports"]
    eps = wait_for(lambda: (e := endpoints(store)) and len(e) == 3 and e, what="3 endpoints")
    assert set(eps) == set(ports.values())  # the DHCP port is not an endpoint
    vm2 = eps[ports["vm2"]]
    assert vm2["metadata"]["name"] == ("host--a-openstack-vm2--0000-"
                                       + ports["vm2"].replace("-", "--"))
    spec = vm2["spec"]
    assert spec["node"] == "host-a" and spec["orchestrator"] == "openstack"
    assert spec["workload"] == "vm2-0000" and spec["endpoint"] == ports["vm2"]
    assert spec["ipNetworks"] == ["10.65.0.12/32"] and spec["ipv4Gateway"] == "10.65.0.1"
    assert spec["interfaceName"] == "tap" + ports["vm2"][:11]
    port = api.get(f"/v2.0/ports/{ports['vm2']}")["port"]
    assert spec["mac"] == port["mac_address"]
    assert port["binding:vif_type"] == "tap" and port["binding:vif_details"]["port_filter"]
    labels = vm2["metadata"]["labels"]
    assert labels[names.sg_label(topo["web"])] == "web"
    assert labels[names.sg_label(topo["admin"])] == "admin"
    assert labels["projectcalico.org/orchestrator"] == "openstack"
    assert labels["projectcalico.org/openstack-project-id"] == port["project_id"]
    assert eps[ports["vm3"]]["spec"]["node"] == "host-b"
    assert names.sg_label(topo["web"]) not in eps[ports["vm3"]]["metadata"]["labels"]


def test_security_groups_become_policies(topo, store):
    web = wait_for(lambda: policy(store, topo["web"]), what="web policy")
    assert web.spec.selector == f"has(sg.projectcalico.org/openstack-{topo['web']})"
    ingress = sorted((r.to_dict() for r in web.spec.ingress), key=json.dumps)
    assert {"action": "Allow", "ipVersion": 4, "protocol": "TCP",
            "source": {"nets": ["0.0.0.0/0"]}, "destination": {"ports": [80]}} in ingress
    assert {"action": "Allow", "ipVersion": 4, "protocol": "TCP",
            "source": {"selector": f"has(sg.projectcalico.org/openstack-{topo['admin']})"},
            "destination": {"ports": [22]}} in ingress
    # Neutron's default egress rules for a new group.
    assert sorted(r.ipVersion for r in web.spec.egress) == [4, 6]
    admin = policy(store, topo["admin"])
    assert {"action": "Allow", "ipVersion": 4, "protocol": "ICMP",
            "icmp": {"type": 8, "code": 0}} in [r.to_dict() for r in admin.spec.ingress]
    default = wait_for(lambda: policy(store, topo["default"]), what="default SG policy")
    assert any(r.source and r.source.selector for r in default.spec.ingress)


def test_subnet_record(topo, store):
    kv = wait_for(lambda: store.get(names.subnet_key(topo["subnet"])), what="subnet record")
    # networking-calico's record, plus the network's MTU (Neutron's default for a local
    # network: 1500) for the DHCP agent.
    assert json.loads(kv.value) == {"network_id": topo["network"], "cidr": "10.65.0.0/24",
                                    "gateway_ip": "10.65.0.1", "host_routes": [],
                                    "dns_servers": ["192.0.2.53"], "mtu": 1500}


def test_felix_configuration_enables_endpoint_reporting(topo, store):
    cfg = wait_for(lambda: _felix_config(store), what="FelixConfiguration default")
    assert cfg.spec.endpointReportingEnabled is True


def _felix_config(store):
    try:
        return ResourceClient(store).get("FelixConfiguration", "default")
    except ResourceNotFound:
        return None


def test_rule_add_and_remove_update_the_policy(topo, store, api):
    before = len(policy(store, topo["admin"]).spec.ingress)
    rule = api.post("/v2.0/security-group-rules", {"security_group_rule": {
        "security_group_id": topo["admin"], "direction": "ingress", "ethertype": "IPv4",
        "protocol": "udp", "port_range_min": 5000, "port_range_max": 5100,
        "remote_ip_prefix": "10.1.0.0/16"}})["security_group_rule"]
    want = {"action": "Allow", "ipVersion": 4, "protocol": "UDP",
            "source": {"nets": ["10.1.0.0/16"]}, "destination": {"ports": ["5000:5100"]}}
    pol = wait_for(lambda: (p := policy(store, topo["admin"])) and
                   len(p.spec.ingress) == before + 1 and p, what="rule added")
    assert want in [r.to_dict() for r in pol.spec.ingress]
    eps_before = {k: v["metadata"] for k, v in endpoints(store).items()}
    api.delete(f"/v2.0/security-group-rules/{rule['id']}")
    pol = wait_for(lambda: (p := policy(store, topo["admin"])) and
                   len(p.spec.ingress) == before and p, what="rule removed")
    assert want not in [r.to_dict() for r in pol.spec.ingress]
    # A rule change touches the policy only.
    assert {k: v["metadata"] for k, v in endpoints(store).items()} == eps_before


def test_port_group_change_migration_and_delete(topo, store, api):
    vm1 = topo["ports"]["vm1"]
    api.put(f"/v2.0/ports/{vm1}", {"port": {"security_groups": [topo["admin"]]}})
    wait_for(lambda: names.sg_label(topo["admin"]) in
             endpoints(store)[vm1]["metadata"]["labels"], what="label change")
    assert names.sg_label(topo["web"]) not in endpoints(store)[vm1]["metadata"]["labels"]
    api.put(f"/v2.0/ports/{vm1}", {"port": {"binding:host_id": "host-b"}})
    ep = wait_for(lambda: endpoints(store)[vm1]["spec"]["node"] == "host-b" and
                  endpoints(store)[vm1], what="migration")
    assert ep["metadata"]["name"].startswith("host--b-openstack-")
    assert len([k for k in store.list(WEP)[0]]) == 3  # moved, not copied
    api.delete(f"/v2.0/ports/{vm1}")
    wait_for(lambda: vm1 not in endpoints(store), what="endpoint deleted")
    assert len(endpoints(store)) == 2


def test_resync_repairs_junk_and_deletions(topo, store):
    vm2 = topo["ports"]["vm2"]
    key = next(kv.key for kv in store.list(WEP)[0]
               if json.loads(kv.value)["spec"]["endpoint"] == vm2)
    good = json.loads(store.get(key).value)["spec"]
    store.delete(key)
    store.put(WEP + "junk-endpoint", "{definitely not json")
    store.put(NP + "ossg.default.no-such-group", "{}")
    store.put(names.subnet_key("no-such-subnet"), "{}")
    web_key = NP + names.sg_policy_name(topo["web"])
    doc = json.loads(store.get(web_key).value)
    doc["spec"]["ingress"] = []
    store.put(web_key, json.dumps(doc))

    def repaired():
        kv = store.get(key)
        return (kv is not None and json.loads(kv.value)["spec"] == good
                and store.get(WEP + "junk-endpoint") is None
                and store.get(NP + "ossg.default.no-such-group") is None
                and store.get(names.subnet_key("no-such-subnet")) is None
                and json.loads(store.get(web_key).value)["spec"]["ingress"])
    wait_for(repaired, timeout=20, what="resync repair")


def test_felix_status_sets_port_status_and_agents(topo, store, api):
    vm2 = topo["ports"]["vm2"]
    assert api.get(f"/v2.0/ports/{vm2}")["port"]["status"] == "DOWN"
    ep_key = (f"{names.FELIX_STATUS_PREFIX}host-a/workload/openstack/openstack%2fvm2-0000/"
              f"endpoint/{vm2}")
    store.put(ep_key, json.dumps({"status": "up"}))
    wait_for(lambda: api.get(f"/v2.0/ports/{vm2}")["port"]["status"] == "ACTIVE",
             what="ACTIVE")
    store.put(ep_key, json.dumps({"status": "error"}))
    wait_for(lambda: api.get(f"/v2.0/ports/{vm2}")["port"]["status"] == "ERROR",
             what="ERROR")
    store.delete(ep_key)
    wait_for(lambda: api.get(f"/v2.0/ports/{vm2}")["port"]["status"] == "DOWN", what="DOWN")
    lease = store.grant_lease(90)
    store.put(names.felix_status_key("host-a"), json.dumps({"time": "now"}), lease=lease)

    def agent():
        agents = api.get("/v2.0/agents?host=host-a")["agents"]
        return agents[0] if agents else None
    a = wait_for(agent, what="Felix agent")
    assert a["agent_type"] == "Calico per-host agent (felix)" and a["alive"]
    assert a["binary"] == "calico-felix"
