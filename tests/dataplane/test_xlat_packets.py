"""The translator's output, byte by byte: packets built here run through the pinned programs
with BPF_PROG_TEST_RUN (`bpftool prog run`, the endpoint's ifindex in the context) and the
result is checked against RFC 7915 with checksums computed here, independently of the C code.

The endpoint: veth `x0` in a namespace of its own, space prefix fd00:b1::/96, IPv4 10.200.0.5.
"""

from __future__ import annotations

import ipaddress
import json
import os
import struct
import subprocess

import pytest

from calico.felix.dataplane.xlat.translator import OBJ_PATH, Translator
from tests.conftest import require_programs
from tests.fixtures import xlat_topo as topo
from tests.fixtures.netns import netns_set

P = topo.SPACES["blue"]
ME, PEER = bytes([10, 200, 0, 5]), bytes([10, 200, 0, 6])
GATEWAY = bytes([169, 254, 1, 1])
ETH = b"\xee" * 6 + b"\x02" * 6
OK, SHOT = 0, 2


def v6(v4: bytes, prefix: ipaddress.IPv6Network = P) -> bytes:
    return prefix.network_address.packed[:12] + v4


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def with_csum(data: bytes, at: int, pseudo: bytes = b"") -> bytes:
    data = data[:at] + b"\0\0" + data[at + 2:]
    return data[:at] + struct.pack("!H", csum(pseudo + data)) + data[at + 2:]


def pseudo4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def pseudo6(src: bytes, dst: bytes, nh: int, length: int) -> bytes:
    return src + dst + struct.pack("!I3xB", length, nh)


def ip4(src: bytes, dst: bytes, proto: int, payload: bytes, tos: int = 0, ttl: int = 64,
        frag: int = 0x4000) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), 0, frag, ttl, proto, 0,
                    src, dst)
    return with_csum(h, 10) + payload


def ip6(src: bytes, dst: bytes, nh: int, payload: bytes, tc: int = 0, hops: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", (6 << 28) | (tc << 20), len(payload), nh, hops, src,
                       dst) + payload


def l4_4(src: bytes, dst: bytes, proto: int, body: bytes) -> bytes:
    """A TCP/UDP/ICMP message with a valid IPv4 checksum."""
    at = {1: 2, 6: 16, 17: 6}[proto]
    return with_csum(body, at, b"" if proto == 1 else pseudo4(src, dst, proto, len(body)))


def l4_6(src: bytes, dst: bytes, nh: int, body: bytes) -> bytes:
    at = {58: 2, 6: 16, 17: 6}[nh]
    return with_csum(body, at, pseudo6(src, dst, nh, len(body)))


UDP = struct.pack("!HHHH", 40000, 7000, 8, 0)  # an empty datagram: 8 bytes, all of it kept
TCP = struct.pack("!HHIIBBHHH", 40000, 7000, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + b"data"
ECHO4 = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1)
ECHO6 = struct.pack("!BBHHH", 128, 0, 0, 0x1234, 1)


@pytest.fixture(scope="module")
def prog():
    require_programs("tc", "bpftool")
    if not os.path.exists(OBJ_PATH):
        pytest.fail(f"{OBJ_PATH} is missing: run `make setup` to build it")
    bpffs = topo.mount_bpffs()
    try:
        with netns_set() as nets:
            ns = nets.add("xlpkt")
            ns.ip("link", "add", "x0", "type", "veth", "peer", "name", "x1")
            ns.ip("link", "set", "x0", "up")
            tr = Translator(pin_dir=f"{bpffs}/pkt", run=topo.netns_runner(ns))
            tr.attach("x0", P, ipaddress.IPv4Address("10.200.0.5"))
            ifindex = json.loads(ns.ip("-j", "link", "show", "x0").stdout)[0]["ifindex"]
            progs = next(d for d in os.listdir(tr.pin_dir) if d.startswith("progs-"))
            yield lambda direction, frame: run_prog(
                ns, f"{tr.pin_dir}/{progs}/xlat_{direction}", ifindex, frame)
    finally:
        topo.close_bpffs(bpffs)


