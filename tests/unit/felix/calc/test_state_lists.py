"""State-list tests (STYLE.md): each list of datastore states is applied in order, reversed
and shuffled (and with each transition's updates shuffled); after every state the folded
dataplane state must equal the one a fresh graph computes from that state alone, and the
brute-force expectation. Each list is also run with every update delivered twice (Calico's
afterEachKVAndDupe expansion): the output must be identical, message for message, to a graph
that got each update once. A few states also carry hand-written expectations."""

from __future__ import annotations

import random

import pytest

from calico.felix import messages as m
from calico.felix.calc import CalcGraph

from .bruteforce import actual_subset, expected_state
from .support import (
    HOST,
    Dataplane,
    allow_from,
    gnp,
    hep,
    netset,
    np,
    profile,
    resource,
    wep,
    wep_name,
)

WEB1 = wep("web1", ["10.0.0.1/32"], {"app": "web"}, namespace="ns1", profiles=["prof-a"],
           ports=[{"name": "http", "protocol": "TCP", "port": 8080}])
WEB2_REMOTE = wep("web2", ["10.0.0.2/32", "fd00::2/128"], {"app": "web"}, node="node-2",
                  namespace="ns1", ports=[{"name": "http", "protocol": "TCP", "port": 80}])
DB1 = wep("db1", ["10.0.0.3/32"], {"app": "db"}, namespace="ns2")
DB1_RELABELLED = wep("db1", ["10.0.0.3/32"], {"app": "web"}, namespace="ns2")
SHARED_IP = wep("dup", ["10.0.0.1/32"], {"app": "web"}, node="node-2", namespace="ns1")
HOST_EP = hep("eth0", ["192.168.0.1"], {"role": "host"})
PROF_A = profile("prof-a", {"env": "prod"}, ingress=[allow_from("env == 'prod'")])
KNS1 = profile("kns.ns1", {"pcns.team": "a"})
POL_WEB = gnp("web", "app == 'web'", ingress=[allow_from("app == 'db'")], order=10)
POL_ALL = gnp("all", "all()", ingress=[
    {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}}], order=5)
POL_NS = np("ns-only", "ns1", "all()", ingress=[allow_from("env == 'prod'"),
                                                {"action": "Allow",
                                                 "source": {"namespaceSelector": "team == 'a'"}}])
POL_HOST = gnp("untracked", "role == 'host'", ingress=[allow_from("all()")],
               doNotTrack=True, applyOnForward=True)
POL_PREDNAT = gnp("prednat", "role == 'host'", ingress=[allow_from("app == 'web'")],
                  preDNAT=True, applyOnForward=True)
POL_FWD = gnp("forward", "role == 'host'", egress=[{"action": "Allow"}], applyOnForward=True,
              order=1)
NETSET = netset("ext", ["203.0.113.0/24"], {"app": "db"})
NETSET_NS = netset("ns-ext", ["198.51.100.0/24"], {"env": "prod"}, namespace="ns1")
NODE = resource("Node", HOST, {"bgp": {"ipv4Address": "10.10.0.1/24"}})
POOL = resource("IPPool", "pool", {"cidr": "10.0.0.0/16", "natOutgoing": True})
FELIX_DEFAULT = resource("FelixConfiguration", "default", {"logSeverityScreen": "Info"})
FELIX_NODE = resource("FelixConfiguration", f"node.{HOST}", {"logSeverityScreen": "Debug"})


def state(*items):
    return dict(items)


STATE_LISTS = {
    "policies and endpoints": [
        state(),
        state(WEB1, POL_WEB),
        state(WEB1, WEB2_REMOTE, DB1, POL_WEB, POL_ALL, PROF_A),
        state(WEB1, WEB2_REMOTE, DB1_RELABELLED, POL_WEB, POL_ALL, PROF_A, NETSET),
        state(WEB1, SHARED_IP, POL_WEB, POL_ALL, NETSET),
        state(DB1, POL_WEB, POL_ALL),
    ],
    "namespaces and profiles": [
        state(WEB1, DB1, POL_NS),
        state(WEB1, DB1, POL_NS, KNS1, PROF_A, NETSET_NS),
        state(WEB1, WEB2_REMOTE, POL_NS, KNS1, NETSET_NS),
        state(WEB1, POL_NS, PROF_A),
    ],
    "host endpoints": [
        state(HOST_EP, POL_HOST, POL_PREDNAT, POL_FWD, WEB2_REMOTE),
        state(HOST_EP, POL_FWD, WEB1),
        state(HOST_EP, POL_HOST, POL_FWD, WEB1, POL_ALL),
    ],
    "hosts, pools and config": [
        state(NODE, POOL, FELIX_DEFAULT),
        state(NODE, FELIX_DEFAULT, FELIX_NODE),
        state(POOL),
    ],
}


def expansions(states, seed):
    rng = random.Random(seed)
    shuffled = list(states)
    rng.shuffle(shuffled)
    return {"in order": list(states), "reversed": list(reversed(states)),
            "shuffled": shuffled}


