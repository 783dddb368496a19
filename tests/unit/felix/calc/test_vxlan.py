"""The VXLAN resolver through the calc graph: VTEPs and routes to remote blocks in VXLAN pools,
CrossSubnet, borrowed addresses, and order independence (state lists in any order)."""

from __future__ import annotations

import hashlib
import itertools
import json
import random

from calico.felix import messages as m
from calico.felix.calc import CalcGraph
from calico.felix.calc.vxlan import vtep_mac

from .support import resource

ME = "node-1"


def node(name: str, addr: str, tunnel: str | None = None, mac: str | None = None):
    spec: dict = {"bgp": {"ipv4Address": addr}}
    if tunnel:
        spec["ipv4VXLANTunnelAddr"] = tunnel
    if mac:
        spec["vxlanTunnelMACAddr"] = mac
    return resource("Node", name, spec)


def pool(name: str, cidr: str, mode: str):
    return resource("IPPool", name, {"cidr": cidr, "vxlanMode": mode,
                                     "ipipMode": "Never"})


def block(cidr: str, host: str | None, allocs: dict[int, str] | None = None):
    """(key, decoded AllocationBlock JSON); allocs: ordinal -> node holding it."""
    size = 64
    attrs, allocations = [], [None] * size
    for ordinal, holder in sorted((allocs or {}).items()):
        attrs.append({"handle_id": f"h{ordinal}", "secondary": {"node": holder}})
        allocations[ordinal] = len(attrs) - 1
    key = "/calico/ipam/v2/assignment/ipv4/block/" + cidr.replace("/", "-")
    return key, json.loads(json.dumps({
        "cidr": cidr, "affinity": f"host:{host}" if host else None,
        "allocations": allocations, "unallocated": [], "attributes": attrs,
        "deleted": False}))


def state(updates) -> dict:
    """Feed the updates (in this order) and fold the VXLAN messages into a state dict."""
    graph = CalcGraph(ME)
    vteps: dict[str, m.VXLANTunnelEndpointUpdate] = {}
    routes: dict[str, m.RouteUpdate] = {}
    for key, value in updates:
        graph.on_update(key, value)
        for msg in graph.flush():
            match msg:
                case m.VXLANTunnelEndpointUpdate():
                    vteps[msg.node] = msg
                case m.VXLANTunnelEndpointRemove():
                    assert msg.node in vteps
                    assert not any(r.node == msg.node and r.vxlan for r in routes.values())
                    del vteps[msg.node]
                case m.RouteUpdate():
                    assert not msg.vxlan or msg.node in vteps, "route before its VTEP"
                    routes[msg.dst] = msg
                case m.RouteRemove():
                    del routes[msg.dst]
    return {"vteps": vteps, "routes": routes}


CLUSTER = [
    node(ME, "198.18.0.11/24", "10.65.0.0"),
    node("node-2", "198.18.0.12/24", "10.65.1.0"),           # same subnet as ME
    node("node-3", "198.18.1.13/24", "10.65.2.0", "02:00:00:00:00:03"),  # other subnet
    pool("vx", "10.65.0.0/16", "CrossSubnet"),
    pool("plain", "10.66.0.0/16", "Never"),
    block("10.65.0.0/26", ME, {0: ME, 5: "node-3"}),         # node-3 borrowed .5
    block("10.65.1.0/26", "node-2", {0: "node-2"}),
    block("10.65.2.0/26", "node-3", {0: "node-3", 9: ME}),    # we borrowed .9: ours
    block("10.66.0.0/26", "node-2"),                        # not a VXLAN pool: BIRD's
]


def test_crosssubnet_routes_and_vteps():
    out = state(CLUSTER)
    assert set(out["vteps"]) == {ME, "node-2", "node-3"}
    assert out["vteps"]["node-3"].mac == "02:00:00:00:00:03"
    assert out["vteps"]["node-2"] == m.VXLANTunnelEndpointUpdate(
        "node-2", "198.18.0.12", "10.65.1.0", vtep_mac("node-2"))
    assert out["routes"] == {
        "10.65.1.0/26": m.RouteUpdate("10.65.1.0/26", "node-2", "198.18.0.12", vxlan=False),
        "10.65.2.0/26": m.RouteUpdate("10.65.2.0/26", "node-3", "198.18.1.13", vxlan=True),
        "10.65.0.5/32": m.RouteUpdate("10.65.0.5/32", "node-3", "198.18.1.13", vxlan=True),
    }


def test_always_encapsulates_same_subnet_too():
    out = state([*CLUSTER, pool("vx", "10.65.0.0/16", "Always")])
    assert all(r.vxlan for r in out["routes"].values())
    assert len(out["routes"]) == 3


def test_pool_to_never_removes_routes_keeps_vteps():
    out = state([*CLUSTER, pool("vx", "10.65.0.0/16", "Never")])
    assert out["routes"] == {}
    assert len(out["vteps"]) == 3


def test_tunnel_route_waits_for_vtep():
    out = state([*CLUSTER, node("node-3", "198.18.1.13/24")])  # tunnel address gone
    assert "node-3" not in out["vteps"]
    assert set(out["routes"]) == {"10.65.1.0/26"}


def test_block_moves_and_is_deleted():
    moved = block("10.65.1.0/26", "node-3")
    out = state([*CLUSTER, moved])
    assert out["routes"]["10.65.1.0/26"].node == "node-3"
    out = state([*CLUSTER, (moved[0], None)])
    assert "10.65.1.0/26" not in out["routes"]


def test_vtep_mac_is_calicos_derivation():
    digest = hashlib.sha1(b"node-2").digest()
    assert vtep_mac("node-2") == "66:" + ":".join(f"{b:02x}" for b in digest[:5])
    first = int(vtep_mac("anything")[:2], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, unicast


def test_any_order_gives_the_same_state():
    expected = state(CLUSTER)
    rng = random.Random(17)
    orders = [list(reversed(CLUSTER))]
    orders += [rng.sample(CLUSTER, len(CLUSTER)) for _ in range(30)]
    orders += [list(p) for p in itertools.islice(itertools.permutations(CLUSTER[:5]), 20)]
    for order in orders:
        order = order + [u for u in CLUSTER if u not in order]
        assert state(order) == expected
        assert state(order + order) == expected  # duplicate updates change nothing
