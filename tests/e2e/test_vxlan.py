"""VXLAN on a lab of two subnets: host1 and host3 on 198.18.0.0/24, host2 on 198.18.1.0/24,
a router namespace between them that knows only the host subnets (no route to workloads).

- Without an overlay, a workload on host1 cannot reach one on host2 (the router drops it).
- With the pool at `vxlanMode: CrossSubnet`, calico-node allocates each host a tunnel address
  from IPAM, Felix builds `vxlan.calico` and the routes, and host1 ↔ host2 workloads talk
  through the tunnel, while host1 ↔ host3 (same subnet) traffic is routed plain: host1's
  vxlan.calico transmits nothing for it (its tx counter does not move).
- `kill -9` of Felix on both ends, under a 10 ms ping across the tunnel, loses nothing: the
  restarted Felix adopts the device, FDB, ARP entries and routes as they are.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from calico.datastore.client import ResourceClient
from calico.lab.proc import sh
from tests.fixtures.space_checks import ping_through_felix_kills

from .conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

POOL = "default-ipv4-ippool"


@pytest.fixture(scope="module")
def lab(make_lab):
    lab = make_lab("vx", hosts=3, subnets=2)
    for i in (1, 2, 3):
        lab.add_workload(f"host{i}", f"w{i}")
    return lab


def addr(lab, workload: str) -> str:
    return lab.workload(workload)["addresses"][0]


def set_vxlan_mode(lab, mode: str) -> dict[str, str]:
    """Set the pool's vxlanMode; wait for every Node's tunnel address (or its removal)."""
    backend = lab.backend()
    try:
        client = ResourceClient(backend)
        pool = client.get("IPPool", POOL).to_dict()
        pool["spec"]["vxlanMode"] = mode
        client.update(pool)

        def addrs() -> dict[str, str]:
            return {n.name: n.to_dict()["spec"].get("ipv4VXLANTunnelAddr")
                    for n in client.list("Node").items}

        want = mode != "Never"
        wait_until(lambda: all(bool(a) == want for a in addrs().values()), 20,
                   f"tunnel addresses for vxlanMode {mode}")
        return addrs()
    finally:
        backend.close()


def tx_packets(lab, host: str) -> int:
    out = sh("ip", "-n", lab.host(host)["netns"], "-s", "-j", "link", "show",
             "vxlan.calico").stdout
    return json.loads(out)[0]["stats64"]["tx"]["packets"]


def test_cross_subnet_unreachable_without_overlay(lab):
    assert lab.host("host1")["subnet"] != lab.host("host2")["subnet"]
    assert not lab.ping("w1", addr(lab, "w2"), timeout=1.0)


def test_crosssubnet_overlay_across_subnets_plain_within(lab):
    tunnels = set_vxlan_mode(lab, "CrossSubnet")
    print(f"\ntunnel addresses: {tunnels}")
    t = wait_until(lambda: lab.ping("w1", addr(lab, "w2"), timeout=0.5), 20,
                   "w1 -> w2 through the overlay")
    print(f"w1 -> w2 (other subnet) answers {t:.2f}s after the pool change")
    wait_until(lambda: lab.ping("w1", addr(lab, "w3"), timeout=0.5), 20, "w1 -> w3 plain")
    assert lab.ping("w2", addr(lab, "w3"))

    before = tx_packets(lab, "host1")
    sh("ip", "netns", "exec", lab.netns_of("w1"), "ping", "-c", "20", "-i", "0.01",
       addr(lab, "w3"))
    same_subnet = tx_packets(lab, "host1") - before
    before = tx_packets(lab, "host1")
    sh("ip", "netns", "exec", lab.netns_of("w1"), "ping", "-c", "20", "-i", "0.01",
       addr(lab, "w2"))
    other_subnet = tx_packets(lab, "host1") - before
    print(f"host1 vxlan.calico tx packets: {same_subnet} for 20 pings to the same subnet, "
          f"{other_subnet} for 20 pings to the other subnet")
    assert same_subnet == 0
    assert other_subnet >= 20


def test_kill_felix_under_10ms_ping_loses_nothing(lab):
    set_vxlan_mode(lab, "CrossSubnet")
    wait_until(lambda: lab.ping("w1", addr(lab, "w2"), timeout=0.5), 20, "w1 -> w2")
    got = ping_through_felix_kills(lab, lab.netns_of("w1"), addr(lab, "w2"),
                                   ("host1", "host2"))
    sent, received, backs, out = got["sent"], got["received"], got["backs"], got["out"]
    print(f"\nkill -9 Felix on host1 and host2: back in {backs[0]:.2f}s / {backs[1]:.2f}s; "
          f"{sent} pings every 10 ms, {sent - received} lost")
    assert sent >= 300
    assert received == sent, out[-300:]


RECEIVER = """
import select, socket, sys
socks = []
for port in (4789, 4790):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    socks.append(s)
print("ready", flush=True)
got = set()
while True:
    ready, _, _ = select.select(socks, [], [], 3.0)
    if not ready:
        break
    for s in ready:
        s.recv(100)
        got.add(s.getsockname()[1])
print(sorted(got), flush=True)
"""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    for port in (4789, 4790):
        s.sendto(b"x" * 16, (sys.argv[1], port))
    time.sleep(0.05)
"""


def udp_ports_received(lab) -> str:
    """w1 sends UDP to w2 on 4789 (VXLAN's port) and 4790; the ports w2 received."""
    recv = subprocess.Popen(["ip", "netns", "exec", lab.netns_of("w2"), sys.executable, "-c",
                             RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "ready"
        sh("ip", "netns", "exec", lab.netns_of("w1"), sys.executable, "-c", SENDER,
           addr(lab, "w2"))
        out, _ = recv.communicate(timeout=30)
    finally:
        if recv.poll() is None:
            recv.kill()
    return out.strip()


def vxlan_drop_rule(lab, host: str) -> bool:
    out = sh("ip", "netns", "exec", lab.host(host)["netns"], "nft", "list", "chain", "inet",
             "calico", "wl-from-dispatch").stdout
    return "udp dport 4789 drop" in out


def test_workload_vxlan_packets_are_dropped(lab):
    """A workload must not inject into the overlay: UDP to the VXLAN port leaves no
    workload (Calico's AllowVXLANPacketsFromWorkloads: false), other UDP does; with
    allowVXLANPacketsFromWorkloads: true both pass."""
    set_vxlan_mode(lab, "CrossSubnet")
    wait_until(lambda: lab.ping("w1", addr(lab, "w2"), timeout=0.5), 20, "w1 -> w2")
    wait_until(lambda: vxlan_drop_rule(lab, "host1"), 20, "the VXLAN drop rule on host1")
    assert udp_ports_received(lab) == "[4790]"
    backend = lab.backend()
    try:
        ResourceClient(backend).apply({
            "apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
            "metadata": {"name": "default"}, "spec": {"allowVXLANPacketsFromWorkloads": True}})
    finally:
        backend.close()
    wait_until(lambda: not vxlan_drop_rule(lab, "host1"), 20, "the drop rule gone")
    assert udp_ports_received(lab) == "[4789, 4790]"
