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
    host.start_felix()
    try:
        host.wait_ready()
        yield host
    finally:
        code = host.close()
        assert code in (None, 0), host.log()


class Stream:
    """A one-way UDP stream from `src` (fixed source port) to the receiving workload."""

    def __init__(self, src, dst_ns, dst: str, tmp: Path) -> None:
        self.log = tmp / f"received-{dst}-{time.monotonic_ns()}"
        self.log.touch()
        self.procs = [dst_ns.popen(sys.executable, "-c", RECEIVER, str(PORT), str(self.log))]
        time.sleep(0.2)  # the receiver binds before the first packet (else ICMP answers)
        self.procs.append(src.popen(sys.executable, "-c", SENDER, dst, str(PORT), str(SPORT)))

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

