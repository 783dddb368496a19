"""Felix's nftables dataplane with real packets.

Topology (built once per module, torn down by the namespace fixture):

    w1 (10.65.0.1, fd00::1) ─ cali-w1 ┐
    w2 (10.65.0.2, fd00::2) ─ cali-w2 ├ host ─ eth1 (192.168.100.1, 2001:db8::1) ─ out (…::2)
    w3 (10.65.0.3, fd00::3) ─ cali-w3 ┘

Workloads route via 169.254.1.1 (proxy ARP on the host side) and fe80::1; the host has
/32 and /128 routes to each workload. Every test builds a NEW NftDataplane against the
host's table, so each one also exercises the restart path (read back, apply the diff).
"""

from __future__ import annotations

import time

import pytest

from calico.felix import messages as m
from calico.felix.dataplane.nft import LibNftRunner, NftDataplane, NftRunner
from calico.felix.dataplane.nft.readback import parse_table
from tests.fixtures.netns import Netns, netns_set, ping

R, A = m.Rule, m.Action
WL = {"w1": 1, "w2": 2, "w3": 3}
TCP_PORTS = (80, 8080, 22)
PROF = m.ProfileID("allow-all")
OPEN = m.ActiveProfileUpdate(PROF, inbound_rules=(R(A.ALLOW),), outbound_rules=(R(A.ALLOW),))


