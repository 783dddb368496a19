"""Security properties on a 2-host lab (etcd, IPv4 + IPv6), checked where packets land.

Workloads: c1 (role=other) and web1 (role=web) on host1; s2 (role=db) and n2 (role=other)
on host2. A policy lets only role=web reach role=db. A UDP listener in the target records
the source of every datagram that arrives, so "blocked" means "never delivered", not "no
reply came back".

- anti-spoofing: a workload sending with another workload's address (an address added in
  its namespace, `ping -I`, a raw IPv4 socket) — IPv4 and IPv6 — delivers nothing;
- a workload cannot reach its host (DefaultEndpointToHostAction Drop), can with Accept,
  and not when its egress policy denies it even then;
- a denied workload cannot reach the target directly, from the target's own host, through a
  route via its host's fabric address, nor in an IP-in-IP packet addressed to a host;
- Felix's health (9099) and metrics (9091) ports listen on loopback only unless healthHost /
  prometheusMetricsHost say otherwise;
- BGP sessions with an MD5 password from `$CALICO_BGP_SECRETS_DIR/<secret>/<key>` come up
  with the same password at both ends and stay down with a wrong one (a lab of its own,
  mesh off, per-node BGPPeers).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.faults import lab_traffic as lt
from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceNotFound
from calico.lab.proc import netns_exec, sh
from tests.conftest import require_programs, require_root

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.etcd]

UDP_PORT = 9000
RECEIVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
while True:
    data, src = s.recvfrom(2048)
    print(src[0].removeprefix("::ffff:"), data.decode(errors="replace"), flush=True)
"""
SENDER = r"""
import socket, struct, sys
mode, src, dst, tag = sys.argv[1:5]
port = int(sys.argv[5])
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
def ipv4(src, dst, proto, payload):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload
def udp(payload):
    return struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
for _ in range(3):
    if mode == "bind":
        fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.sendto(tag.encode(), (dst, port))
    elif mode == "raw":
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s.sendto(ipv4(src, dst, 17, udp(tag.encode())), (dst, 0))
    elif mode == "ipip":  # inner packet src -> dst, sent to the host address argv[6]
        outer_dst = sys.argv[6]
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
        s.sendto(ipv4(src, dst, 17, udp(tag.encode())), (outer_dst, 0))
"""


class Receiver:
    """A UDP listener in a namespace, writing one line per datagram to a file; `got(tag)`
    is the set of sources that sent `tag`."""

    def __init__(self, ns: str, log_path: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                      RECEIVER, str(UDP_PORT)], stdout=self._log,
                                     start_new_session=True)
        lt.wait_for(lambda: sh("ip", "netns", "exec", ns, "ss", "-Hlun",
                               f"sport = :{UDP_PORT}").stdout.strip() != "", 5, "receiver")

    def got(self, tag: str, settle: float = 0.3) -> set[str]:
        time.sleep(settle)
        with open(self.log_path) as f:
            lines = [line.split(" ", 1) for line in f.read().splitlines() if " " in line]
        return {src for src, t in lines if t == tag}

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log.close()


def send(lab, wl: str, mode: str, src: str, dst: str, tag: str, *extra: str) -> None:
    netns_exec(lab.workload(wl)["netns"], sys.executable, "-c", SENDER, mode, src, dst, tag,
               str(UDP_PORT), *extra)


def v4(lab, wl):
    return next(a for a in lab.workload(wl)["addresses"] if ":" not in a)


def v6(lab, wl):
    return next(a for a in lab.workload(wl)["addresses"] if ":" in a)


def client(lab):
    backend = lab.backend()
    return backend, ResourceClient(backend)


def apply(lab, *resources):
    backend, c = client(lab)
    try:
        for r in resources:
            c.apply({"apiVersion": "projectcalico.org/v3", **r})
    finally:
        backend.close()


def delete(lab, kind, name):
    backend, c = client(lab)
    try:
        c.delete(kind, name)
    except ResourceNotFound:
        pass
    finally:
        backend.close()


def felix_config(lab, name, spec):
    apply(lab, {"kind": "FelixConfiguration", "metadata": {"name": name}, "spec": spec})