def run_prog(ns, path: str, ifindex: int, frame: bytes) -> tuple[int, bytes]:
    folder = f"/run/{os.path.basename(ns.name)}-io"
    os.makedirs(folder, exist_ok=True)
    ctx = bytearray(44)
    struct.pack_into("=I", ctx, 40, ifindex)  # __sk_buff.ifindex
    with open(f"{folder}/in", "wb") as f:
        f.write(frame)
    with open(f"{folder}/ctx", "wb") as f:
        f.write(bytes(ctx))
    out = ns.run("bpftool", "prog", "run", "pinned", path, "data_in", f"{folder}/in",
                 "data_out", f"{folder}/out", "ctx_in", f"{folder}/ctx").stdout
    with open(f"{folder}/out", "rb") as f:
        data = f.read()
    subprocess.run(["rm", "-rf", folder], check=True)
    return int(out.split("Return value: ")[1].split(",")[0]), data


def frame4(packet: bytes) -> bytes:
    return ETH + b"\x08\x00" + packet


def frame6(packet: bytes) -> bytes:
    return ETH + b"\x86\xdd" + packet


def parse6(frame: bytes) -> tuple[dict, bytes]:
    assert frame[12:14] == b"\x86\xdd"
    first, plen, nh, hops, src, dst = struct.unpack("!IHBB16s16s", frame[14:54])
    body = frame[54:54 + plen]
    assert len(body) == plen
    return {"tc": (first >> 20) & 0xFF, "nh": nh, "hops": hops, "src": src, "dst": dst}, body


def parse4(frame: bytes) -> tuple[dict, bytes]:
    assert frame[12:14] == b"\x08\x00"
    hdr = frame[14:34]
    assert csum(hdr) == 0, "IPv4 header checksum"
    vihl, tos, tot, _, frag, ttl, proto, _, src, dst = struct.unpack("!BBHHHBBH4s4s", hdr)
    assert vihl == 0x45
    return {"tos": tos, "frag": frag, "ttl": ttl, "proto": proto, "src": src,
            "dst": dst}, frame[34:14 + tot]


# ---- IPv4 -> IPv6 (xlat_ingress) -----------------------------------------------------------

@pytest.mark.parametrize(("proto", "body", "nh"), [
    (1, ECHO4 + b"abcdefgh", 58), (1, b"\x00" + ECHO4[1:] + b"xyz", 58), (17, UDP + b"hi", 17),
    (6, TCP, 6)])
def test_ingress_translates_header_and_checksum(prog, proto, body, nh):
    if proto == 17:
        body = struct.pack("!HHHH", 40000, 7000, len(body), 0) + body[8:]
    rc, out = prog("ingress", frame4(ip4(ME, PEER, proto, l4_4(ME, PEER, proto, body),
                                         tos=0xB8, ttl=9)))
    assert rc == OK
    hdr, l4 = parse6(out)
    assert (hdr["tc"], hdr["nh"], hdr["hops"]) == (0xB8, nh, 9)
    assert (hdr["src"], hdr["dst"]) == (v6(ME), v6(PEER))
    assert csum(pseudo6(hdr["src"], hdr["dst"], nh, len(l4)) + l4) == 0
    if proto == 1:
        assert l4[0] == {8: 128, 0: 129}[body[0]]


@pytest.mark.parametrize(("what", "packet"), [
    ("UDP with a zero checksum", ip4(ME, PEER, 17, UDP)),
    ("an ICMP fragment", ip4(ME, PEER, 1, l4_4(ME, PEER, 1, ECHO4), frag=0x2000)),
    ("GRE", ip4(ME, PEER, 47, b"\0" * 8)),
    ("ICMP timestamp", ip4(ME, PEER, 1, l4_4(ME, PEER, 1, b"\x0d" + b"\0" * 19))),
])
def test_ingress_drops_what_it_does_not_translate(prog, what, packet):
    assert prog("ingress", frame4(packet))[0] == SHOT, what


