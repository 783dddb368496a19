"""The few rtnetlink requests a CNI ADD, DEL and CHECK make, packed by hand.

Why not pyroute2 (which the plugin used before): on this machine one ADD spent 50-75 ms of
CPU inside pyroute2 (an asyncio loop per request, a link dump for every name lookup, a socket
setup per IPRoute), against about 1 ms for the kernel work; calico-node serves the ADDs of a
host one after the other on a single interpreter, so that cost was the ceiling on ADDs per
second. Each request here is one `send()` and the `recv()`s of its answer; a name lookup asks
the kernel for that one link. calico.felix.dataplane.netlink has the same codec idea for bulk
route programming; the CNI plugin sits below Felix in the layering, hence its own copy of the
dozen constants it needs.

`Netlink` is one NETLINK_ROUTE socket, in the namespace of the thread that opened it (a socket
keeps its namespace, so one opened inside the container's namespace can be used after the
thread switched back). A failed request raises `NetlinkError` with the kernel's errno. Not
thread-safe: one per request.
"""

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE = 1, 3, 4, 16
IFLA_LINKINFO, IFLA_NET_NS_FD, IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 18, 28, 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTN_UNICAST, RTPROT_STATIC = 254, 1, 4
IFF_UP = 0x1
NLA_F_NESTED = 0x8000
OPERSTATES = {0: "UNKNOWN", 1: "NOTPRESENT", 2: "DOWN", 3: "LOWERLAYERDOWN", 4: "TESTING",
              5: "DORMANT", 6: "UP"}

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table proto scope type flags
_RTA = struct.Struct("=HH")
_I32 = struct.Struct("=i")


class NetlinkError(OSError):
    """The kernel refused a request (`errno` is its reason)."""


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * (-length % 4)


