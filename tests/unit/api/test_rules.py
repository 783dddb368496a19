"""Policy rules: port / protocol parsing, and every rule check with its exact field path."""

import re

import pytest

from calico import api
from calico.api.rules import (
    check_port,
    parse_port,
    parse_protocol,
    protocol_number,
    protocol_supports_ports,
)


def _gnp(*ingress, name="allow-dns", **spec):
    return {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
            "metadata": {"name": name}, "spec": {"ingress": list(ingress), **spec}}


def _error(doc) -> api.ValidationError:
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc)
    return err.value


# ---- ports and protocols -------------------------------------------------------------------

@pytest.mark.parametrize("value, parsed, stored", [
    (80, (80, 80), 80),
    ("80", (80, 80), 80),
    ("80:90", (80, 90), "80:90"),
    ("80:80", (80, 80), 80),
    (1, (1, 1), 1),
    (65535, (65535, 65535), 65535),
    ("http", "http", "http"),
    ("metrics-2", "metrics-2", "metrics-2"),
])
def test_parse_port_valid(value, parsed, stored):
    assert parse_port(value) == parsed
    assert check_port(value) == stored


@pytest.mark.parametrize("value, reason", [
    (0, "is not a valid port (1-65535)"),
    (70000, "is not a valid port (1-65535)"),
    (-1, "is not a valid port (1-65535)"),
    ("70000", "is not a valid port (1-65535)"),
    ("90:80", "the first port is greater than the last"),
    ("0:80", "both ends must be 1-65535"),
    ("80:70000", "both ends must be 1-65535"),
    ("HTTP", "is not a valid port name"),
    ("a--b", "is not a valid port name"),
    ("1234-", "is not a valid port name"),
    ("http_alt", "is not a valid port name"),
    ("averyveryverylongname", "is not a valid port name"),
    ("80-90", "is not a valid port name"),
    ("a b", "is not a valid port"),
    ("", "is not a valid port"),
    (True, "is not a valid port"),
    (8.5, "is not a valid port"),
])
def test_parse_port_invalid(value, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_port(value)


@pytest.mark.parametrize("value, stored, number, ports", [
    ("TCP", "TCP", 6, True), ("UDP", "UDP", 17, True), ("SCTP", "SCTP", 132, True),
    ("ICMP", "ICMP", 1, False), ("ICMPv6", "ICMPv6", 58, False),
    ("UDPLite", "UDPLite", 136, False), (6, 6, 6, True), ("17", 17, 17, True),
    (255, 255, 255, False), (1, 1, 1, False),
])
def test_parse_protocol(value, stored, number, ports):
    assert parse_protocol(value) == stored
    assert protocol_number(parse_protocol(value)) == number
    assert protocol_supports_ports(parse_protocol(value)) is ports


@pytest.mark.parametrize("value", [0, 256, "tcp", "Tcp", "GRE", "", None, True, 6.0])
def test_parse_protocol_invalid(value):
    with pytest.raises(ValueError, match="is not a valid protocol"):
        parse_protocol(value)


# ---- valid rules and normalisation ---------------------------------------------------------

def test_rule_normalises_ports_protocols_and_empty_entities():
    rule = {"action": "Allow", "protocol": "6", "source": {},
            "destination": {"ports": ["80", "443:443", "8000:8080", "http"]}}
    spec = api.validate(_gnp(rule)).to_dict()["spec"]
    assert spec["ingress"] == [{"action": "Allow", "protocol": 6,
                                "destination": {"ports": [80, 443, "8000:8080", "http"]}}]


@pytest.mark.parametrize("rule", [
    {"action": "Allow"},
    {"action": "Deny", "protocol": "TCP", "notProtocol": "UDP"},
    {"action": "Log", "ipVersion": 6, "source": {"nets": ["fd00::/64"], "notNets": ["fd00::1/128"]}},
    {"action": "Pass", "destination": {"ports": ["http"]}},  # named port, no protocol
    {"action": "Allow", "protocol": "SCTP", "destination": {"notPorts": [9000]}},
    {"action": "Allow", "protocol": 17, "source": {"ports": ["1000:2000"]}},
    {"action": "Allow", "protocol": "ICMP", "ipVersion": 4, "icmp": {"type": 3, "code": 1},
     "notICMP": {"type": 8}},
    {"action": "Allow", "protocol": 58, "icmp": {"type": 254, "code": 255}},
    {"action": "Allow", "notProtocol": "ICMPv6", "ipVersion": 6},
    {"action": "Allow", "protocol": "TCP", "http": {"methods": ["GET", "PUT"],
                                                     "paths": [{"exact": "/a"}, {"prefix": "/b/"}]}},
    {"action": "Allow", "http": {"paths": [{"prefix": "/"}]}},
    {"action": "Allow", "source": {"services": {"name": "web", "namespace": "prod"},
                                   "ports": [80]}, "protocol": "TCP"},
    {"action": "Allow", "source": {"namespaceSelector": " global( ) ", "selector": "a == 'b'"}},
    {"action": "Allow", "source": {"serviceAccounts": {"names": ["sa"], "selector": "x == 'y'"}}},
    {"action": "Allow", "metadata": {"annotations": {"owner": "team-a"}}},
    {"action": "Allow", "source": {"selector": "", "notSelector": "has(bad)"}},
])
def test_valid_rules(rule):
    api.validate(_gnp(rule))


# ---- invalid rules: exact field paths ------------------------------------------------------

INVALID_RULES = [
    # (rule, path below spec.ingress[0], reason fragment)
    ({}, "action", "is required"),
    ({"action": "allow"}, "action", '"allow" is not a valid action (Allow, Deny, Log, Pass)'),
    ({"action": "Allow", "ipVersion": 5}, "ipVersion", "5 is not a valid ipVersion (4 or 6)"),
    ({"action": "Allow", "ipVersion": "4"}, "ipVersion", "is not a valid ipVersion"),
    ({"action": "Allow", "ipVersion": 4.0}, "ipVersion", "is not a valid ipVersion"),
    ({"action": "Allow", "protocol": "tcp"}, "protocol", '"tcp" is not a valid protocol'),
    ({"action": "Allow", "protocol": 0}, "protocol", "0 is not a valid protocol"),
    ({"action": "Allow", "notProtocol": 256}, "notProtocol", "256 is not a valid protocol"),
    ({"action": "Allow", "protocol": "TCP", "destination": {"ports": [53, 70000]}},
     "destination.ports[1]", "70000 is not a valid port (1-65535)"),
    ({"action": "Allow", "protocol": "TCP", "source": {"notPorts": ["90:80"]}},
     "source.notPorts[0]", '"90:80" is not a valid port range'),
    ({"action": "Allow", "destination": {"ports": [80]}},
     "destination.ports[0]", "80 needs the rule's protocol set to TCP, UDP or SCTP"),
    ({"action": "Allow", "source": {"ports": ["http", "1:2"]}},
     "source.ports[1]", "needs the rule's protocol"),
    ({"action": "Allow", "protocol": "ICMP", "destination": {"notPorts": ["http"]}},
     "destination.notPorts[0]", '"http" is not allowed with protocol ICMP'),
    ({"action": "Allow", "protocol": "TCP", "destination": {"ports": list(range(1, 52))}},
     "destination.ports", "has too many ports (51, at most 50)"),
    ({"action": "Allow", "protocol": "TCP", "icmp": {"type": 8}},
     "icmp", "needs the rule's protocol set to ICMP or ICMPv6"),
    ({"action": "Allow", "icmp": {"type": 8}}, "icmp", "needs the rule's protocol"),
    ({"action": "Allow", "protocol": "ICMP", "icmp": {"type": 255}},
     "icmp.type", "255 is not a valid ICMP type (0-254)"),
    ({"action": "Allow", "protocol": "ICMP", "icmp": {"type": 3, "code": 256}},
     "icmp.code", "256 is not a valid ICMP code (0-255)"),
    ({"action": "Allow", "protocol": "ICMP", "icmp": {"code": 1}},
     "icmp.code", "1 is not allowed without an ICMP type"),
    ({"action": "Allow", "protocol": "ICMP", "notICMP": {"code": 1}},
     "notICMP.code", "is not allowed without an ICMP type"),
    ({"action": "Allow", "protocol": "ICMP", "ipVersion": 6},
     "ipVersion", "6 does not match protocol ICMP (which needs ipVersion 4)"),
    ({"action": "Allow", "notProtocol": "ICMPv6", "ipVersion": 4},
     "ipVersion", "4 does not match notProtocol ICMPv6 (which needs ipVersion 6)"),
    ({"action": "Allow", "protocol": 1, "ipVersion": 6}, "ipVersion", "does not match protocol"),
    ({"action": "Allow", "source": {"nets": ["10.0.0.0/8", "bad"]}},
     "source.nets[1]", '"bad" is not a valid CIDR'),
    ({"action": "Allow", "source": {"nets": ["10.0.0.1"]}},
     "source.nets[0]", "rule nets need a prefix length"),
    ({"action": "Allow", "destination": {"notNets": ["10.0.0.1/24"]}},
     "destination.notNets[0]", "host bits are set"),
    ({"action": "Allow", "ipVersion": 6, "destination": {"nets": ["10.0.0.0/8"]}},
     "destination.nets[0]", "is an IPv4 CIDR but the rule has ipVersion 6"),
    ({"action": "Allow", "source": {"nets": ["10.0.0.0/8"]}, "destination": {"notNets": ["fd00::/8"]}},
     "destination.notNets[0]", "is an IPv6 CIDR but the rule also has IPv4 CIDRs"),
    ({"action": "Allow", "source": {"nets": ["10.0.0.0/8", "fd00::/8"]}},
     "source.nets[1]", "one IP version per rule"),
    ({"action": "Allow", "source": {"notNets": ["0.0.0.0/0"]}},
     "source.notNets[0]", "a negated catch-all CIDR matches no traffic"),
    ({"action": "Allow", "destination": {"notNets": ["::/0"]}},
     "destination.notNets[0]", "catch-all"),
    ({"action": "Allow", "source": {"nets": [f"10.0.{i // 256}.{i % 256}/32" for i in range(257)]}},
     "source.nets", "has too many nets (257, at most 256)"),
    ({"action": "Allow", "source": {"selector": "a == "}}, "source.selector", "is not a valid selector"),
    ({"action": "Allow", "destination": {"notSelector": "has("}},
     "destination.notSelector", "is not a valid selector"),
    ({"action": "Allow", "source": {"namespaceSelector": "a in {"}},
     "source.namespaceSelector", "is not a valid selector"),
    ({"action": "Allow", "source": {"selector": "x" * 1025}},
     "source.selector", "is too long for a selector"),
    ({"action": "Allow", "source": {"selector": "global()"}},
     "source.selector", "global() can only be used in an EntityRule namespaceSelector"),
    ({"action": "Allow", "source": {"namespaceSelector": "global() || has(a)"}},
     "source.namespaceSelector", "global() cannot be combined with other selectors"),
    ({"action": "Allow", "source": {"serviceAccounts": {"selector": "!!("}}},
     "source.serviceAccounts.selector", "is not a valid selector"),
    ({"action": "Allow", "source": {"services": {"namespace": "x"}}},
     "source.services", "must specify a service name"),
    ({"action": "Allow", "source": {"services": {"name": "Bad_Name"}}},
     "source.services.name", "is not a valid name"),
    ({"action": "Allow", "source": {"services": {"name": "web"}, "selector": "a == 'b'"}},
     "source.selector", "cannot be combined with services"),
    ({"action": "Allow", "source": {"services": {"name": "web"}, "nets": ["10.0.0.0/8"]}},
     "source.nets", "cannot be combined with services"),
    ({"action": "Allow", "source": {"services": {"name": "web"}, "namespaceSelector": "all()"}},
     "source.namespaceSelector", "cannot be combined with services"),
    ({"action": "Allow", "source": {"services": {"name": "web"},
                                    "serviceAccounts": {"names": ["a"]}}},
     "source.serviceAccounts", "cannot be combined with services"),
    ({"action": "Deny", "http": {"methods": ["GET"]}},
     "http", "an http match is only valid on Allow rules"),
    ({"action": "Allow", "protocol": "UDP", "http": {"methods": ["GET"]}},
     "protocol", '"UDP" is not allowed with an http match'),
    ({"action": "Allow", "http": {"methods": ["GET", "GET"]}},
     "http.methods[1]", '"GET" is listed more than once'),
    ({"action": "Allow", "http": {"paths": [{"exact": "/a", "prefix": "/b"}]}},
     "http.paths[0].prefix", "set exactly one of exact, prefix"),
    ({"action": "Allow", "http": {"paths": [{}]}}, "http.paths[0]", "set exactly one"),
    ({"action": "Allow", "http": {"paths": [{"exact": "/a"}, {"prefix": "no-slash"}]}},
     "http.paths[1].prefix", "must start with '/'"),
    ({"action": "Allow", "http": {"paths": [{"exact": "/a?b=c"}]}},
     "http.paths[0].exact", "not contain '?', '#' or spaces"),
    ({"action": "Allow", "http": {"methods": [str(i) for i in range(21)]}},
     "http.methods", "has too many methods (21, at most 20)"),
    ({"action": "Allow", "metadata": {"annotations": {"bad key!": "v"}}},
     "metadata.annotations.bad key!", "is not a valid annotation key"),
    ({"action": "Allow", "source": {"colour": "red"}}, "source.colour", "is not a known field"),
]


@pytest.mark.parametrize("rule, path, reason", INVALID_RULES)
def test_invalid_rule_names_exact_field(rule, path, reason):
    err = _error(_gnp(rule))
    assert err.kind == "GlobalNetworkPolicy" and err.name == "allow-dns"
    assert err.path == f"spec.ingress[0].{path}"
    assert reason in err.reason, str(err)


def test_error_message_format():
    err = _error(_gnp({"action": "Allow"}, {"action": "Allow", "protocol": "UDP",
                                            "destination": {"ports": [53, 70000]}}))
    assert str(err) == ('GlobalNetworkPolicy "allow-dns": spec.ingress[1].destination.ports[1]: '
                        '70000 is not a valid port (1-65535)')


def test_error_in_egress_rule_names_egress():
    err = _error(_gnp(egress=[{"action": "Allow"}, {"action": "Nope"}]))
    assert err.path == "spec.egress[1].action"
