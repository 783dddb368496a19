"""Address spaces in the calc graph: a space endpoint is its translated address (P::A) in IP
sets and in its message, with the space and prefix for the translator; its policies are
rendered per space (IPv4 CIDRs in translated form, inside P); an unknown space programs
nothing. The final dataplane state is the same whatever order the datastore states arrive in."""

import itertools
import random

from calico import api
from calico.felix import messages as m
from calico.felix.calc.graph import CalcGraph

from .support import HOST, PREFIX, Dataplane, gnp, resource, wep, wep_name

BLUE, GREEN = "64:ff9b:1::/96", "64:ff9b:1::1:0:0/96"


def space(name, prefix):
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "AddressSpace",
           "metadata": {"name": name}, "spec": {"translationPrefix": prefix}}
    return PREFIX + "addressspaces/" + name, api.validate(doc)


def pool(name, cidr, space_name):
    return resource("IPPool", name, {"cidr": cidr, "addressSpace": space_name})


def _states():
    deny = gnp("deny-a2", "all()", egress=[
        {"action": "Deny", "protocol": "ICMP", "icmp": {"type": 8},
         "destination": {"nets": ["10.200.0.6/32"]}},
        {"action": "Allow", "destination": {"nets": ["fd00::/8"]}},
        {"action": "Allow"}])
    return [space("blue", BLUE), space("green", GREEN), pool("pb", "10.200.0.0/24", "blue"),
            wep("a1", ["10.200.0.5/32"], {"app": "x"}, addressSpace="blue", mac="ee:00:00:00:00:a1"),
            wep("b1", ["10.200.0.5/32"], {"app": "x"}, addressSpace="green"),
            wep("a2", ["10.200.0.6/32"], {"app": "x"}, node="node-2", addressSpace="blue"),
            deny, gnp("sel", "all()", ingress=[{"action": "Allow",
                                               "source": {"selector": "app == 'x'"}}])]


def _run(updates):
    graph = CalcGraph(HOST)
    for key, value in updates:
        graph.on_update(key, value)
    graph.on_status("in-sync")
    return Dataplane().apply_all(graph.flush())


def _expect(dp):
    a1 = dp.endpoints[m.WorkloadEndpointID("default", wep_name("a1"))]
    b1 = dp.endpoints[m.WorkloadEndpointID("default", wep_name("b1"))]
    assert (a1.ipv4_nets, a1.ipv6_nets) == ((), ("64:ff9b:1::ac8:5/128",))
    assert (a1.address_space, a1.translation_prefix, a1.xlat_ipv4) == ("blue", BLUE,
                                                                      "10.200.0.5")
    assert b1.ipv6_nets == ("64:ff9b:1::1:ac8:5/128",) and b1.address_space == "green"
    (tier,) = a1.tiers
    assert set(tier.egress_policies) == {m.PolicyID("deny-a2@blue")}
    deny = dp.policies[m.PolicyID("deny-a2@blue")]
    first = deny.outbound_rules[0]
    assert first.dst_nets == ("64:ff9b:1::ac8:6/128",)
    assert (first.ip_version, first.protocol, first.icmp_type) == (6, 58, 128)
    assert len(deny.outbound_rules) == 2  # the IPv6-CIDR rule matches nothing in a space
    green_deny = dp.policies[m.PolicyID("deny-a2@green")]
    assert green_deny.outbound_rules[0].dst_nets == ("64:ff9b:1::1:ac8:6/128",)
    members = set().union(*dp.ipsets.values())
    assert {"64:ff9b:1::ac8:5/128", "64:ff9b:1::1:ac8:5/128",
            "64:ff9b:1::ac8:6/128"} <= members
    assert not any(x.startswith("10.200.") for x in members)
    assert "pb" not in dp.pools  # a space pool is not an IPv4 pool of the host


def test_space_endpoints_any_order():
    states = _states()
    orders = [states, states[::-1]] + [random.Random(i).sample(states, len(states))
                                       for i in range(6)]
    for order in orders:
        _expect(_run(order))


def test_unknown_space_programs_nothing_until_it_exists():
    graph = CalcGraph(HOST)
    key, a1 = wep("a1", ["10.200.0.5/32"], addressSpace="blue")
    graph.on_update(key, a1)
    dp = Dataplane().apply_all(graph.flush())
    assert dp.endpoints == {} and not set(itertools.chain(*dp.ipsets.values()))
    graph.on_update(*space("blue", BLUE))
    dp.apply_all(graph.flush())
    assert len(dp.endpoints) == 1
    graph.on_update(space("blue", BLUE)[0], None)
    dp.apply_all(graph.flush())
    assert dp.endpoints == {}


def test_space_rule_translation():
    import ipaddress

    from calico.felix.calc.spaces import space_rule

    p = ipaddress.IPv6Network(BLUE)
    allow = m.Action.ALLOW
    (r,) = space_rule(m.Rule(allow, ip_version=4, src_nets=("10.0.0.0/8",),
                             not_dst_nets=("0.0.0.0/0",)), p)
    assert (r.ip_version, r.src_nets, r.not_dst_nets) == (6, ("64:ff9b:1::a00:0/104",),
                                                           ("64:ff9b:1::/96",))
    assert space_rule(m.Rule(allow, dst_nets=("fd00::/8",)), p) == []
    assert space_rule(m.Rule(allow, ip_version=6), p) == []
    assert space_rule(m.Rule(allow, protocol=58), p) == []
    (port,) = space_rule(m.Rule(allow, protocol=1, icmp_type=3, icmp_code=3), p)
    assert (port.protocol, port.icmp_type, port.icmp_code) == (58, 1, 4)
    (frag,) = space_rule(m.Rule(allow, protocol=1, icmp_type=3, icmp_code=4), p)
    assert (frag.icmp_type, frag.icmp_code) == (2, 0)
    assert {(x.icmp_type, x.icmp_code)
            for x in space_rule(m.Rule(allow, protocol=1, icmp_type=3), p)} == \
        {(1, 0), (1, 1), (1, 4), (2, 0), (4, 1)}
    (ttl,) = space_rule(m.Rule(allow, protocol=1, icmp_type=11, icmp_code=0), p)
    assert (ttl.icmp_type, ttl.icmp_code) == (3, 0)
    assert space_rule(m.Rule(allow, protocol=1, icmp_type=13), p) == []  # never translated
    (not_echo,) = space_rule(m.Rule(allow, protocol=1, not_icmp_type=8), p)
    assert not_echo.not_icmp_type == 128
    assert space_rule(m.Rule(allow, protocol=1, not_icmp_type=3), p) == []
    (tcp,) = space_rule(m.Rule(allow, protocol=6, dst_ports=((80, 80),)), p)
    assert (tcp.protocol, tcp.dst_ports, tcp.ip_version) == (6, ((80, 80),), 6)
