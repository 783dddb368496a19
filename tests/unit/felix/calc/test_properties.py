"""Property test: random update sequences through the incremental graph agree with a
from-scratch recomputation (bruteforce.py) after every flush, and every message respects
the ordering guarantees (support.Dataplane asserts them)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calico.felix.calc import CalcGraph

from .bruteforce import actual_subset, expected_state
from .support import HOST, Dataplane, allow_from, gnp, hep, netset, np, profile, wep

SELECTORS = ["all()", "app == 'web'", "app == 'db'", "has(env)", "!has(app)",
             "app in {'web', 'db'} && env == 'prod'", "env != 'prod'",
             "app == 'web' || env == 'prod'"]
RULES = [allow_from(s) for s in SELECTORS] + [
    {"action": "Allow", "source": {"namespaceSelector": "team == 'a'"}},
    {"action": "Allow", "source": {"namespaceSelector": "all()", "selector": "app == 'web'"}},
    {"action": "Deny", "source": {"notSelector": "app == 'db'"}},
    {"action": "Allow", "source": {"selector": "has(app)", "notSelector": "env == 'prod'"}},
    {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http", 443]}},
    {"action": "Allow", "protocol": "TCP",
     "destination": {"selector": "app == 'web'", "ports": ["http"]}},
    {"action": "Allow", "source": {"nets": ["10.0.0.0/8"]}},
    {"action": "Deny", "destination": {"notNets": ["fd00::/16"]}},
    {"action": "Allow", "source": {"serviceAccounts": {"names": ["sa1"]}}},
]
LABELS = st.sampled_from([{}, {"app": "web"}, {"app": "db"}, {"app": "web", "env": "prod"},
                          {"env": "prod"}, {"env": "dev", "app": "db"}])
IPS = ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "fd00::1/128"]
NODES = st.sampled_from([HOST, HOST, "node-2"])
rules = st.lists(st.sampled_from(RULES), max_size=2)
orders = st.sampled_from([None, 1, 5])

FLOATING = {"10.0.0.1/32": "172.16.0.1", "10.0.0.2/32": "172.16.0.1",
            "10.0.0.3/32": "172.16.0.3", "fd00::1/128": "2001:db8::1"}


def _nats(ips: list[str]) -> list[dict]:
    """ipNATs for an endpoint's addresses (two addresses share one external address)."""
    return [{"internalIP": ip.split("/")[0], "externalIP": FLOATING[ip]} for ip in ips]


weps = st.builds(
    lambda pod, node, ns, labels, ips, profiles, named, sa, nat: wep(
        pod, ips, labels, node=node, namespace=ns, profiles=profiles,
        ports=[{"name": "http", "protocol": "TCP", "port": 8080}] if named else None,
        **({"serviceAccountName": "sa1"} if sa else {}),
        **({"ipNATs": _nats(ips)} if nat and ips else {})),
    st.sampled_from(["a", "b", "c", "d"]), NODES, st.sampled_from(["ns1", "ns2"]), LABELS,
    st.lists(st.sampled_from(IPS), max_size=2, unique=True),
    st.lists(st.sampled_from(["prof-a", "prof-b"]), max_size=2, unique=True),
    st.booleans(), st.booleans(), st.booleans())
heps = st.builds(
    lambda name, node, labels, ips, profiles: hep(name, ips, labels, node=node,
                                                  profiles=profiles),
    st.sampled_from(["h1", "h2"]), NODES, LABELS,
    st.lists(st.sampled_from(["10.9.0.1", "10.0.0.1", "fd00::9"]), max_size=2, unique=True),
    st.lists(st.sampled_from(["prof-a"]), max_size=1))
profiles = st.one_of(
    st.builds(profile, st.sampled_from(["prof-a", "prof-b"]),
              st.sampled_from([{}, {"app": "web"}, {"env": "prod"}]), rules, rules),
    st.builds(profile, st.sampled_from(["kns.ns1", "kns.ns2"]),
              st.sampled_from([{}, {"pcns.team": "a"}, {"pcns.team": "b"}])))
gnps = st.one_of(
    st.builds(lambda name, sel, ing, eg, order: gnp(name, sel, ing, eg, order),
              st.sampled_from(["g1", "g2", "g3"]), st.sampled_from(SELECTORS), rules, rules,
              orders),
    st.builds(lambda sel, ing: gnp("g-untracked", sel, ing, doNotTrack=True,
                                   applyOnForward=True),
              st.sampled_from(SELECTORS), rules))
nps = st.builds(lambda name, ns, sel, ing, eg, order: np(name, ns, sel, ing, eg, order),
                st.sampled_from(["n1", "n2"]), st.sampled_from(["ns1", "ns2"]),
                st.sampled_from(SELECTORS), rules, rules, orders)
netsets = st.builds(
    lambda name, ns, nets, labels: netset(name, nets, labels, ns),
    st.sampled_from(["s1", "s2"]), st.sampled_from(["", "ns1"]),
    st.lists(st.sampled_from(["10.1.0.0/16", "10.0.0.1/32", "fd00:1::/64"]), max_size=2),
    LABELS)
resources = st.one_of(weps, weps, heps, profiles, gnps, gnps, nps, netsets)
sometimes = st.integers(0, 3).map(lambda n: n == 0)  # deletions and flushes: 1 in 4
ops = st.lists(st.tuples(resources, sometimes, sometimes), min_size=5, max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_incremental_graph_matches_brute_force(ops):
    graph = CalcGraph(HOST)
    graph.on_status("in-sync")
    dataplane = Dataplane()
    state: dict = {}
    for (key, res), delete, flush in ops:
        if delete:
            state.pop(key, None)
            graph.on_update(key, None)
        else:
            state[key] = res
            graph.on_update(key, res)
        if flush:
            dataplane.apply_all(graph.flush())
            assert actual_subset(dataplane.state()) == expected_state(state, HOST)
    dataplane.apply_all(graph.flush())
    assert dataplane.in_sync
    assert actual_subset(dataplane.state()) == expected_state(state, HOST)
