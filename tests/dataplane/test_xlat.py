"""The address-space translator with real packets, without Felix (tests/fixtures/xlat_topo.py).

a1 (blue) and b1 (green) share 10.200.0.5 on h1; a2 (blue) and b2 (green) share 10.200.0.6
on h2. Each workload's servers answer with the workload's name, so a reply names who answered.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import subprocess

import pytest

from calico.felix.dataplane.xlat.translator import OBJ_PATH, Translator
from tests.conftest import require_programs
from tests.fixtures import xlat_topo as topo
from tests.fixtures.netns import netns_set

PORT = 7000


@pytest.fixture(scope="module")
def lab():
    require_programs("tc", "bpftool", "clang", "python3")
    if not os.path.exists(OBJ_PATH):
        pytest.fail(f"{OBJ_PATH} is missing: run `make setup` to build it")
    bpffs = topo.mount_bpffs()
    try:
        with netns_set() as nets:
            lab = topo.build(nets, bpffs)
            servers = [topo.start_server(lab["wls"][n], PORT) for n in ("a2", "b2")]
            lab["bpffs"] = bpffs
            try:
                yield lab
            finally:
                for proc in servers:
                    proc.kill()
                    proc.wait()
    finally:
        topo.close_bpffs(bpffs)


def ping(where, addr: str, *args: str) -> subprocess.CompletedProcess:
    """One ping from a workload or a host namespace."""
    ns = getattr(where, "ns", where)
    return ns.run("ping", "-c", "1", "-W", "3", *args, addr, check=False, timeout=30)


@pytest.mark.parametrize(("src", "dst"), [("a1", "a2"), ("b1", "b2")])
def test_each_space_reaches_its_own_peer(lab, src, dst):
    wl = lab["wls"][src]
    assert ping(wl, "10.200.0.6").returncode == 0
    assert topo.client(wl, "tcp", "10.200.0.6", PORT, "hello") == f"{dst} hello"
    assert topo.client(wl, "udp", "10.200.0.6", PORT, "hello") == f"{dst} hello"
    big = "x" * 20000  # many segments each way, GSO on the veths
    assert topo.client(wl, "tcp", "10.200.0.6", PORT, big) == f"{dst} {big}"


@pytest.mark.parametrize(("src", "dst"), [("a1", "a2"), ("b1", "b2")])
def test_fragmented_udp(lab, src, dst):
    """A 3,000-byte datagram each way: IPv4 fragments, IPv6 Fragment headers in between. A
    1,500-byte IPv4 fragment is 1,528 bytes as IPv6, so the first datagram each way meets
    Packet Too Big, translated into frag-needed with MTU 1,472 (-20 for the header, -8 for
    the Fragment header): the sender sees EMSGSIZE, then the replier's first answer is lost
    (a timeout), and from then on the datagrams pass, fragmented at 1,472 bytes."""
    wl, datagram = lab["wls"][src], "z" * 3000
    replies = [topo.client(wl, "udp", "10.200.0.6", PORT, datagram) for _ in range(3)]
    assert replies == [f"errno {errno.EMSGSIZE}", "TIMEOUT", f"{dst} {datagram}"]
    route = wl.ns.run("ip", "route", "get", "10.200.0.6").stdout
    assert re.search(r"\bmtu 1472\b", route), route
    assert topo.client(wl, "udp", "10.200.0.6", PORT, datagram) == f"{dst} {datagram}"


@pytest.mark.parametrize("src", ["a1", "b1"])
def test_udp_to_closed_port_is_refused(lab, src):
    """The peer's ICMP port unreachable comes back translated (v4 -> v6 -> v4, with the
    embedded UDP header), so the connected socket sees ECONNREFUSED."""
    assert topo.client(lab["wls"][src], "udp", "10.200.0.6", PORT + 1) == "ECONNREFUSED"


def test_translated_errors_reach_an_ipv6_host(lab):
    """h2 speaks IPv6 from a blue address to a2's P::A: the answers (echo reply, and the port
    unreachable a2's IPv4 stack sends) arrive translated with valid ICMPv6 checksums, since
    h2's own stack checks them."""
    host, a2 = lab["hosts"][1], lab["wls"]["a2"]
    src = str(topo.SPACES["blue"].network_address + 0x0AC80064)  # blue ::10.200.0.100
    host.ip("-6", "addr", "add", f"{src}/128", "dev", "lo")
    try:
        assert ping(host, str(a2.v6), "-I", src).returncode == 0
        assert topo.client(host, "udp6", str(a2.v6), PORT, "hi", src) == "a2 hi"
        assert topo.client(host, "udp6", str(a2.v6), PORT + 1, "hi", src) == "ECONNREFUSED"
    finally:
        host.ip("-6", "addr", "del", f"{src}/128", "dev", "lo")


def test_nothing_crosses_spaces(lab):
    """Only sources inside the endpoint's own /96 reach it: h1 pings a1's P::A from a blue
    address (answered) and from a green one (dropped at a1's interface)."""
    host = lab["hosts"][0]
    a1 = lab["wls"]["a1"]
    blue_src = str(topo.SPACES["blue"].network_address + 0x0AC80063)  # blue ::10.200.0.99
    green_src = str(topo.SPACES["green"].network_address + 0x0AC80063)
    for addr in (blue_src, green_src):
        host.ip("-6", "addr", "add", f"{addr}/128", "dev", "lo")
    try:
        assert ping(host, str(a1.v6), "-I", blue_src).returncode == 0
        assert ping(host, str(a1.v6), "-I", green_src).returncode != 0
    finally:
        for addr in (blue_src, green_src):
            host.ip("-6", "addr", "del", f"{addr}/128", "dev", "lo")


