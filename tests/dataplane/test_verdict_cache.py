"""The verdict cache (calico/felix/dataplane/nft/verdict_cache.py) with the real calico-felix:
a one-way UDP stream (conntrack never sees a reply, so every packet is state NEW) is accepted
through the cache, and every policy change, and every IP-set change from a remote endpoint's
labels, applies to it on its next packets while the stream keeps running."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.dataplane.test_felix_harness import ALLOW_ALL, FelixHost, resource, wait_for, wl_ip
from tests.fixtures.netns import sh

PORT, SPORT = 7000, 40000
SENDER = """import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sys.argv[3])))
i = 0
while True:
    s.sendto(str(i).encode(), (sys.argv[1], int(sys.argv[2])))
    i += 1
    time.sleep(0.01)
"""
RECEIVER = """import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sys.argv[1])))
with open(sys.argv[2], "a") as out:
    while True:  # never answers: the flow stays unreplied
        data, _ = s.recvfrom(64)
        out.write(data.decode() + "\\n")
        out.flush()
"""
FORGER = """import socket, struct, sys
src, dst = sys.argv[1:3]
udp = struct.pack("!HHHH", int(sys.argv[3]), int(sys.argv[4]), 8 + 6, 0) + b"forged"
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                  socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for _ in range(50):
    s.sendto(hdr + udp, (dst, 0))
"""
FLOW_MARK = """import socket, sys
from pyroute2 import Conntrack
with Conntrack(nfgen_family=socket.AF_INET) as ct:
    marks = [e.mark or 0 for e in ct.dump_entries()
             if e.tuple_orig.dport == int(sys.argv[1]) and e.tuple_orig.sport == int(sys.argv[2])]
print(marks)
"""


@pytest.fixture
def felix(netns, tmp_path):
    host = FelixHost(netns, tmp_path)
    host.client.create(ALLOW_ALL)
    with host.running():
        yield host


class Receiver:
    """A UDP listener on PORT in `ns` that never answers, writing each datagram to a file."""

    def __init__(self, ns, tmp: Path) -> None:
        self.log = tmp / f"received-{ns.name}"
        self.log.touch()
        self.procs = [ns.popen(sys.executable, "-c", RECEIVER, str(PORT), str(self.log))]
        time.sleep(0.2)  # bound before the first packet (else ICMP answers)

    def received(self) -> int:
        return len(self.log.read_text().splitlines())

    def flowing(self, window: float = 0.5) -> bool:
        before = self.received()
        time.sleep(window)
        return self.received() > before

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


class Stream(Receiver):
    """A one-way UDP stream from `src` (fixed source port) to a receiver in `dst_ns`."""

    def __init__(self, src, dst_ns, dst: str, tmp: Path) -> None:
        super().__init__(dst_ns, tmp)
        self.procs.append(src.popen(sys.executable, "-c", SENDER, dst, str(PORT), str(SPORT)))


def flow_marks(host: FelixHost) -> list[int]:
    out = host.host.run(sys.executable, "-c", FLOW_MARK, str(PORT), str(SPORT)).stdout
    return eval(out)  # noqa: S307 (our own print of a list of ints)


def assert_cached(host: FelixHost) -> None:
    """The stream's one conntrack entry carries a generation: its packets hit the cache."""
    marks = flow_marks(host)
    assert len(marks) == 1 and marks[0] >> 16, marks


def test_policy_changes_stop_and_resume_a_cached_unreplied_flow(felix, tmp_path):
    wl1, wl2 = felix.add_workload(1), felix.add_workload(2, labels={"app": "db"})
    felix.wait_programmed(1)
    felix.wait_programmed(2)
    stream = Stream(wl1, wl2, wl_ip(2), tmp_path)
    try:
        wait_for(stream.flowing, 10, "the stream flows")
        wait_for(lambda: bool(flow_marks(felix)) and flow_marks(felix)[0] >> 16, 10,
                 "the flow's verdict cached")
        policy = resource("GlobalNetworkPolicy", "db-ingress", {
            "selector": "app == 'db'", "types": ["Ingress"], "ingress": [{"action": "Deny"}]})
        felix.client.create(policy)
        wait_for(lambda: not stream.flowing(), 10, "deny in force on the running stream")
        assert not stream.flowing(1.0)
        policy["spec"]["ingress"] = [{"action": "Allow", "protocol": "UDP",
                                      "destination": {"ports": [PORT]}}]
        felix.client.apply(policy)
        wait_for(stream.flowing, 10, "allow in force again")
        assert_cached(felix)
        policy["spec"]["ingress"] = [{"action": "Allow", "protocol": "UDP",
                                      "destination": {"ports": [PORT + 1]}}]
        felix.client.apply(policy)
        wait_for(lambda: not stream.flowing(), 10, "the other port only: denied again")
        assert not stream.flowing(1.0)
        assert len(flow_marks(felix)) == 1  # one flow all along: the same conntrack entry
    finally:
        stream.close()


