"""Tiers apply in Calico's order: by the Tier's `order` (unset last), then by name."""

import random

from calico import api
from calico.felix import messages as m
from calico.felix.calc import CalcGraph

from .support import HOST, PREFIX, Dataplane, gnp, wep, wep_name

WEB = wep("web1", ["10.0.0.1/32"], {"app": "web"})


def tier(name, order=None):
    spec = {} if order is None else {"order": order}
    return PREFIX + "tiers/" + name, api.validate(
        {"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": name},
         "spec": spec})


def in_tier(name, tier_name):
    key, res = gnp(name, "app == 'web'")
    doc = res.to_dict()
    doc["spec"]["tier"] = tier_name
    return key, api.validate(doc)


POLICIES = [in_tier("p-default", "default"), in_tier("p-admin", "kube-admin"),
            in_tier("p-zeta", "zeta"), in_tier("p-alpha", "alpha"),
            in_tier("p-early", "early"), in_tier("p-none", "none")]
TIERS = [tier("zeta", 500), tier("alpha", 500), tier("early", 10), tier("none")]


def tier_names(updates):
    graph = CalcGraph(HOST)
    for key, value in updates:
        graph.on_update(key, value)
    dp = Dataplane().apply_all(graph.flush())
    ep = dp.endpoints[m.WorkloadEndpointID("default", wep_name("web1"))]
    return [t.name for t in ep.tiers]


def test_tiers_by_order_then_name_whatever_the_arrival_order():
    expected = ["early", "alpha", "zeta", "kube-admin", "default", "none"]
    updates = [WEB, *POLICIES, *TIERS]
    shuffler = random.Random(21)
    for _ in range(40):
        assert tier_names(updates) == expected
        shuffler.shuffle(updates)
    assert tier_names(list(reversed(updates))) == expected


def test_a_tier_without_a_resource_goes_last_and_a_change_of_order_reorders():
    graph = CalcGraph(HOST)
    for key, value in (WEB, *POLICIES):
        graph.on_update(key, value)
    dp = Dataplane().apply_all(graph.flush())
    ep_id = m.WorkloadEndpointID("default", wep_name("web1"))
    assert [t.name for t in dp.endpoints[ep_id].tiers] == [
        "kube-admin", "default", "alpha", "early", "none", "zeta"]
    graph.on_update(*tier("zeta", 1))
    dp.apply_all(graph.flush())
    assert [t.name for t in dp.endpoints[ep_id].tiers][:2] == ["zeta", "kube-admin"]
    graph.on_update(tier("zeta")[0], None)
    dp.apply_all(graph.flush())
    assert [t.name for t in dp.endpoints[ep_id].tiers][-1] == "zeta"
