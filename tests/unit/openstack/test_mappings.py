"""The pure mappings: port -> WorkloadEndpoint, security group -> NetworkPolicy, subnet record."""

import json

import pytest

from calico.api import validate
from calico.openstack import names
from calico.openstack.endpoints import Project, endpoint_name, endpoint_resource, is_bound_endpoint
from calico.openstack.policy import RuleError, policy_resource, protocol_number, rule_to_calico
from calico.openstack.subnets import subnet_record, subnet_value, wants_record

PORT_ID = "5e0a1c2b-3d4e-4f50-8a6b-7c8d9e0f1a2b"
VM = "0f1e2d3c-4b5a-4968-8776-655443322110"


def port(**over):
    p = {
        "id": PORT_ID, "device_id": VM, "device_owner": "compute:nova",
        "binding:host_id": "compute-1", "binding:vif_type": "tap",
        "mac_address": "fa:16:3e:12:34:56", "network_id": "net-1", "project_id": "proj-1",
        "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.65.0.5"},
                      {"subnet_id": "s6", "ip_address": "fd00:65::5"}],
        "security_groups": ["sg-a", "sg-b"], "allowed_address_pairs": [],
        "port_security_enabled": True,
    }
    p.update(over)
    return p


GATEWAYS = {"s4": "10.65.0.1", "s6": "fd00:65::1"}


def test_endpoint_resource_validates_and_has_calicos_fields():
    doc = endpoint_resource(port(), GATEWAYS, {"sg-a": "web servers!", "sg-b": ""},
                              Project("demo", "parent-1"))
    res = validate(doc)
    assert res.name == "compute--1-openstack-" + VM.replace("-", "--") + "-" + \
        PORT_ID.replace("-", "--")
    assert res.namespace == "openstack"
    spec = res.spec
    assert (spec.orchestrator, spec.node, spec.workload, spec.endpoint) == \
        ("openstack", "compute-1", VM, PORT_ID)
    assert spec.interfaceName == "tap5e0a1c2b-3d"
    assert spec.ipNetworks == ["10.65.0.5/32", "fd00:65::5/128"]
    assert spec.ipv4Gateway == "10.65.0.1" and spec.ipv6Gateway == "fd00:65::1"
    assert spec.mac == "fa:16:3e:12:34:56"
    labels = res.metadata.labels
    assert labels["sg.projectcalico.org/openstack-sg-a"] == "web_servers"
    assert labels["sg.projectcalico.org/openstack-sg-b"] == ""
    assert labels["sg-name.projectcalico.org/openstack-web_servers"] == "sg-a"
    assert labels["projectcalico.org/openstack-project-id"] == "proj-1"
    assert labels["projectcalico.org/openstack-project-name"] == "demo"
    assert labels["projectcalico.org/openstack-project-parent-id"] == "parent-1"
    assert labels["projectcalico.org/orchestrator"] == "openstack"
    assert labels["projectcalico.org/namespace"] == "openstack"
    assert res.metadata.annotations == {"openstack.projectcalico.org/network-id": "net-1"}


def test_allowed_address_pairs_are_routed_addresses():
    """As networking-calico: every pair in allowedIps, single addresses in ipNetworks too
    (after the fixed IPs); a CIDR pair cannot be in ipNetworks, so it is a spoofable prefix
    (our Felix routes it from allowedIps); a pair equal to a fixed IP adds nothing."""
    p = port(allowed_address_pairs=[{"ip_address": "10.65.0.100"},
                                    {"ip_address": "10.66.0.0/24", "mac_address": "x"},
                                    {"ip_address": "fd00:66::1"},
                                    {"ip_address": "10.65.0.5"},
                                    {"ip_address": "10.65.0.100/32"}])
    spec = validate(endpoint_resource(p, GATEWAYS)).spec
    assert spec.ipNetworks == ["10.65.0.5/32", "fd00:65::5/128", "10.65.0.100/32",
                               "fd00:66::1/128"]
    assert spec.allowedIps == ["10.65.0.100/32", "10.66.0.0/24", "fd00:66::1/128"]
    assert spec.allowSpoofedSourcePrefixes == ["10.66.0.0/24"]