def test_ttl_expiry_comes_back_as_time_exceeded(lab):
    """TTL 1: h1 answers with ICMPv6 time exceeded from its own address; the workload sees
    ICMP time exceeded from its gateway 169.254.1.1."""
    out = ping(lab["wls"]["a1"], "10.200.0.6", "-t", "1").stdout
    assert "From 169.254.1.1" in out and "Time to live exceeded" in out


def test_path_mtu(lab):
    """A 1400-byte inter-host link: a DF 1428-byte IPv4 packet is 1448 bytes as IPv6, so h1
    sends Packet Too Big (MTU 1400); a1 gets frag-needed from 169.254.1.1 with MTU 1380, and
    TCP then carries bulk data both ways (h2 tells a2 the same)."""
    hosts, a1 = lab["hosts"], lab["wls"]["b1"]
    for host in hosts:
        host.ip("link", "set", "eth0", "mtu", "1400")
    try:
        out = ping(a1, "10.200.0.6", "-M", "do", "-s", "1400").stdout
        assert "From 169.254.1.1" in out and "mtu = 1380" in out, out
        route = a1.ns.run("ip", "route", "get", "10.200.0.6").stdout
        assert re.search(r"\bmtu 1380\b", route), route
        assert ping(a1, "10.200.0.6", "-M", "do", "-s", "1352").returncode == 0
        big = "y" * 30000
        assert topo.client(a1, "tcp", "10.200.0.6", PORT, big) == f"b2 {big}"
    finally:
        for host in hosts:
            host.ip("link", "set", "eth0", "mtu", "1500")


def expected(lab, host: int) -> dict:
    return {wl.ifname: (topo.SPACES[wl.space], wl.ipv4) for wl in lab["wls"].values()
            if wl.host == host and wl.space}


def reattach_under_ping(lab, fresh):
    """Every endpoint re-attached by the `fresh` Translators while a1 pings a2 every 10 ms:
    all 300 pings answered."""
    pinger = lab["wls"]["a1"].ns.popen("ping", "-q", "-c", "300", "-i", "0.01", "-W", "2",
                                       "10.200.0.6", stdout=subprocess.PIPE, text=True)
    for i, tr in enumerate(fresh):
        for ifname, (prefix, ipv4) in expected(lab, i).items():
            tr.attach(ifname, prefix, ipv4)
    out, _ = pinger.communicate(timeout=60)
    assert "300 packets transmitted, 300 received" in out, out


def test_restart_adopts_what_is_attached(lab):
    """A new Translator on the same pin directory (a restarted Felix) reports what is
    attached, and re-attaching everything under a 10 ms ping loses nothing."""
    fresh = [Translator(pin_dir=t.pin_dir, run=topo.netns_runner(h))
             for t, h in zip(lab["translators"], lab["hosts"], strict=True)]
    for i, tr in enumerate(fresh):
        assert tr.attached() == expected(lab, i)
    reattach_under_ping(lab, fresh)


def test_upgrade_swaps_programs_without_loss(lab, tmp_path):
    """A Felix with a new object (here: the same programs in a file with other bytes) loads
    it next to the pinned map and swaps every endpoint's filters under a 10 ms ping."""
    new_obj = tmp_path / "xlat.o"
    new_obj.write_bytes(open(OBJ_PATH, "rb").read() + b"upgrade")
    fresh = [Translator(pin_dir=t.pin_dir, obj_path=str(new_obj), run=topo.netns_runner(h))
             for t, h in zip(lab["translators"], lab["hosts"], strict=True)]
    before = filter_prog(lab["hosts"][0], "calia1")
    assert fresh[0].attached() == {}  # old programs: a Felix re-attaches every endpoint
    reattach_under_ping(lab, fresh)
    assert filter_prog(lab["hosts"][0], "calia1") != before
    assert fresh[0].attached() == expected(lab, 0)
    progs = [d for d in os.listdir(fresh[0].pin_dir) if d.startswith("progs-")]
    assert len(progs) == 1, progs


def filter_prog(host, ifname: str) -> str:
    out = host.run("tc", "filter", "show", "dev", ifname, "ingress").stdout
    return re.search(r" id (\d+)", out).group(1)


def test_detach_then_attach(lab):
    tr, a1 = lab["translators"][0], lab["wls"]["a1"]
    prefix, ipv4 = topo.SPACES["blue"], a1.ipv4
    try:
        tr.detach(a1.ifname)
        tr.detach(a1.ifname)  # idempotent
        assert a1.ifname not in tr.attached()
        assert "bpf" not in lab["hosts"][0].run("tc", "filter", "show", "dev", a1.ifname,
                                                "ingress").stdout
        assert ping(a1, "10.200.0.6").returncode != 0
    finally:
        tr.attach(a1.ifname, prefix, ipv4)
    assert tr.attached()[a1.ifname] == (prefix, ipaddress.IPv4Address("10.200.0.5"))
    assert ping(a1, "10.200.0.6").returncode == 0
    assert ping(lab["wls"]["b1"], "10.200.0.6").returncode == 0  # b1 untouched throughout