def test_ingress_passes_arp_and_drops_the_workloads_ipv6(prog):
    arp = ETH + b"\x08\x06" + bytes(28)
    assert prog("ingress", arp) == (OK, arp)
    echo = ip6(v6(ME), v6(PEER), 58, l4_6(v6(ME), v6(PEER), 58, ECHO6))
    assert prog("ingress", frame6(echo))[0] == SHOT


def error4(icmp_type: int, code: int, rest: int, inner: bytes) -> bytes:
    """An ICMPv4 error the workload (ME) sends PEER about `inner`, a packet PEER sent it."""
    body = struct.pack("!BBHI", icmp_type, code, 0, rest) + inner
    return ip4(ME, PEER, 1, l4_4(ME, PEER, 1, body))


@pytest.mark.parametrize(("t4", "c4", "rest4", "t6", "c6", "rest6"), [
    (3, 3, 0, 1, 4, 0),        # port unreachable
    (3, 4, 1380, 2, 0, 1400),  # fragmentation needed -> Packet Too Big, MTU + 20
    (11, 0, 0, 3, 0, 0),       # time exceeded
    (3, 2, 0, 4, 1, 6),        # protocol unreachable -> parameter problem, next header
    (3, 13, 0, 1, 1, 0),       # communication administratively prohibited
    (3, 1, 0, 1, 0, 0),        # host unreachable -> no route
])
@pytest.mark.parametrize("inner_proto", [17, 1])
def test_ingress_error_is_rebuilt(prog, t4, c4, rest4, t6, c6, rest6, inner_proto):
    inner_l4 = l4_4(PEER, ME, inner_proto, UDP if inner_proto == 17 else ECHO4)
    inner = ip4(PEER, ME, inner_proto, inner_l4, ttl=3)
    rc, out = prog("ingress", frame4(error4(t4, c4, rest4, inner)))
    assert rc == OK
    hdr, icmp = parse6(out)
    assert (hdr["src"], hdr["dst"], hdr["nh"]) == (v6(ME), v6(PEER), 58)
    assert csum(pseudo6(hdr["src"], hdr["dst"], 58, len(icmp)) + icmp) == 0
    t, c, _, rest = struct.unpack("!BBHI", icmp[:8])
    assert (t, c, rest) == (t6, c6, rest6)
    assert len(icmp) == 8 + 40 + 8  # the embedded packet's header and 8 bytes
    inner_hdr = ip6(v6(PEER), v6(ME), 58 if inner_proto == 1 else 17, inner_l4, hops=3)[:40]
    assert icmp[8:48] == inner_hdr
    embedded = icmp[48:]
    nh = 58 if inner_proto == 1 else 17
    assert csum(pseudo6(v6(PEER), v6(ME), nh, 8) + embedded) == 0, "embedded checksum"
    if inner_proto == 1:
        assert embedded[0] == 128


# ---- IPv6 -> IPv4 (xlat_egress) ------------------------------------------------------------

@pytest.mark.parametrize(("nh", "body", "proto"), [
    (58, ECHO6 + b"abcdefgh", 1), (58, b"\x81" + ECHO6[1:], 1), (17, UDP, 17), (6, TCP, 6)])
def test_egress_translates_header_and_checksum(prog, nh, body, proto):
    rc, out = prog("egress", frame6(ip6(v6(PEER), v6(ME), nh, l4_6(v6(PEER), v6(ME), nh, body),
                                        tc=0x28, hops=7)))
    assert rc == OK
    hdr, l4 = parse4(out)
    assert (hdr["tos"], hdr["proto"], hdr["ttl"], hdr["frag"]) == (0x28, proto, 7, 0x4000)
    assert (hdr["src"], hdr["dst"]) == (PEER, ME)
    pseudo = b"" if proto == 1 else pseudo4(PEER, ME, proto, len(l4))
    assert csum(pseudo + l4) == 0
    if proto == 1:
        assert l4[0] == {128: 8, 129: 0}[body[0]]