def test_no_address_pairs_no_pair_fields():
    spec = endpoint_resource(port(), GATEWAYS)["spec"]
    assert "allowedIps" not in spec and "allowSpoofedSourcePrefixes" not in spec


def test_no_gateway_and_no_security():
    p = port(security_groups=[], port_security_enabled=False)
    res = validate(endpoint_resource(p, {"s4": None}))
    assert res.spec.ipv4Gateway is None and res.spec.ipv6Gateway is None
    assert not any(k.startswith("sg.") for k in res.metadata.labels)


def test_which_ports_are_endpoints():
    assert is_bound_endpoint(port())
    assert not is_bound_endpoint(port(device_owner="network:dhcp"))
    assert not is_bound_endpoint(port(device_owner="network:router_interface"))
    assert not is_bound_endpoint(port(**{"binding:host_id": ""}))
    assert not is_bound_endpoint(port(**{"binding:vif_type": "unbound"}))
    assert not is_bound_endpoint(port(**{"binding:vif_type": "binding_failed"}))


def test_migration_changes_the_name():
    assert endpoint_name(port()) != endpoint_name(port(**{"binding:host_id": "compute-2"}))


def rule(**over):
    r = {"id": "r1", "security_group_id": "sg-a", "direction": "ingress", "ethertype": "IPv4",
         "protocol": None, "port_range_min": None, "port_range_max": None,
         "remote_ip_prefix": None, "remote_group_id": None}
    r.update(over)
    return r


