"""Unit tests of the pieces: rule resolution, selector scoping, label restrictions and the
label index's inheritance and incremental matching."""

from __future__ import annotations

import re

from calico.api import validate
from calico.felix import messages as m
from calico.felix.calc.labelindex import LabelIndex, restrictions
from calico.felix.calc.rules import resolve_rules
from calico.felix.calc.selectors import entity_selectors, policy_selector
from calico.selector import parse

from .support import entity, gnp, np


def _rules(*rules, namespace=""):
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
           "metadata": {"name": "p"}, "spec": {"selector": "all()", "ingress": list(rules)}}
    spec = validate(doc).spec
    inbound, _, sets = resolve_rules("p", spec.ingress, None, namespace)
    return inbound, sets


def test_ports_protocols_icmp_and_families():
    (tcp,), _ = _rules({"action": "Allow", "protocol": "TCP",
                        "destination": {"ports": [80, "8000:8080"], "notPorts": [22]}})
    assert tcp.protocol == 6 and tcp.dst_ports == ((80, 80), (8000, 8080))
    assert tcp.not_dst_ports == ((22, 22),) and tcp.ip_version is None
    (icmp,), _ = _rules({"action": "Deny", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}})
    assert (icmp.action, icmp.protocol, icmp.icmp_type, icmp.icmp_code, icmp.ip_version) == (
        m.Action.DENY, 1, 8, 0, 4)
    (v6,), _ = _rules({"action": "Allow", "source": {"nets": ["fd00::/64"]}})
    assert v6.ip_version == 6 and v6.src_nets == ("fd00::/64",)
    (udp,), sets = _rules({"action": "Allow", "protocol": "UDP",
                           "destination": {"selector": "a == 'b'", "ports": ["dns", 53]}})
    (np_set,) = udp.dst_named_port_ip_set_ids
    assert sets[np_set].protocol == "udp" and sets[np_set].named_port == "dns"
    assert udp.dst_ports == ((53, 53),) and len(udp.dst_ip_set_ids) == 1
    assert all(len(i) == 32 and re.fullmatch("[sn]-[a-z0-9]+", i) for i in sets)


def test_selectors_are_scoped_as_calico_does():
    pos, neg = entity_selectors(entity(selector="a == 'b'", notSelector="c == 'd'"), "ns1")
    assert neg is None
    assert pos == parse("((projectcalico.org/namespace == 'ns1') && (a == 'b')) && (!(c == 'd'))")
    # a notSelector alone still scopes a NetworkPolicy's rule to its namespace, and the
    # (then positive) namespace selector absorbs it
    pos, neg = entity_selectors(entity(notSelector="c == 'd'"), "ns1")
    assert pos == parse("(projectcalico.org/namespace == 'ns1') && (!(c == 'd'))")
    assert neg is None
    assert entity_selectors(entity(notSelector="c == 'd'"), "") == (None, parse("c == 'd'"))
    pos, _ = entity_selectors(entity(namespaceSelector="all()"), "ns1")
    assert pos == parse("has(projectcalico.org/namespace)")
    pos, _ = entity_selectors(entity(namespaceSelector="global()", selector="x == 'y'"), "")
    assert pos == parse("(!has(projectcalico.org/namespace)) && (x == 'y')")
    pos, _ = entity_selectors(entity(namespaceSelector="team in {'a', 'b'}",
                                     serviceAccounts={"names": ["sa"], "selector": "k == 'v'"}),
                              "")
    assert pos == parse("(pcns.team in {'a', 'b'}) && (((pcsa.k == 'v') && "
                        "(projectcalico.org/serviceaccount in {'sa'})))")
    assert entity_selectors(entity(), "ns1") == (None, None)
    assert entity_selectors(None, "ns1") == (None, None)
    _, ns_policy = np("p", "ns1", "a == 'b'")
    assert policy_selector(ns_policy.spec, "ns1") == parse(
        "(a == 'b') && (projectcalico.org/namespace == 'ns1')")
    _, global_policy = gnp("g", "a == 'b'", namespaceSelector="team == 'x'",
                           serviceAccountSelector="role == 'y'")
    assert policy_selector(global_policy.spec, "") == parse(
        "(a == 'b') && (pcns.team == 'x') && (pcsa.role == 'y')")


def test_restrictions():
    assert restrictions(parse("a == 'x' && has(b)")) == {"a": {"x"}, "b": None}
    assert restrictions(parse("a in {'x', 'y'} && a == 'x'")) == {"a": {"x"}}
    assert restrictions(parse("a == 'x' || a == 'y'")) == {"a": {"x", "y"}}
    assert restrictions(parse("a == 'x' || b == 'y'")) == {}
    assert restrictions(parse("!has(a)")) == {} == restrictions(parse("a != 'x'"))


def test_label_index_inheritance_and_incremental_matching():
    events = []
    index = LabelIndex(lambda s, i: events.append(("+", s, i)),
                       lambda s, i: events.append(("-", s, i)))
    index.update_selector("s-env", parse("env == 'prod'"))
    index.update_selector("s-none", parse("!has(app)"))
    index.update_item("ep", {"app": "web"}, ("p1", "p2"))
    assert events == []
    index.update_parent("p2", {"env": "prod"})
    assert events == [("+", "s-env", "ep")]
    index.update_parent("p1", {"env": "dev"})  # the first parent wins
    assert events[-1] == ("-", "s-env", "ep")
    index.update_item("ep", {"app": "web", "env": "prod"}, ("p1", "p2"))  # own labels win
    assert events[-1] == ("+", "s-env", "ep")
    index.update_item("ep", {"env": "prod"}, ())
    assert events[-1] == ("+", "s-none", "ep")
    index.update_selector("s-env", parse("env == 'dev'"))
    assert events[-1] == ("-", "s-env", "ep")
    index.remove_item("ep")
    assert events[-1] == ("-", "s-none", "ep")
    assert index.matches("s-none") == frozenset()
