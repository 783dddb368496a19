"""Acceptance: overlapping tenant IPv4 addresses through address spaces (our extension, issue
#19), on a 2-host lab with IPv6 (real calico-node, Felix with the BPF translator, BIRD).

a1 (blue, 10.200.0.5) and b1 (green, 10.200.0.5) on host1; a2 (blue, 10.200.0.6) and b2
(green, 10.200.0.6) on host2. Everything between the hosts is routed IPv6 (P::A), advertised
by BIRD per space block. a1 reaches 10.200.0.6 and is answered by a2, b1 by b2 (TCP, UDP,
ICMP, port unreachable); nothing crosses spaces; a policy denying a1 -> a2 denies only that;
kill -9 of Felix under a 10 ms ping loses nothing; with both hosts' uplinks at 1400, host1's
ICMPv6 Packet Too Big reaches a1 through Felix's ruleset as frag-needed with MTU 1380.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from calico.datastore.client import ResourceClient
from tests.fixtures import space_checks as sc

from .conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

V3 = "projectcalico.org/v3"
PORT = 7007
WORKLOADS = {"a1": ("host1", "blue", "10.200.0.5"), "b1": ("host1", "green", "10.200.0.5"),
             "a2": ("host2", "blue", "10.200.0.6"), "b2": ("host2", "green", "10.200.0.6")}


def _client(lab, src: str, proto: str, addr: str, port: int = PORT, payload: str = "hi"
            ) -> str:
    return sc.client(lab.netns_of(src), proto, addr, port, payload)


@pytest.fixture(scope="module")
def lab(make_lab):
    lab = make_lab("x", hosts=2, ipv6=True)
    backend = lab.backend()
    try:
        client = ResourceClient(backend)
        for space in ("blue", "green"):
            client.create({"apiVersion": V3, "kind": "AddressSpace",
                           "metadata": {"name": space}, "spec": {}})
            client.create({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": space},
                           "spec": {"cidr": "10.200.0.0/24", "addressSpace": space}})
    finally:
        backend.close()
    for name, (host, space, ip) in WORKLOADS.items():
        lab.add_workload(host, name, {"tenant": space}, space, ip)
    servers = [sc.serve(lab.netns_of(name), name, PORT) for name in ("a2", "b2")]
    yield lab
    for s in servers:
        s.kill()
        s.wait()


def test_status_reports_each_workloads_space(lab):
    spaces = {w["name"]: w["address_space"] for w in lab.status()["workloads"]}
    assert spaces == {"a1": "blue", "b1": "green", "a2": "blue", "b2": "green"}


@pytest.mark.parametrize(("src", "dst"), [("a1", "a2"), ("b1", "b2")])
def test_each_space_reaches_its_own_peer(lab, src, dst):
    took = wait_until(lambda: lab.ping(src, "10.200.0.6", timeout=0.5), 30,
                      f"{src} -> 10.200.0.6")
    print(f"\n{src} -> 10.200.0.6 answered after {took:.2f}s")
    assert _client(lab, src, "tcp", "10.200.0.6") == f"{dst} hi"
    assert _client(lab, src, "udp", "10.200.0.6") == f"{dst} hi"
    assert _client(lab, src, "tcp", "10.200.0.6", payload="x" * 20000) == f"{dst} {'x' * 20000}"
    assert _client(lab, src, "udp", "10.200.0.6", port=PORT + 1) == "ECONNREFUSED"


def test_host_routes_are_ipv6_only(lab):
    """host1 has P::A/128 routes for a1 and b1 and no IPv4 route to 10.200.0.5; host2 learnt
    the spaces' blocks over BGP as IPv6 routes."""
    routes4 = subprocess.run(["ip", "netns", "exec", lab.netns_of("host1"), "ip", "-4", "route"],
                             capture_output=True, text=True).stdout
    assert "10.200.0." not in routes4
    routes6 = subprocess.run(["ip", "netns", "exec", lab.netns_of("host2"), "ip", "-6", "route"],
                             capture_output=True, text=True).stdout
    assert re.search(r"64:ff9b:1::ac8:0/122 via", routes6), routes6
    assert re.search(r"64:ff9b:1::1:ac8:0/122 via", routes6), routes6