GREEN = topo.SPACES["green"]


@pytest.mark.parametrize(("what", "src", "dst", "nh"), [
    ("source in another space", v6(PEER, GREEN), v6(ME), 17),
    ("source outside every space", bytes(15) + b"\x01", v6(ME), 17),
    ("another address of the space", v6(PEER), v6(bytes([10, 200, 0, 7])), 17),
    ("destination in another space", v6(PEER, GREEN), v6(ME, GREEN), 17),
    ("an ICMPv6 fragment", v6(PEER), v6(ME), 44),
    ("a fragment from another space", v6(PEER, GREEN), v6(ME), 44),
    ("a routing header", v6(PEER), v6(ME), 43),
])
def test_egress_drops_what_is_not_for_this_endpoint(prog, what, src, dst, nh):
    body = {17: l4_6(src, dst, 17, UDP), 44: struct.pack("!BBHI", 58 if src == v6(PEER)
                                                          else 17, 0, 1, 7) + bytes(8),
            43: bytes(16)}[nh]
    assert prog("egress", frame6(ip6(src, dst, nh, body)))[0] == SHOT, what


def test_egress_drops_neighbour_discovery(prog):
    ns = l4_6(v6(PEER), v6(ME), 58, b"\x87" + bytes(23))
    assert prog("egress", frame6(ip6(v6(PEER), v6(ME), 58, ns)))[0] == SHOT


def error6(src: bytes, t: int, c: int, rest: int, inner: bytes) -> bytes:
    body = struct.pack("!BBHI", t, c, 0, rest) + inner
    return ip6(src, v6(ME), 58, l4_6(src, v6(ME), 58, body))


@pytest.mark.parametrize(("t6", "c6", "rest6", "t4", "c4", "rest4"), [
    (1, 4, 0, 3, 3, 0),        # port unreachable
    (2, 0, 1400, 3, 4, 1380),  # Packet Too Big -> fragmentation needed, MTU - 20
    (3, 0, 0, 11, 0, 0),       # time exceeded
    (1, 1, 0, 3, 10, 0),       # administratively prohibited
    (4, 1, 6, 3, 2, 0),        # parameter problem, next header -> protocol unreachable
])
@pytest.mark.parametrize("inner_nh", [17, 58])
@pytest.mark.parametrize("from_outside", [False, True])
def test_egress_error_is_rebuilt(prog, t6, c6, rest6, t4, c4, rest4, inner_nh, from_outside):
    """An error about a packet ME sent; from ME's peer in the space, or from a router
    outside it (then the IPv4 source is the gateway 169.254.1.1)."""
    inner_l4 = l4_6(v6(ME), v6(PEER), inner_nh, UDP if inner_nh == 17 else ECHO6)
    inner = ip6(v6(ME), v6(PEER), inner_nh, inner_l4, hops=5)
    src = ipaddress.IPv6Address("fd00:ff::1").packed if from_outside else v6(PEER)
    rc, out = prog("egress", frame6(error6(src, t6, c6, rest6, inner)))
    assert rc == OK
    hdr, icmp = parse4(out)
    assert (hdr["src"], hdr["dst"], hdr["proto"]) == (GATEWAY if from_outside else PEER, ME, 1)
    assert csum(icmp) == 0
    t, c, _, rest = struct.unpack("!BBHI", icmp[:8])
    assert (t, c, rest) == (t4, c4, rest4)
    assert len(icmp) == 8 + 20 + 8
    assert csum(icmp[8:28]) == 0, "embedded IPv4 header checksum"
    proto = 1 if inner_nh == 58 else 17
    assert icmp[8:28] == ip4(ME, PEER, proto, bytes(8), ttl=5)[:20]
    embedded = icmp[28:]
    pseudo = b"" if proto == 1 else pseudo4(ME, PEER, 17, 8)
    assert csum(pseudo + embedded) == 0, "embedded checksum"