class Topology:
    def __init__(self, nets) -> None:
        self.host = nets.add("host")
        self.out = nets.add("out")
        self.wl: dict[str, Netns] = {}
        for ns in (self.host, self.out):
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0")
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
        h = self.host
        h.sysctl("net.ipv4.ip_forward", "1")
        h.sysctl("net.ipv6.conf.all.forwarding", "1")
        for name, i in WL.items():
            w = self.wl[name] = nets.add(name)
            w.sysctl("net.ipv6.conf.all.accept_dad", "0")
            w.sysctl("net.ipv6.conf.default.accept_dad", "0")
            hif = f"cali-{name}"
            nets.veth(h, hif, w, "eth0")
            h.ip("link", "set", hif, "address", "ee:ee:ee:ee:ee:ee")
            h.sysctl(f"net.ipv4.conf.{hif}.proxy_arp", "1")
            h.sysctl(f"net.ipv4.neigh.{hif}.proxy_delay", "0")
            h.ip("-6", "addr", "add", "fe80::1/64", "dev", hif, "nodad")
            h.ip("route", "add", f"10.65.0.{i}/32", "dev", hif)
            h.ip("-6", "route", "add", f"fd00::{i}/128", "dev", hif)
            w.ip("addr", "add", f"10.65.0.{i}/32", "dev", "eth0")
            w.ip("-6", "addr", "add", f"fd00::{i}/128", "dev", "eth0", "nodad")
            w.ip("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
            w.ip("route", "add", "default", "via", "169.254.1.1")
            w.ip("-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
            self.serve(w)
        nets.veth(h, "eth1", self.out, "eth0")
        h.ip("addr", "add", "192.168.100.1/24", "dev", "eth1")
        h.ip("-6", "addr", "add", "2001:db8::1/64", "dev", "eth1", "nodad")
        # proxy ARP answers for 169.254.1.1 only if the host routes it elsewhere.
        h.ip("route", "add", "default", "via", "192.168.100.2")
        self.out.ip("addr", "add", "192.168.100.2/24", "dev", "eth0")
        self.out.ip("-6", "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad")
        self.serve(h)
        self.serve(self.out)
        time.sleep(0.5)
        for name in WL:  # resolve neighbours (ARP/NDP) before any rules exist
            for v in (4, 6):
                ping(self.wl[name], wl_ip("w1" if name != "w1" else "w2", v), timeout=2)

    @staticmethod
    def serve(ns: Netns) -> None:
        """TCP servers on TCP_PORTS (v4 and v6) answering with the peer's address."""
        for port in TCP_PORTS:
            for kind in ("TCP4-LISTEN", "TCP6-LISTEN"):
                opts = f"{kind}:{port},reuseaddr,fork" + (",ipv6only=1" if "6" in kind else "")
                ns.popen("socat", opts, "SYSTEM:echo $SOCAT_PEERADDR",
                         stdout=-3, stderr=-3)  # DEVNULL

    def dataplane(self, config: dict[str, str] | None = None) -> NftDataplane:
        """Felix's own runner: libnftables in-process, on a thread inside the host netns."""
        runner = LibNftRunner.load(self.host.name)
        assert runner is not None, "libnftables.so.1 is missing (Debian package libnftables1)"
        return NftDataplane(runner, config)


def tcp(src: Netns, addr: str, port: int, sport: int | None = None) -> str | None:
    """Connect; the server's answer (our source address as it saw it), or None."""
    target = f"TCP6:[{addr}]:{port}" if ":" in addr else f"TCP4:{addr}:{port}"
    target += ",connect-timeout=2" + (f",sourceport={sport},reuseaddr" if sport else "")
    p = src.run("socat", "-T", "2", "-", target, check=False, timeout=10, input="")
    return p.stdout.strip() or None if p.returncode == 0 else None


def wl_ip(name: str, v: int = 4) -> str:
    return f"10.65.0.{WL[name]}" if v == 4 else f"fd00::{WL[name]}"


def wep(name: str, *, tiers=(), profiles=(PROF,), spoof=()) -> m.WorkloadEndpointUpdate:
    i = WL[name]
    return m.WorkloadEndpointUpdate(
        m.WorkloadEndpointID("ns", name), f"cali-{name}", ipv4_nets=(f"10.65.0.{i}/32",),
        ipv6_nets=(f"fd00::{i}/128",), profile_ids=profiles, tiers=tiers,
        allowed_spoofed_source_prefixes=spoof)


@pytest.fixture(scope="module")
def topo():
    with netns_set() as nets:
        yield Topology(nets)


def program(topo: Topology, *msgs, config=None, endpoints=None) -> NftDataplane:
    """A fresh dataplane: sets/policies from msgs, then all workloads (open unless given)."""
    dp = topo.dataplane(config)
    for msg in (OPEN, *msgs):
        dp.on_message(msg)
    given = {e.id.name: e for e in (endpoints or ())}
    for name in WL:
        dp.on_message(given.get(name) or wep(name))
    dp.on_message(m.InSync())
    dp.apply()
    return dp


# ---- rule fields ------------------------------------------------------------------------

P = m.PolicyID("p", "ns")
NPSET = m.IPSetUpdate("np", m.IPSetType.NET_PORT, frozenset({"10.65.0.2,tcp:8080",
                                                           "fd00::2,tcp:8080"}))
SEL = m.IPSetUpdate("sel", m.IPSetType.NET, frozenset({"10.65.0.1/32", "fd00::1/128"}))

# (rule on w2 ingress, [(client, v, port or "ping", sport, expected)])
CASES = {
    "protocol": (R(A.ALLOW, protocol=6), [("w1", 4, 80, None, True), ("w1", 4, "ping", None, False)]),
    "not_protocol": (R(A.ALLOW, not_protocol=6), [("w1", 4, "ping", None, True),
                                                  ("w1", 4, 80, None, False)]),
    "icmp_type_code": (R(A.ALLOW, protocol=1, icmp_type=8, icmp_code=0),
                       [("w1", 4, "ping", None, True), ("w1", 4, 80, None, False)]),
    "icmp_wrong_code": (R(A.ALLOW, protocol=1, icmp_type=8, icmp_code=1),
                        [("w1", 4, "ping", None, False)]),
    "not_icmp_type": (R(A.ALLOW, protocol=1, not_icmp_type=8), [("w1", 4, "ping", None, False)]),
    "not_icmp_other": (R(A.ALLOW, protocol=1, not_icmp_type=13, not_icmp_code=0),
                       [("w1", 4, "ping", None, True)]),
    "not_icmp_type_code": (R(A.ALLOW, protocol=1, not_icmp_type=8, not_icmp_code=0),
                           [("w1", 4, "ping", None, False)]),
    "icmpv6": (R(A.ALLOW, protocol=58, icmp_type=128),
               [("w1", 6, "ping", None, True), ("w1", 4, "ping", None, False)]),
    "src_nets": (R(A.ALLOW, src_nets=("10.65.0.1/32", "fd00::1/128")),
                 [("w1", 4, 80, None, True), ("w3", 4, 80, None, False),
                  ("w1", 6, 80, None, True), ("w3", 6, 80, None, False)]),
    "not_src_nets": (R(A.ALLOW, not_src_nets=("10.65.0.1/32",)),
                     [("w1", 4, 80, None, False), ("w3", 4, 80, None, True)]),
    "dst_nets": (R(A.ALLOW, dst_nets=("10.65.0.0/30",)), [("w1", 4, 80, None, True)]),
    "dst_nets_other": (R(A.ALLOW, dst_nets=("10.65.0.3/32",)), [("w1", 4, 80, None, False)]),
    "not_dst_nets": (R(A.ALLOW, not_dst_nets=("10.65.0.2/32",)), [("w1", 4, 80, None, False)]),
    "dst_ports_range": (R(A.ALLOW, protocol=6, dst_ports=((79, 81),)),
                        [("w1", 4, 80, None, True), ("w1", 4, 8080, None, False)]),
    "many_dst_ports": (R(A.ALLOW, protocol=6, dst_ports=tuple((p, p) for p in range(60, 100))),
                       [("w1", 4, 80, None, True), ("w1", 4, 8080, None, False)]),
    "not_dst_ports": (R(A.ALLOW, protocol=6, not_dst_ports=((80, 80),)),
                      [("w1", 4, 80, None, False), ("w1", 4, 8080, None, True)]),
    "src_ports": (R(A.ALLOW, protocol=6, src_ports=((5555, 5556),)),
                  [("w1", 4, 80, 5555, True), ("w1", 4, 80, 5560, False)]),
    "not_src_ports": (R(A.ALLOW, protocol=6, not_src_ports=((5555, 5555),)),
                      [("w1", 4, 80, 5555, False), ("w1", 4, 80, 5561, True)]),
    "src_ip_set": (R(A.ALLOW, src_ip_set_ids=("sel",)),
                   [("w1", 4, 80, None, True), ("w3", 4, 80, None, False),
                    ("w1", 6, 80, None, True), ("w3", 6, 80, None, False)]),
    "not_src_ip_set": (R(A.ALLOW, not_src_ip_set_ids=("sel",)),
                       [("w1", 4, 80, None, False), ("w3", 4, 80, None, True)]),
    "dst_named_port": (R(A.ALLOW, protocol=6, dst_named_port_ip_set_ids=("np",)),
                       [("w1", 4, 8080, None, True), ("w1", 4, 80, None, False),
                        ("w1", 6, 8080, None, True)]),
    "not_dst_named_port": (R(A.ALLOW, protocol=6, not_dst_named_port_ip_set_ids=("np",)),
                           [("w1", 4, 8080, None, False), ("w1", 4, 80, None, True)]),
    "ip_version": (R(A.ALLOW, ip_version=6), [("w1", 6, 80, None, True),
                                              ("w1", 4, 80, None, False)]),
}


def check(topo: Topology, client: str, v: int, port, sport, dst: str = "w2") -> bool:
    if port == "ping":
        return ping(topo.wl[client], wl_ip(dst, v), timeout=1)
    return tcp(topo.wl[client], wl_ip(dst, v), port, sport) is not None


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_field(topo, case):
    rule, probes = CASES[case]
    pol = m.ActivePolicyUpdate(P, inbound_rules=(rule,))
    program(topo, SEL, NPSET, pol,
            endpoints=[wep("w2", tiers=(m.TierInfo("default", ingress_policies=(P,)),))])
    got = [(c, v, port, sport, check(topo, c, v, port, sport)) for c, v, port, sport, _ in probes]
    assert got == probes


def test_both_runners_read_back_what_was_written_as_text_and_json(topo):
    """The in-process and the `nft` binary runners agree with each other and with the JSON
    listing on what the kernel holds, and with what the dataplane believes it wrote."""
    pol = m.ActivePolicyUpdate(P, inbound_rules=(R(A.ALLOW, protocol=6, dst_ports=((80, 80),)),
                                                 R(A.ALLOW, src_ip_set_ids=("sel",))))
    dp = program(topo, SEL, NPSET, pol,
                 endpoints=[wep("w2", tiers=(m.TierInfo("default", ingress_policies=(P,)),))])
    binary = NftRunner(netns=topo.host.name)
    states = [binary.read_kernel("inet", "calico"), dp.runner.read_kernel("inet", "calico"),
              parse_table(binary.list_table("inet", "calico")),
              parse_table(dp.runner.list_table("inet", "calico"))]
    assert all(s == states[0] for s in states[1:])
    assert states[0].chains == dp.table.kernel.chains
    assert {k: v.elements for k, v in states[0].sets.items()} == \
        {k: v.elements for k, v in dp.table.kernel.sets.items()}
    assert binary.read_kernel("inet", "nosuchtable").exists is False
    assert dp.runner.read_kernel("inet", "nosuchtable").exists is False