def test_nothing_crosses_spaces(lab):
    """a1 and b1 share 10.200.0.5 on one host: neither reaches the other (10.200.0.5 is
    itself for each); green's b2 never hears blue's a1 (the server's name tells who answered:
    always the sender's own space)."""
    for _ in range(5):
        assert _client(lab, "a1", "udp", "10.200.0.6") == "a2 hi"
        assert _client(lab, "b1", "udp", "10.200.0.6") == "b2 hi"


def test_policy_denying_a1_to_a2_denies_only_that(lab):
    backend = lab.backend()
    client = ResourceClient(backend)
    try:
        client.create({"apiVersion": V3, "kind": "GlobalNetworkPolicy",
                       "metadata": {"name": "deny-a1-a2"},
                       "spec": {"selector": "tenant == 'blue'", "types": ["Egress"],
                                "egress": [{"action": "Deny",
                                            "destination": {"nets": ["10.200.0.6/32"]}},
                                           {"action": "Allow"}]}})
        wait_until(lambda: _client(lab, "a1", "udp", "10.200.0.6") == "TIMEOUT", 30,
                   "a1 -> a2 denied")
        assert _client(lab, "b1", "udp", "10.200.0.6") == "b2 hi"
        assert lab.ping("b1", "10.200.0.6", timeout=1)
    finally:
        client.delete("GlobalNetworkPolicy", "deny-a1-a2")
        backend.close()
    wait_until(lambda: _client(lab, "a1", "udp", "10.200.0.6") == "a2 hi", 30,
               "a1 -> a2 allowed again")


def test_kill_felix_under_10ms_ping_loses_nothing(lab):
    """The restarted Felix adopts the translators it finds (pinned on the lab's bpffs): the
    same programs stay attached, and not one ping of 10 ms is lost."""
    wait_until(lambda: lab.ping("a1", "10.200.0.6", timeout=0.5), 20, "a1 -> a2")
    hosts = ("host1", "host2")
    before = {host: sc.filter_ids(lab.netns_of(host), ("cali",)) for host in hosts}
    assert all(len(ids) == 2 for f in before.values() for ids in f.values()), before
    got = sc.ping_through_felix_kills(lab, lab.netns_of("a1"), "10.200.0.6", hosts)
    sent, received, backs = got["sent"], got["received"], got["backs"]
    print(f"\nkill -9 Felix on host1 and host2: back in {backs[0]:.2f}s / {backs[1]:.2f}s; "
          f"{sent} pings every 10 ms, {sent - received} lost")
    assert sent >= 300
    assert received == sent, got["out"][-300:]
    assert {host: sc.filter_ids(lab.netns_of(host), ("cali",)) for host in hosts} == before


def test_path_mtu_reaches_the_workload(lab):
    """Both hosts' uplinks at 1400: a1's DF ping of 1428 bytes (1448 as IPv6) meets host1's
    Packet Too Big, which reaches a1 through Felix's ruleset as frag-needed from 169.254.1.1
    with MTU 1380; a1's route learns 1380 and a DF ping of that size is answered by a2."""
    wait_until(lambda: lab.ping("a1", "10.200.0.6", timeout=0.5), 20, "a1 -> a2")
    got = sc.path_mtu((lab.netns_of("host1"), lab.netns_of("host2")), lab.netns_of("a1"),
                      "10.200.0.6")
    assert "From 169.254.1.1" in got["too_big"] and "mtu = 1380" in got["too_big"], got
    assert re.search(r"\bmtu 1380\b", got["route"]), got["route"]
    assert got["fits"] == 0, got["fits_out"]