@pytest.fixture(scope="module")
def lab():
    require_root()
    require_programs("bird", "birdc", "etcd", "ping", "ss")
    with lt.lab_session("s", hosts=2, ipv6=True, datastore="etcdv3") as lab:
        lab.add_workload("host1", "c1", {"role": "other"})
        lab.add_workload("host1", "web1", {"role": "web"})
        lab.add_workload("host2", "s2", {"role": "db"})
        lab.add_workload("host2", "n2", {"role": "other"})
        apply(lab, {"kind": "GlobalNetworkPolicy", "metadata": {"name": "web-to-db"},
                    "spec": {"selector": "role == 'db'", "types": ["Ingress"],
                             "ingress": [{"action": "Allow",
                                          "source": {"selector": "role == 'web'"}}]}})
        for addr in (v4(lab, "s2"), v6(lab, "s2")):
            lt.wait_for(lambda a=addr: lab.ping("web1", a, timeout=0.5), 10, f"web1 -> {addr}")
        lt.wait_for(lambda: not lab.ping("c1", v4(lab, "s2"), timeout=0.5), 10,
                    "policy in force")
        yield lab


@pytest.fixture
def receiver(lab, tmp_path):
    r = Receiver(lab.workload("s2")["netns"], str(tmp_path / "received"))
    yield r
    r.close()


def test_a_workload_cannot_spoof_another_address(lab, receiver, figures):
    c1_ns = lab.workload("c1")["netns"]
    forged4, forged6 = v4(lab, "web1"), v6(lab, "web1")  # the allowed peer's addresses
    # Control: web1's real packets arrive.
    send(lab, "web1", "bind", forged4, v4(lab, "s2"), "real4")
    send(lab, "web1", "bind", forged6, v6(lab, "s2"), "real6")
    sh("ip", "netns", "exec", c1_ns, "ip", "addr", "add", f"{forged4}/32", "dev", "eth0")
    sh("ip", "netns", "exec", c1_ns, "ip", "-6", "addr", "add", f"{forged6}/128", "dev",
       "eth0", "nodad")
    try:
        send(lab, "c1", "bind", forged4, v4(lab, "s2"), "forged4")
        send(lab, "c1", "bind", forged6, v6(lab, "s2"), "forged6")
        send(lab, "c1", "raw", forged4, v4(lab, "s2"), "raw4")
        send(lab, "c1", "raw", "10.65.255.254", v4(lab, "s2"), "raw4-unused")
        pings = [netns_exec(c1_ns, "ping", f"-{v}", "-c", "3", "-i", "0.2", "-W", "1", "-I",
                            src, dst, check=False)
                 for v, src, dst in ((4, forged4, v4(lab, "s2")), (6, forged6, v6(lab, "s2")))]
    finally:
        sh("ip", "netns", "exec", c1_ns, "ip", "addr", "del", f"{forged4}/32", "dev", "eth0",
           check=False)
        sh("ip", "netns", "exec", c1_ns, "ip", "-6", "addr", "del", f"{forged6}/128", "dev",
           "eth0", check=False)
    assert receiver.got("real4") == {forged4} and receiver.got("real6") == {forged6}
    delivered = {t: receiver.got(t) for t in ("forged4", "forged6", "raw4", "raw4-unused")}
    figures["lab spoofed datagrams delivered"] = sum(len(v) for v in delivered.values())
    assert delivered == {t: set() for t in delivered}
    assert all(p.returncode != 0 for p in pings), [p.stdout for p in pings]


def _tcp_ok(lab, wl: str, addr: str, port: int) -> bool:
    proc = netns_exec(lab.workload(wl)["netns"], sys.executable, "-c",
                      "import socket,sys; socket.create_connection((sys.argv[1], "
                      "int(sys.argv[2])), timeout=1).close()", addr, str(port), check=False)
    return proc.returncode == 0


def _reaches_host(lab, wl: str) -> dict[str, bool]:
    h = lab.host("host1")
    a4, a6 = h["address"].split("/")[0], h["address6"].split("/")[0]
    return {"ping4": lab.ping(wl, a4, 1), "ping6": lab.ping(wl, a6, 1),
            "tcp4": _tcp_ok(lab, wl, a4, 7200), "tcp6": _tcp_ok(lab, wl, a6, 7200)}


def _wait_felix(lab, host, before):
    lt.wait_felix_programmed(lab, host, before, timeout=30)