def test_ip_set_membership_changes_apply_to_a_cached_flow(felix, tmp_path):
    """The sender is outside the host (the fabric, 10.0.0.2), described by a remote
    endpoint whose label decides whether it is in the policy's source IP set."""
    felix.add_workload(2, labels={"app": "db"})
    felix.wait_programmed(2)
    felix.fabric.ip("route", "add", f"{wl_ip(2)}/32", "via", "10.0.0.1")
    remote = resource("WorkloadEndpoint", "host2-k8s-peer-eth0", {
        "orchestrator": "k8s", "node": "host2", "pod": "peer", "endpoint": "eth0",
        "interfaceName": "cali9", "ipNetworks": ["10.0.0.2/32"], "profiles": ["allow-all"]},
        namespace="default")
    remote["metadata"]["labels"] = {"role": "stranger"}
    felix.client.create(remote)
    felix.client.create(resource("GlobalNetworkPolicy", "friends-only", {
        "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "UDP",
                     "source": {"selector": "role == 'friend'"}}]}))
    stream = Stream(felix.fabric, felix.workloads[2], wl_ip(2), tmp_path)
    try:
        assert not stream.flowing(1.0)  # a stranger: denied (and never confirmed by conntrack)
        for role, flows in (("friend", True), ("stranger", False), ("friend", True)):
            remote["metadata"]["labels"] = {"role": role}
            felix.client.apply(remote)
            wait_for(lambda flows=flows: stream.flowing() == flows, 10, f"{role}: {flows}")
            if flows:
                assert_cached(felix)
            else:
                assert not stream.flowing(1.0)
        assert len(flow_marks(felix)) == 1
    finally:
        stream.close()



def test_a_spoofed_copy_of_a_cached_flow_is_refused(felix, tmp_path):
    """Another workload sending the cached flow's exact tuple (wl1's address and ports) meets
    strict reverse-path filtering before the forward hook: none of it arrives."""
    wl1, wl2 = felix.add_workload(1), felix.add_workload(2)
    wl3 = felix.add_workload(3)
    for n in (1, 2, 3):
        felix.wait_programmed(n)
    stream = Stream(wl1, wl2, wl_ip(2), tmp_path)
    try:
        wait_for(stream.flowing, 10, "the stream flows")
        wait_for(lambda: bool(flow_marks(felix)) and flow_marks(felix)[0] >> 16, 10,
                 "the flow's verdict cached")
        wl3.run(sys.executable, "-c", FORGER, wl_ip(1), wl_ip(2), str(SPORT), str(PORT))
        assert stream.flowing()  # the real flow still arrives, after the forgeries
        assert "forged" not in stream.log.read_text().split()
    finally:
        stream.close()


def test_a_cached_flow_never_reaches_an_interface_without_endpoint(felix, tmp_path):
    """The receiving address moves to a new workload interface Felix has no endpoint for
    (its route changed by hand, no nftables change): the cache's guard sends the flow's
    packets back to the dispatch, which drops them."""
    wl1, wl2 = felix.add_workload(1), felix.add_workload(2)
    felix.wait_programmed(1)
    felix.wait_programmed(2)
    stray = felix.nets.add("wl5")
    sh("ip", "link", "add", "cali5", "netns", felix.host.name, "type", "veth", "peer", "name",
       "eth0", "netns", stray.name)
    felix.host.ip("link", "set", "cali5", "up")
    stray.ip("link", "set", "eth0", "up")
    stray.ip("addr", "add", f"{wl_ip(2)}/32", "dev", "eth0")
    stream = Stream(wl1, wl2, wl_ip(2), tmp_path)
    moved = Receiver(stray, tmp_path)
    try:
        wait_for(stream.flowing, 10, "the stream flows")
        wait_for(lambda: bool(flow_marks(felix)) and flow_marks(felix)[0] >> 16, 10,
                 "the flow's verdict cached")
        felix.host.ip("route", "replace", f"{wl_ip(2)}/32", "dev", "cali5", "scope", "link")
        wait_for(lambda: not stream.flowing(), 10, "the flow leaves wl2")
        assert not moved.flowing(1.0) and moved.received() == 0
        routes = felix.host.ip("route", "show", f"{wl_ip(2)}/32").stdout
        assert "cali5" in routes, routes  # the guard, not a repaired route, kept it out
    finally:
        stream.close()
        moved.close()
