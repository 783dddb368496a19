"""Acceptance: the L3 leaf-spine fabric (`calico-lab up --racks`), real BIRD everywhere.

AS per rack, IPv4 and IPv6: 2 racks x 2 hosts behind their ToRs, 2 spines. Hosts peer only
with their ToR (the mesh is off, the BGPPeers select by the `rack` label), every workload
reaches every other across racks on both families, a ToR spreads traffic to a remote rack over both spines, and taking the
spine link that carries a flow down moves the flow to the other spine (the gap between
replies of a 10 ms ping is printed; run with -s). AS per compute server: every host in its
own AS (IPv4 only), every workload still reaches every other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from calico.lab import fabric, failover
from calico.lab.proc import sh

from .conftest import bird_routes, blocks_of, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def rack_lab(make_lab):
    return make_lab("f", racks=2, hosts_per_rack=2, spines=2, workloads_per_host=1, ipv6=True)


def _all_pairs_reach(lab):
    workloads = lab.state["workloads"]
    for a in workloads:
        for b in workloads:
            for addr in b["addresses"] if a is not b else ():
                wait_until(lambda a=a, addr=addr: lab.ping(a["name"], addr), 5,
                           f"{a['name']} -> {b['name']} ({addr})")


def test_hosts_peer_only_with_their_tor(rack_lab):
    for h in rack_lab.state["hosts"]:
        peers = rack_lab.peers(h["name"])
        assert [(p["address"], p["type"], p["established"]) for p in peers] == \
            [(f"198.18.{h['rack']}.1", "node specific", True),
             (f"fd00:198:18:{h['rack']}::1", "node specific", True)], peers
    for router in rack_lab.state["l3"]["routers"]:
        sessions = fabric.router_sessions(rack_lab, router)
        assert sessions and set(sessions.values()) == {"Established"}, (router["name"],
                                                                         sessions)


def test_calicoctl_node_status_shows_the_tor(rack_lab):
    exe = os.path.join(os.path.dirname(sys.executable), "calico-lab")
    out = subprocess.run([exe, "exec", "--name", rack_lab.name, "r2h1", "--", "calicoctl",
                          "node", "status"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    print("\n" + out.stdout)
    assert "| 198.18.2.1   | node specific | up    |" in out.stdout
    assert "fd00:198:18:2::1" in out.stdout
    assert "Established" in out.stdout and "node-to-node mesh" not in out.stdout


def test_every_workload_reaches_every_other(rack_lab):
    racks = {rack_lab.host(w["host"])["rack"] for w in rack_lab.state["workloads"]}
    assert racks == {1, 2}
    assert all(len(w["addresses"]) == 2 for w in rack_lab.state["workloads"])
    _all_pairs_reach(rack_lab)


def test_hosts_route_other_racks_through_their_tor(rack_lab):
    """AS per rack: the ToR reflects a rack's routes with the host's own next hop and gives
    routes from the spines its own."""
    block = {w["host"]: next(b for b in blocks_of(rack_lab, w["host"]))
             for w in rack_lab.state["workloads"]}
    wait_until(lambda: all(b in bird_routes(rack_lab, "r1h1") for h, b in block.items()
                           if h != "r1h1"), 5, "r1h1 has every other host's block")
    routes = bird_routes(rack_lab, "r1h1")
    assert routes[block["r1h2"]] == "198.18.1.12"
    assert routes[block["r2h1"]] == routes[block["r2h2"]] == "198.18.1.1"


def test_tor_spreads_a_remote_rack_over_both_spines(rack_lab):
    block = next(a for a in rack_lab.workload("r2h1-w1")["addresses"] if ":" not in a)
    tor1 = next(r for r in rack_lab.state["l3"]["routers"] if r["name"] == "tor1")
    out = json.loads(sh("ip", "-n", tor1["netns"], "-j", "route", "get", block).stdout)
    route = json.loads(sh("ip", "-n", tor1["netns"], "-j", "route", "show", "proto", "bird",
                          "match", block).stdout)
    assert out and route
    hops = {nh["dev"] for r in route for nh in r.get("nexthops", [])}
    assert hops == {"spine1", "spine2"}, route


def test_spine_link_down_reroutes_through_the_other_spine(rack_lab):
    dst = next(a for a in rack_lab.workload("r2h1-w1")["addresses"] if ":" not in a)
    result = failover.spine_failover(rack_lab, "r1h1-w1", dst)
    try:
        print(f"\nspine failover: {result['tor']} link {result['link_down']} down, traffic "
              f"then via {result['rerouted_via']}; longest gap between replies "
              f"{result['gap_s'] * 1000:.0f} ms at a {result['interval_s'] * 1000:.0f} ms "
              f"ping interval (before the link went down: "
              f"{result['baseline_gap_s'] * 1000:.0f} ms), {result['lost']} of "
              f"{result['sent']} lost")
        assert result["rerouted_via"] != result["link_down"]
        assert result["replies"] > 0
        _all_pairs_reach(rack_lab)
    finally:
        fabric.set_link(rack_lab, result["tor"], result["link_down"], True)
    fabric.wait_routers(rack_lab, 30)


@pytest.fixture(scope="module")
def host_as_lab(make_lab):
    return make_lab("a", racks=2, hosts_per_rack=1, spines=1, as_per_host=True,
                    workloads_per_host=1)


def test_as_per_compute_server(host_as_lab):
    from calico.datastore.client import ResourceClient

    backend = host_as_lab.backend()
    try:
        nodes = {n.name: n.to_dict() for n in ResourceClient(backend).list("Node").items}
    finally:
        backend.close()
    assert {name: n["spec"]["bgp"]["asNumber"] for name, n in nodes.items()} == \
        {"r1h1": 65101, "r2h1": 65201}
    for h in host_as_lab.state["hosts"]:
        assert [p["established"] for p in host_as_lab.peers(h["name"])] == [True]
    _all_pairs_reach(host_as_lab)


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "calico-lab")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def test_command_line(rack_lab):
    st = json.loads(_cli("status", "--name", rack_lab.name, "-o", "json").stdout)
    assert st["l3"]["racks"] == 2 and not st["l3"]["as_per_host"]
    assert {r["name"]: r["running"] for r in st["l3"]["routers"]} == \
        {"tor1": True, "tor2": True, "spine1": True, "spine2": True}
    assert st["l3"]["hosts"]["r2h2"] == {"rack": 2, "asn": 65002}
    table = _cli("status", "--name", rack_lab.name)
    assert "L3 fabric — 2 racks, 2 spines (AS per rack)" in table.stdout, table.stderr

    tor2 = next(r for r in rack_lab.state["l3"]["routers"] if r["name"] == "tor2")
    down = _cli("link", "--name", rack_lab.name, "tor2", "spine1", "down")
    assert down.returncode == 0, down.stderr
    try:
        wait_until(lambda: fabric.router_sessions(rack_lab, tor2)["spine1"] != "Established",
                   10, "tor2's session to spine1 down")
        _all_pairs_reach(rack_lab)
    finally:
        up = _cli("link", "--name", rack_lab.name, "tor2", "spine1", "up")
        assert up.returncode == 0, up.stderr
    fabric.wait_routers(rack_lab, 30)

    bad = _cli("link", "--name", rack_lab.name, "tor9", "spine1", "down")
    assert bad.returncode == 1 and "has no router 'tor9'" in bad.stderr
    bad = _cli("up", "--name", f"{rack_lab.name}x"[:12], "--racks", "2", "--tor", "gobgp")
    assert bad.returncode == 1 and "no --tor" in bad.stderr
    bad = _cli("up", "--name", f"{rack_lab.name}x"[:12], "--racks", "12")
    assert bad.returncode == 1 and "--racks must be between 1 and 9" in bad.stderr