@pytest.mark.parametrize("neutron, calico", [
    (rule(), {"action": "Allow", "ipVersion": 4}),
    (rule(ethertype="IPv6", direction="egress"), {"action": "Allow", "ipVersion": 6}),
    (rule(protocol="tcp", port_range_min=22, port_range_max=22),
     {"action": "Allow", "ipVersion": 4, "protocol": "TCP", "destination": {"ports": [22]}}),
    (rule(protocol="udp", port_range_min=5000, port_range_max=5100, direction="egress"),
     {"action": "Allow", "ipVersion": 4, "protocol": "UDP",
      "destination": {"ports": ["5000:5100"]}}),
    (rule(protocol="6", port_range_min=80, port_range_max=81),
     {"action": "Allow", "ipVersion": 4, "protocol": "TCP", "destination": {"ports": ["80:81"]}}),
    (rule(protocol="tcp"), {"action": "Allow", "ipVersion": 4, "protocol": "TCP"}),
    (rule(protocol="icmp", port_range_min=8, port_range_max=0),
     {"action": "Allow", "ipVersion": 4, "protocol": "ICMP", "icmp": {"type": 8, "code": 0}}),
    (rule(protocol="icmp", port_range_min=8),
     {"action": "Allow", "ipVersion": 4, "protocol": "ICMP", "icmp": {"type": 8}}),
    (rule(protocol="icmp", ethertype="IPv6"),
     {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6"}),
    (rule(protocol="ipv6-icmp", ethertype="IPv6", port_range_min=128),
     {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6", "icmp": {"type": 128}}),
    (rule(protocol="gre"), {"action": "Allow", "ipVersion": 4, "protocol": 47}),
    (rule(protocol="112"), {"action": "Allow", "ipVersion": 4, "protocol": 112}),
    (rule(protocol="any"), {"action": "Allow", "ipVersion": 4}),
    (rule(protocol="0"), {"action": "Allow", "ipVersion": 4}),
    (rule(remote_ip_prefix="10.1.2.0/24"),
     {"action": "Allow", "ipVersion": 4, "source": {"nets": ["10.1.2.0/24"]}}),
    (rule(remote_ip_prefix="10.1.2.3/24", direction="egress", protocol="tcp",
          port_range_min=443, port_range_max=443),
     {"action": "Allow", "ipVersion": 4, "protocol": "TCP",
      "destination": {"nets": ["10.1.2.0/24"], "ports": [443]}}),
    (rule(remote_group_id="sg-b", protocol="tcp", port_range_min=22, port_range_max=22),
     {"action": "Allow", "ipVersion": 4, "protocol": "TCP",
      "source": {"selector": "has(sg.projectcalico.org/openstack-sg-b)"},
      "destination": {"ports": [22]}}),
    (rule(remote_group_id="sg-b", direction="egress"),
     {"action": "Allow", "ipVersion": 4,
      "destination": {"selector": "has(sg.projectcalico.org/openstack-sg-b)"}}),
])
def test_rule_mapping(neutron, calico):
    assert rule_to_calico(neutron) == calico


def test_protocol_numbers():
    assert protocol_number("TCP") == 6 and protocol_number(17) == 17
    assert protocol_number(None) is None and protocol_number("-1") is None
    with pytest.raises(RuleError):
        protocol_number("bogus")
    with pytest.raises(RuleError):
        protocol_number("300")


def test_policy_resource_validates():
    rules = [rule(id="r2", protocol="tcp", port_range_min=22, port_range_max=22),
             rule(id="r1", direction="egress", ethertype="IPv6"),
             rule(id="r3", security_group_id="other"),
             rule(id="r4", protocol="bogus")]
    res = validate(policy_resource("sg-a", rules))
    assert res.name == "ossg.default.sg-a" and res.namespace == "openstack"
    assert res.spec.selector == "has(sg.projectcalico.org/openstack-sg-a)"
    assert res.spec.types == ["Ingress", "Egress"]
    assert [r.to_dict() for r in res.spec.ingress] == [
        {"action": "Allow", "ipVersion": 4, "protocol": "TCP", "destination": {"ports": [22]}}]
    assert [r.to_dict() for r in res.spec.egress] == [{"action": "Allow", "ipVersion": 6}]


def test_empty_group_denies_both_ways():
    res = validate(policy_resource("sg-x", []))
    assert res.spec.types == ["Ingress", "Egress"]
    assert not res.spec.ingress and not res.spec.egress


def test_subnet_record():
    s = {"id": "s4", "network_id": "net-1", "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
         "host_routes": [{"destination": "10.9.0.0/16", "nexthop": "10.65.0.254"}],
         "dns_nameservers": ["192.0.2.53"], "enable_dhcp": True}
    assert subnet_record(s) == {"network_id": "net-1", "cidr": "10.65.0.0/24",
                                "gateway_ip": "10.65.0.1", "dns_servers": ["192.0.2.53"],
                                "host_routes": [{"destination": "10.9.0.0/16",
                                                 "nexthop": "10.65.0.254"}]}
    assert json.loads(subnet_value(s)) == subnet_record(s)
    assert "dns_servers" not in subnet_record({**s, "dns_nameservers": []})
    assert wants_record(s) and not wants_record({**s, "enable_dhcp": False})


def test_names():
    assert names.tap_name(PORT_ID) == "tap5e0a1c2b-3d"
    assert names.subnet_key("s") == "/calico/dhcp/v2/no-region/subnet/s"
    key = ("/calico/felix/v2/no-region/host/compute-1/workload/openstack/openstack%2f" + VM
           + "/endpoint/" + PORT_ID)
    assert names.parse_endpoint_status_key(key) == ("compute-1", PORT_ID)
    assert names.parse_endpoint_status_key(key.replace("/openstack/", "/k8s/", 1)) is None
    assert names.parse_felix_status_key(
        "/calico/felix/v2/no-region/host/compute-1/status") == "compute-1"
    assert names.parse_felix_status_key(
        "/calico/felix/v2/no-region/host/compute-1/last_reported_status") is None