def test_workload_reaches_its_host_only_when_allowed(lab, figures):
    host_ns = lab.host("host1")["netns"]
    listener = subprocess.Popen(["ip", "netns", "exec", host_ns, "socat",
                                 "TCP6-LISTEN:7200,fork,reuseaddr,ipv6only=0", "PIPE"],
                                start_new_session=True)
    try:
        time.sleep(0.3)
        assert _reaches_host(lab, "c1") == dict.fromkeys(("ping4", "ping6", "tcp4", "tcp6"),
                                                         False)
        before = lt.node_log(lab, "host1").count(lt.PROGRAMMED)
        felix_config(lab, "default", {"defaultEndpointToHostAction": "Accept"})
        _wait_felix(lab, "host1", before)
        got = {}
        lt.wait_for(lambda: got.update(_reaches_host(lab, "c1")) or all(got.values()), 10,
                    "c1 reaches host1 with Accept")
        # Accept comes after the workload's egress policy: a policy denying it still wins.
        apply(lab, {"kind": "GlobalNetworkPolicy", "metadata": {"name": "no-host"},
                    "spec": {"selector": "role == 'other'", "types": ["Egress"],
                             "egress": [
                                 {"action": "Deny", "destination": {"nets": ["198.18.0.0/24"]}},
                                 {"action": "Deny",
                                  "destination": {"nets": ["fd00:198:18::/64"]}},
                                 {"action": "Allow"}]}})
        lt.wait_for(lambda: not any(_reaches_host(lab, "c1").values()), 10,
                    "egress policy blocks c1 -> host1 despite Accept")
        assert all(_reaches_host(lab, "web1").values())  # not selected by it
    finally:
        listener.kill()
        listener.wait()
        delete(lab, "GlobalNetworkPolicy", "no-host")
        before = lt.node_log(lab, "host1").count(lt.PROGRAMMED)
        felix_config(lab, "default", {})
        _wait_felix(lab, "host1", before)
    assert not any(_reaches_host(lab, "c1").values())


def test_denied_workload_cannot_reach_target_even_through_a_host(lab, receiver):
    s2_4, s2_6 = v4(lab, "s2"), v6(lab, "s2")
    send(lab, "web1", "bind", v4(lab, "web1"), s2_4, "allowed")
    send(lab, "c1", "bind", v4(lab, "c1"), s2_4, "direct4")
    send(lab, "c1", "bind", v6(lab, "c1"), s2_6, "direct6")
    send(lab, "n2", "bind", v4(lab, "n2"), s2_4, "same-host4")
    send(lab, "n2", "bind", v6(lab, "n2"), s2_6, "same-host6")
    # Route via host1's fabric address (on-link through the veth), and IP-in-IP to each
    # host's address hoping it decapsulates and forwards.
    c1_ns = lab.workload("c1")["netns"]
    h1 = lab.host("host1")["address"].split("/")[0]
    h2 = lab.host("host2")["address"].split("/")[0]
    sh("ip", "netns", "exec", c1_ns, "ip", "route", "add", f"{s2_4}/32", "via", h1, "dev",
       "eth0", "onlink")
    try:
        send(lab, "c1", "bind", v4(lab, "c1"), s2_4, "via-host")
    finally:
        sh("ip", "netns", "exec", c1_ns, "ip", "route", "del", f"{s2_4}/32", check=False)
    send(lab, "c1", "ipip", v4(lab, "c1"), s2_4, "ipip-h2", h2)
    send(lab, "c1", "ipip", v4(lab, "web1"), s2_4, "ipip-h2-forged", h2)
    send(lab, "c1", "ipip", v4(lab, "c1"), s2_4, "ipip-h1", h1)
    assert receiver.got("allowed") == {v4(lab, "web1")}
    tags = ("direct4", "direct6", "same-host4", "same-host6", "via-host", "ipip-h2",
            "ipip-h2-forged", "ipip-h1")
    assert {t: receiver.got(t) for t in tags} == {t: set() for t in tags}
    assert not _tcp_ok(lab, "c1", s2_4, UDP_PORT) and not lab.ping("c1", s2_6, 1)


def _listeners(lab, host: str) -> dict[int, set[str]]:
    out = sh("ip", "netns", "exec", lab.host(host)["netns"], "ss", "-Hltn").stdout
    found: dict[int, set[str]] = {}
    for line in out.splitlines():
        local = line.split()[3]
        addr, _, port = local.rpartition(":")
        if port in ("9099", "9091"):
            found.setdefault(int(port), set()).add(addr)
    return found


def _from_host2(lab, port: int) -> bool:
    addr = lab.host("host1")["address"].split("/")[0]
    proc = netns_exec(lab.host("host2")["netns"], sys.executable, "-c",
                      "import socket,sys; socket.create_connection((sys.argv[1], "
                      "int(sys.argv[2])), timeout=1).close()", addr, str(port), check=False)
    return proc.returncode == 0