def _name(name: str) -> bytes:
    return attr(IFLA_IFNAME, name.encode() + b"\0")


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + 4 <= end:
        length, kind = _RTA.unpack_from(data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


class Netlink:
    """One rtnetlink socket (see the module docstring)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, kind: int, body: bytes, flags: int = 0
                ) -> list[tuple[int, bytes, int, int]]:
        """Send one request; its answer as (type, buffer, payload offset, end) per message.
        A dump (NLM_F_DUMP) reads to NLMSG_DONE, anything else to the kernel's ack."""
        self._seq += 1
        seq, dump = self._seq, (flags & NLM_F_DUMP) == NLM_F_DUMP
        flags |= NLM_F_REQUEST | (0 if dump else NLM_F_ACK)
        self.sock.send(_HDR.pack(16 + len(body), kind, flags, seq, 0) + body)
        out = []
        while True:
            data = self.sock.recv(1 << 16)
            for mtype, mseq, start, end in _messages(data):
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err = -_I32.unpack_from(data, start)[0]
                    if err:
                        raise NetlinkError(err, os.strerror(err))
                    return out
                out.append((mtype, data, start, end))

    # ---- links ---------------------------------------------------------------------------

    def link(self, name: str = "", index: int = 0) -> dict | None:
        """{index, name, mac, operstate} of one link by name or index; None if absent."""
        try:
            answer = self.request(RTM_GETLINK, _IFINFO.pack(0, 0, index, 0, 0)
                                  + (_name(name) if name else b""))
        except NetlinkError as err:
            if err.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        for _, data, start, end in answer:
            _, _, idx, _, _ = _IFINFO.unpack_from(data, start)
            attrs = _attrs(data, start + _IFINFO.size, end)
            return {"index": idx,
                    "name": attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(),
                    "mac": ":".join(f"{b:02x}" for b in attrs.get(IFLA_ADDRESS, b"")),
                    "operstate": OPERSTATES.get(attrs.get(IFLA_OPERSTATE, b"\0")[0], "")}
        return None

    def add_veth(self, name: str, mac: str, mtu: int, peer: str, peer_netns_fd: int) -> None:
        """A veth pair in one request: `name` here, `peer` in the namespace of the fd."""
        mtu_attr = attr(IFLA_MTU, struct.pack("=I", mtu))
        peer_msg = (_IFINFO.pack(0, 0, 0, 0, 0) + _name(peer) + mtu_attr
                    + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd)))
        info = attr(IFLA_INFO_KIND, b"veth") + attr(
            IFLA_INFO_DATA | NLA_F_NESTED, attr(VETH_INFO_PEER | NLA_F_NESTED, peer_msg))
        body = (_IFINFO.pack(0, 0, 0, 0, 0) + _name(name) + mtu_attr
                + attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
                + attr(IFLA_LINKINFO | NLA_F_NESTED, info))
        self.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL)

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))

    def delete_link(self, index: int) -> None:
        self.request(RTM_DELLINK, _IFINFO.pack(0, 0, index, 0, 0))

    # ---- addresses -----------------------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        ip = ipaddress.ip_address(address)
        body = (_IFADDR.pack(_family(ip.version), prefixlen, flags, 0, index)
                + attr(IFA_ADDRESS, ip.packed))
        if ip.version == 4:
            body += attr(IFA_LOCAL, ip.packed)
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)

    def addresses(self, index: int, family: int = 0) -> list[tuple[str, int]]:
        """(address, prefix length) of one link."""
        out = []
        for _, data, start, end in self.request(
                RTM_GETADDR, _IFADDR.pack(family, 0, 0, 0, 0), NLM_F_DUMP):
            fam, plen, _, _, idx = _IFADDR.unpack_from(data, start)
            attrs = _attrs(data, start + _IFADDR.size, end)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if idx == index and raw and (not family or fam == family):
                out.append((str(ipaddress.ip_address(raw)), plen))
        return out

    # ---- routes --------------------------------------------------------------------------

    def add_route(self, dst: str, oif: int, *, scope: int = 0, proto: int = RTPROT_STATIC,
                  gateway: str = "") -> None:
        net = ipaddress.ip_network(dst)
        body = (_RTMSG.pack(_family(net.version), net.prefixlen, 0, 0, RT_TABLE_MAIN, proto,
                            scope, RTN_UNICAST, 0)
                + (attr(RTA_DST, net.network_address.packed) if net.prefixlen else b"")
                + attr(RTA_OIF, _I32.pack(oif)))
        if gateway:
            body += attr(RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)

    def route_oif(self, address: str) -> int:
        """The interface the kernel routes `address` out of (0 if none)."""
        ip = ipaddress.ip_address(address)
        body = (_RTMSG.pack(_family(ip.version), ip.max_prefixlen, 0, 0, 0, 0, 0, 0, 0)
                + attr(RTA_DST, ip.packed))
        for _, data, start, end in self.request(RTM_GETROUTE, body):
            oif = _attrs(data, start + _RTMSG.size, end).get(RTA_OIF)
            return _I32.unpack(oif)[0] if oif else 0
        return 0

    def routes(self, oif: int) -> list[dict]:
        """Main-table routes out of one link: {family, dst_len, gateway}."""
        out = []
        for _, data, start, end in self.request(
                RTM_GETROUTE, _RTMSG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0), NLM_F_DUMP):
            family, dst_len, _, _, table, _, _, _, _ = _RTMSG.unpack_from(data, start)
            attrs = _attrs(data, start + _RTMSG.size, end)
            if RTA_OIF not in attrs or _I32.unpack(attrs[RTA_OIF])[0] != oif:
                continue
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if table != RT_TABLE_MAIN:
                continue
            gw = attrs.get(RTA_GATEWAY)
            out.append({"family": family, "dst_len": dst_len,
                        "gateway": str(ipaddress.ip_address(gw)) if gw else ""})
        return out


def _messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(type, seq, payload offset, end) of each message in a received buffer."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _, seq, _ = _HDR.unpack_from(data, offset)
        if length < 16:
            break
        yield kind, seq, offset + 16, offset + length
        offset += (length + 3) & ~3