def fresh(state_dict):
    graph = CalcGraph(HOST)
    for key, value in state_dict.items():
        graph.on_update(key, value)
    graph.on_status("in-sync")
    return Dataplane().apply_all(graph.flush()).state()


def deltas(current, target, rng):
    """The syncer updates that take the datastore from `current` to `target`."""
    updates = [(k, v) for k, v in target.items() if current.get(k) is not v]
    updates += [(k, None) for k in current if k not in target]
    if rng is not None:
        rng.shuffle(updates)
    return updates


def transition(graph, current, target, rng):
    for key, value in deltas(current, target, rng):
        graph.on_update(key, value)


@pytest.mark.parametrize("name", STATE_LISTS)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shuffle_updates", [False, True])
def test_state_lists(name, seed, shuffle_updates):
    for order, states in expansions(STATE_LISTS[name], seed).items():
        rng = random.Random(seed) if shuffle_updates else None
        graph = CalcGraph(HOST)
        graph.on_status("in-sync")
        dataplane = Dataplane()
        current: dict = {}
        for i, target in enumerate(states + [state()]):  # always end by deleting everything
            transition(graph, current, target, rng)
            current = target
            dataplane.apply_all(graph.flush())
            got = dataplane.state()
            assert got == fresh(target), f"{name} / {order}: state {i}"
            assert actual_subset(got) == expected_state(target, HOST), f"{order}: state {i}"
        assert dataplane.in_sync
        assert not dataplane.ipsets and not dataplane.endpoints and not dataplane.policies


def _deliver_twice(once, twice, updates, flush_each):
    """Feed `updates` once to `once` and twice to `twice`, then flush both; return `once`'s
    output after checking that `twice` emitted exactly the same messages."""
    out = []
    for key, value in updates:
        once.on_update(key, value)
        twice.on_update(key, value)
        if flush_each:  # Calico's order: update, flush, the same update again, flush
            expected = once.flush()
            assert twice.flush() == expected, f"first delivery of {key}"
            out += expected
        twice.on_update(key, value)
        if flush_each:
            assert twice.flush() == [], f"second delivery of {key} changed something"
    rest = once.flush()
    assert twice.flush() == rest, "the duplicates changed the output"
    return out + rest


@pytest.mark.parametrize("name", STATE_LISTS)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("flush_each", [True, False], ids=["flush-each-update", "flush-each-state"])
def test_state_lists_with_every_update_sent_twice(name, seed, flush_each):
    for order, states in expansions(STATE_LISTS[name], seed).items():
        rng = random.Random(seed)
        once, twice = CalcGraph(HOST), CalcGraph(HOST)
        once.on_status("in-sync")
        twice.on_status("in-sync")
        dataplane = Dataplane()
        current: dict = {}
        for i, target in enumerate(states + [state()]):
            out = _deliver_twice(once, twice, deltas(current, target, rng), flush_each)
            current = target
            got = dataplane.apply_all(out).state()
            assert got == fresh(target), f"{name} / {order}: state {i}"
            assert actual_subset(got) == expected_state(target, HOST), f"{order}: state {i}"
        assert dataplane.in_sync and not dataplane.endpoints


# ---- hand-written expectations for some states ------------------------------------------


def _members(dp: Dataplane, rule_sets: tuple[str, ...]) -> set[str]:
    (set_id,) = rule_sets
    return dp.ipsets[set_id]


def test_ip_sets_follow_selectors_and_are_reference_counted():
    dp = Dataplane().apply_all([])
    graph = CalcGraph(HOST)
    for key, value in (WEB1, DB1, POL_WEB, NETSET, SHARED_IP):
        graph.on_update(key, value)
    dp.apply_all(graph.flush())
    web = dp.policies[m.PolicyID("web")]
    src = web.inbound_rules[0].src_ip_set_ids
    assert _members(dp, src) == {"10.0.0.3/32", "203.0.113.0/24"}
    # db1 becomes web: it leaves the set, and its policy now applies to it too
    graph.on_update(*DB1_RELABELLED)
    dp.apply_all(graph.flush())
    assert _members(dp, src) == {"203.0.113.0/24"}
    ep = dp.endpoints[m.WorkloadEndpointID("ns2", wep_name("db1"))]
    assert ep.tiers == (m.TierInfo("default", (m.PolicyID("web"),), ()),)


def test_shared_address_stays_until_both_endpoints_are_gone():
    graph = CalcGraph(HOST)
    sel = gnp("src-web", "app == 'db'", ingress=[allow_from("app == 'web'")])
    for key, value in (DB1, sel, WEB1, SHARED_IP):
        graph.on_update(key, value)
    dp = Dataplane().apply_all(graph.flush())
    src = dp.policies[m.PolicyID("src-web")].inbound_rules[0].src_ip_set_ids
    assert _members(dp, src) == {"10.0.0.1/32"}
    graph.on_update(WEB1[0], None)
    dp.apply_all(graph.flush())
    assert _members(dp, src) == {"10.0.0.1/32"}
    graph.on_update(SHARED_IP[0], None)
    dp.apply_all(graph.flush())
    assert _members(dp, src) == set()