def test_egress_drops_an_error_about_someone_elses_packet(prog):
    other = bytes([10, 200, 0, 7])
    inner = ip6(v6(other), v6(PEER), 17, l4_6(v6(other), v6(PEER), 17, UDP))
    router = ipaddress.IPv6Address("fd00:ff::1").packed
    assert prog("egress", frame6(error6(router, 2, 0, 1400, inner)))[0] == SHOT


# ---- fragments ------------------------------------------------------------------------------

DATA16 = b"0123456789abcdef"  # 8 + 16 bytes of UDP: fragments of 16 and 8 bytes


def test_ingress_fragments_get_a_fragment_header(prog):
    """Each IPv4 fragment becomes IPv6 with a Fragment header (ID in its low 16 bits); only
    the first carries the UDP header, whose checksum covers the whole datagram."""
    udp = l4_4(ME, PEER, 17, struct.pack("!HHHH", 40000, 7000, 24, 0) + DATA16)
    pieces = [(0, 0x2000, udp[:16]), (2, 0, udp[16:])]
    payload = b""
    for off, more, piece in pieces:
        packet = ip4(ME, PEER, 17, piece, frag=more | off)
        packet = with_csum(packet[:4] + b"\x43\x21" + packet[6:20], 10) + packet[20:]
        rc, out = prog("ingress", frame4(packet))
        assert rc == OK
        hdr, body = parse6(out)
        assert (hdr["nh"], hdr["src"], hdr["dst"]) == (44, v6(ME), v6(PEER))
        nh, _, frag_off, ident = struct.unpack("!BBHI", body[:8])
        assert (nh, frag_off >> 3, frag_off & 1, ident) == (17, off, bool(more), 0x4321)
        payload += body[8:]
    assert csum(pseudo6(v6(ME), v6(PEER), 17, len(payload)) + payload) == 0


def test_egress_fragments_lose_their_fragment_header(prog):
    udp = l4_6(v6(PEER), v6(ME), 17, struct.pack("!HHHH", 40000, 7000, 24, 0) + DATA16)
    payload = b""
    for off, more, piece in [(0, 1, udp[:16]), (2, 0, udp[16:])]:
        fh = struct.pack("!BBHI", 17, 0, off << 3 | more, 0x00014321)
        rc, out = prog("egress", frame6(ip6(v6(PEER), v6(ME), 44, fh + piece)))
        assert rc == OK
        hdr, body = parse4(out)
        assert (hdr["proto"], hdr["src"], hdr["dst"]) == (17, PEER, ME)
        assert (hdr["frag"] & 0x1FFF, bool(hdr["frag"] & 0x2000)) == (off, bool(more))
        assert struct.unpack("!H", out[18:20])[0] == 0x4321
        payload += body
    assert csum(pseudo4(PEER, ME, 17, len(payload)) + payload) == 0


def test_packet_too_big_about_a_fragment(prog):
    """The embedded packet keeps its fragment fields in IPv4 form, and the MTU loses the
    Fragment header's 8 bytes too."""
    udp = l4_6(v6(ME), v6(PEER), 17, struct.pack("!HHHH", 40000, 7000, 24, 0) + DATA16)
    fh = struct.pack("!BBHI", 17, 0, 0 << 3 | 1, 0x4321)
    inner = ip6(v6(ME), v6(PEER), 44, fh + udp[:16], hops=5)
    router = ipaddress.IPv6Address("fd00:ff::1").packed
    rc, out = prog("egress", frame6(error6(router, 2, 0, 1500, inner)))
    assert rc == OK
    hdr, icmp = parse4(out)
    assert hdr["src"] == GATEWAY and csum(icmp) == 0
    assert struct.unpack("!BBHI", icmp[:8])[::3] == (3, 1472)
    embedded = icmp[8:28]
    assert csum(embedded) == 0
    _, _, tot, ident, frag, ttl, proto, _, src, dst = struct.unpack("!BBHHHBBH4s4s", embedded)
    assert (tot, ident, frag, ttl, proto, src, dst) == (36, 0x4321, 0x2000, 5, 17, ME, PEER)
    assert icmp[28:32] == udp[:4]  # the ports: how the sender finds its socket