def test_felix_health_and_metrics_listen_on_loopback_only(lab):
    got: dict[int, set[str]] = {}
    try:
        felix_config(lab, "default", {"healthEnabled": True, "prometheusMetricsEnabled": True})
        lt.wait_for(lambda: got.update(_listeners(lab, "host1")) or len(got) == 2, 30,
                    "health and metrics ports listening")
        assert all(addrs <= {"127.0.0.1", "[::1]"} for addrs in got.values()), got
        assert not _from_host2(lab, 9099) and not _from_host2(lab, 9091)
        felix_config(lab, "node.host1", {"healthHost": "0.0.0.0",
                                         "prometheusMetricsHost": "0.0.0.0"})
        lt.wait_for(lambda: _listeners(lab, "host1") == {9099: {"0.0.0.0"},
                                                         9091: {"0.0.0.0"}}, 30,
                    "configured hosts take effect")
        assert _from_host2(lab, 9099) and _from_host2(lab, 9091)
        # Still not from a workload: DefaultEndpointToHostAction Drop.
        assert not _tcp_ok(lab, "c1", lab.host("host1")["address"].split("/")[0], 9099)
    finally:
        delete(lab, "FelixConfiguration", "node.host1")
        felix_config(lab, "default", {})


# ---- BGP MD5 -----------------------------------------------------------------------------


def _write_secret(lab, name: str, value: str) -> None:
    path = os.path.join(lab.dir, "secrets", name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "password"), "w") as f:
        f.write(value + "\n")


def _md5_peers(lab, secrets: dict[str, str]) -> None:
    """host1 <-> host2 per family, each end's BGPPeer naming its own secret. Each end is
    configured by hand (`reversePeering: Manual`): otherwise a BGPPeer whose peerIP is one of
    our nodes also makes that node peer back, with this BGPPeer's password, as Calico does."""
    res = []
    for me, other in (("host1", "host2"), ("host2", "host1")):
        h = lab.host(other)
        for fam, key in (("v4", "address"), ("v6", "address6")):
            res.append({"kind": "BGPPeer", "metadata": {"name": f"{me}-{fam}"},
                        "spec": {"node": me, "peerIP": h[key].split("/")[0],
                                 "asNumber": "64512", "reversePeering": "Manual",
                                 "password": {"secretKeyRef": {"name": secrets[me],
                                                               "key": "password"}}}})
    apply(lab, *res)


def _established(lab, host: str) -> int:
    return sum(1 for p in lab.peers(host) if p["established"])


def _md5_sessions_up(lab) -> bool:
    """Only the per-node (password) sessions exist, and all are Established."""
    for h in ("host1", "host2"):
        peers = lab.peers(h)
        if len(peers) != 2 or not all(p["name"].startswith("Node_") and p["established"]
                                      for p in peers):
            return False
    return True


def test_bgp_md5_password_sessions(figures):
    require_root()
    with lt.lab_session("m", hosts=2, ipv6=True, datastore="etcdv3") as lab:
        _write_secret(lab, "good1", "s3cret-Pa55")
        _write_secret(lab, "good2", "s3cret-Pa55")
        _write_secret(lab, "wrong", "not-the-password")
        apply(lab, {"kind": "BGPConfiguration", "metadata": {"name": "default"},
                    "spec": {"nodeToNodeMeshEnabled": False}})
        _md5_peers(lab, {"host1": "good1", "host2": "good2"})
        took = lt.wait_for(lambda: _md5_sessions_up(lab), 30, "MD5 sessions Established")
        figures["lab BGP MD5 sessions up (s)"] = round(took, 2)
        conf = open(os.path.join(lab.host("host1")["run_dir"], "bird.conf")).read()
        assert conf.count('password "s3cret-Pa55";') == 2
        assert {p["name"] for p in lab.peers("host1")} == {"Node_198_18_0_12",
                                                          "Node_fd00_198_18__12"}
        # host2 now uses a different password: the sessions go down and stay down.
        _md5_peers(lab, {"host1": "good1", "host2": "wrong"})
        lt.wait_for(lambda: _established(lab, "host1") == 0 == _established(lab, "host2"),
                    60, "sessions down with a wrong password")
        conf2 = open(os.path.join(lab.host("host2")["run_dir"], "bird.conf")).read()
        assert conf2.count('password "not-the-password";') == 2
        time.sleep(8)  # longer than BIRD's connect retry (5 s): still down
        assert _established(lab, "host1") == 0 and _established(lab, "host2") == 0
        _md5_peers(lab, {"host1": "good1", "host2": "good2"})
        lt.wait_for(lambda: _md5_sessions_up(lab), 30, "MD5 sessions back")