def test_policy_order_types_and_profiles():
    graph = CalcGraph(HOST)
    for key, value in (WEB1, POL_WEB, POL_ALL, POL_NS, PROF_A, KNS1):
        graph.on_update(key, value)
    dp = Dataplane().apply_all(graph.flush())
    ep = dp.endpoints[m.WorkloadEndpointID("ns1", wep_name("web1"))]
    assert ep.tiers == (m.TierInfo("default", (
        m.PolicyID("all"), m.PolicyID("web"), m.PolicyID("ns-only", "ns1")), ()),)
    assert ep.profile_ids == (m.ProfileID("prof-a"),)
    assert ep.ipv4_nets == ("10.0.0.1/32",) and ep.interface == "caliweb1"
    # the named port "http" of every endpoint (no selector: all endpoints)
    rule = dp.policies[m.PolicyID("all")].inbound_rules[0]
    assert rule.protocol == 6 and rule.dst_ports == ()
    assert _members(dp, rule.dst_named_port_ip_set_ids) == {"10.0.0.1,tcp:8080"}
    # NetworkPolicy rule selectors are scoped to the namespace; namespaceSelector uses pcns.
    ns_rules = dp.policies[m.PolicyID("ns-only", "ns1")].inbound_rules
    assert _members(dp, ns_rules[0].src_ip_set_ids) == {"10.0.0.1/32"}  # env=prod via prof-a
    assert _members(dp, ns_rules[1].src_ip_set_ids) == {"10.0.0.1/32"}  # ns1 has team=a


def test_host_endpoint_tiers():
    graph = CalcGraph(HOST)
    for key, value in (HOST_EP, POL_HOST, POL_PREDNAT, POL_FWD):
        graph.on_update(key, value)
    dp = Dataplane().apply_all(graph.flush())
    ep = dp.endpoints[m.HostEndpointID("eth0")]
    assert ep.expected_ipv4_addrs == ("192.168.0.1",)
    assert ep.untracked_tiers == (m.TierInfo("default", (m.PolicyID("untracked"),), ()),)
    assert ep.pre_dnat_tiers == (m.TierInfo("default", (m.PolicyID("prednat"),), ()),)
    assert ep.tiers == (m.TierInfo("default", (), (m.PolicyID("forward"),)),)
    assert ep.forward_tiers == ep.tiers
    assert dp.policies[m.PolicyID("untracked")].untracked


def test_pass_through_kinds_and_in_sync():
    graph = CalcGraph(HOST)
    for key, value in (NODE, POOL, FELIX_DEFAULT, FELIX_NODE):
        graph.on_update(key, value)
    graph.on_status("resync")
    out = graph.flush()
    assert m.InSync() not in out
    assert m.HostMetadataUpdate(HOST, "10.10.0.1/24") in out
    assert m.IPAMPoolUpdate("pool", "10.0.0.0/16", masquerade=True) in out
    assert m.ConfigUpdate({"logSeverityScreen": "Debug"}) in out
    graph.on_status("in-sync")
    assert graph.flush() == [m.InSync()]
    graph.on_status("in-sync")
    assert graph.flush() == []


def test_coalescing_between_flushes():
    graph = CalcGraph(HOST)
    graph.on_update(*WEB1)
    graph.on_update(*POL_WEB)
    graph.on_update(WEB1[0], None)
    graph.on_update(POL_WEB[0], None)
    assert graph.flush() == []


def test_allowed_ips_ranges_are_the_local_endpoints_addresses():
    """networking-calico's allowedIps (a port's allowed address pairs): its multi-address
    entries join the endpoint's routed / source addresses; IP-set membership stays the
    ipNetworks (where the single-address pairs already are)."""
    vip = wep("vip", ["10.0.0.7/32", "10.0.0.100/32"], {"app": "vip"},
              allowedIps=["10.0.0.100/32", "10.0.1.0/28", "fd00:1::/120"],
              allowSpoofedSourcePrefixes=["10.0.1.0/28", "fd00:1::/120"])
    sel = gnp("from-vip", ingress=[allow_from("app == 'vip'")])
    graph = CalcGraph(HOST)
    for key, value in (vip, sel):
        graph.on_update(key, value)
    dp = Dataplane().apply_all(graph.flush())
    ep = dp.endpoints[m.WorkloadEndpointID("default", wep_name("vip"))]
    assert ep.ipv4_nets == ("10.0.0.7/32", "10.0.0.100/32", "10.0.1.0/28")
    assert ep.ipv6_nets == ("fd00:1::/120",)
    src = dp.policies[m.PolicyID("from-vip")].inbound_rules[0].src_ip_set_ids
    assert _members(dp, src) == {"10.0.0.7/32", "10.0.0.100/32"}