# ---- DHCP passes untranslated (OpenStack: the host's DHCP agent serves the tenant's IPv4) ---

BROADCAST, ANY = bytes([255] * 4), bytes(4)
HOST_DHCP = bytes([10, 200, 0, 1])  # the DHCP agent's address on the host


def udp4(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes = b"\x01" * 12) -> bytes:
    body = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ip4(src, dst, 17, l4_4(src, dst, 17, body))


@pytest.mark.parametrize(("what", "packet"), [
    ("a DISCOVER from 0.0.0.0 to the broadcast", udp4(ANY, BROADCAST, 68, 67)),
    ("a REBIND from the workload to the broadcast", udp4(ME, BROADCAST, 68, 67)),
])
def test_ingress_passes_a_dhcp_request_untranslated(prog, what, packet):
    assert prog("ingress", frame4(packet)) == (OK, frame4(packet)), what


def test_ingress_translates_a_unicast_renewal_like_any_datagram(prog):
    """Passed untranslated it could be routed to the default space: it stays in its own."""
    rc, out = prog("ingress", frame4(udp4(ME, HOST_DHCP, 68, 67)))
    assert rc == OK
    assert (parse6(out)[0]["src"], parse6(out)[0]["dst"]) == (v6(ME), v6(HOST_DHCP))


def test_ingress_does_not_pass_a_broadcast_from_another_port(prog):
    rc, out = prog("ingress", frame4(udp4(ME, BROADCAST, 40000, 67)))
    assert rc == OK and parse6(out)[0]["dst"] == v6(BROADCAST)  # translated, stays in P


@pytest.mark.parametrize(("what", "packet"), [
    ("an OFFER to the broadcast", udp4(HOST_DHCP, BROADCAST, 67, 68)),
    ("an ACK to the workload", udp4(HOST_DHCP, ME, 67, 68)),
])
def test_egress_passes_the_hosts_dhcp_reply_untranslated(prog, what, packet):
    assert prog("egress", frame4(packet)) == (OK, frame4(packet)), what


@pytest.mark.parametrize(("what", "packet"), [
    ("UDP to another port", udp4(HOST_DHCP, ME, 67, 69)),
    ("a reply to another address", udp4(HOST_DHCP, PEER, 67, 68)),
    ("UDP from another port", udp4(HOST_DHCP, ME, 53, 68)),
    ("a request sent the wrong way", udp4(ANY, BROADCAST, 68, 67)),
    ("TCP to port 68", ip4(HOST_DHCP, ME, 6, l4_4(HOST_DHCP, ME, 6, struct.pack(
        "!HHIIBBHHH", 67, 68, 1, 0, 5 << 4, 0x02, 65535, 0, 0)))),
    ("a fragment of a reply", ip4(HOST_DHCP, ME, 17, l4_4(HOST_DHCP, ME, 17, struct.pack(
        "!HHHH", 67, 68, 8, 0)), frag=0x2000)),
    ("an echo request", ip4(HOST_DHCP, ME, 1, l4_4(HOST_DHCP, ME, 1, ECHO4))),
])
def test_egress_drops_every_other_ipv4(prog, what, packet):
    assert prog("egress", frame4(packet))[0] == SHOT, what


def test_ingress_translates_udp_to_other_ports_from_68(prog):
    rc, out = prog("ingress", frame4(udp4(ME, PEER, 68, 69)))
    assert rc == OK
    assert parse6(out)[0]["dst"] == v6(PEER)
