"""The real kernel shim: rtnetlink for links, routes, neighbours and addresses, /proc/sys for
sysctls, optionally inside a named network namespace.

The managers (routes.py, sysctls.py, ipip.py) never touch the kernel themselves: they call a
`Kernel` object passed to their constructor. `NetlinkKernel` is the real one; unit tests pass a
fake with the same methods (see `Kernel` below for the contract).

Why a small hand-written codec instead of pyroute2's message classes: programming 10,000
routes must not cost 10,000 round trips, and on this machine pyroute2 spends 0.59 s just
*encoding* 10,000 RTM_NEWROUTE messages (struct.pack: 0.007 s), more than `ip -batch` needs for
the whole job (0.23 s). So requests are packed with `struct`, many per `send()`, and the acks
collected afterwards (`_pipeline`): only failures are acked individually, and the last request
of each window carries NLM_F_ACK so we know when the kernel has processed the window. The
kernel handles the messages of one send in order, so deletes sent before adds land first.
`benchmarks/routes_apply.py` compares this with `ip -batch` on the same routes.

Namespaces: with `netns="name"` every netlink socket is opened, and every /proc/sys file
read or written, while the calling thread is switched into that namespace (setns is
per-thread; a socket keeps the namespace it was created in). Felix itself passes no netns.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

# ---- constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/neighbour.h) ----
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x100, 0x200, 0x400, 0x300
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTMGRP_LINK = 0x1
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_INFO_KIND = 1, 3, 4, 18, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80
IFF_UP, IFF_RUNNING = 0x1, 0x40

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table proto scope type flags
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
_RTA = struct.Struct("=HH")
_WINDOW = 32 * 1024  # bytes of requests per send; the kernel's default sndbuf is 208 KiB

# ---- what crosses the shim ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    up: bool  # oper up (IFF_RUNNING): what Calico's interface monitor calls "up"
    mtu: int = 1500
    mac: str = ""


@dataclass(frozen=True, slots=True, order=True)
class Route:
    """A unicast device route in the main table: `dst` is a normalised CIDR."""

    dst: str
    ifindex: int
    protocol: int


@dataclass(frozen=True, slots=True, order=True)
class Neighbour:
    ifindex: int
    ip: str
    mac: str


class NetlinkError(OSError):
    pass


class Kernel(Protocol):
    """What the managers need from the kernel. Batch methods return the failures as
    (item, errno) pairs and never raise for a single bad item."""

    def links(self) -> list[Link]: ...
    def routes(self, protocol: int, ifindex: int = 0) -> list[Route]: ...
    def add_routes_and_delete(self, add: Sequence[Route], delete: Sequence[Route]
                              ) -> list[tuple[Route, int]]: ...
    def neighbours(self, ifindex: int = 0) -> list[Neighbour]: ...
    def set_neighbours(self, add: Sequence[Neighbour], delete: Sequence[Neighbour]
                       ) -> list[tuple[Neighbour, int]]: ...
    def read_sysctls(self, keys: Iterable[str]) -> dict[str, str | None]: ...
    def write_sysctls(self, values: dict[str, str]) -> list[tuple[str, int]]: ...
    def addresses(self, ifindex: int = 0) -> list[tuple[int, str]]: ...
    def ensure_ipip_device(self, name: str, mtu: int) -> Link: ...
    def set_addresses(self, ifindex: int, add: Sequence[str], delete: Sequence[str]) -> None: ...


# ---- namespaces -----------------------------------------------------------------------------

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def enter_netns(netns: str) -> None:
    """Move the calling thread into a namespace (a name under /var/run/netns, or a path) for
    good: for a thread dedicated to that namespace."""
    fd = os.open(netns if netns.startswith("/") else f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def in_netns(netns: str | None) -> Iterator[None]:
    """Run the body with this thread inside the named namespace (None: stay put)."""
    if netns is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


# ---- codec ----------------------------------------------------------------------------------

def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * (-length % 4)


def _attrs(data: bytes | memoryview, offset: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + 4 <= end:
        length, kind = _RTA.unpack_from(data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = bytes(data[offset + 4:offset + length])
        offset += (length + 3) & ~3
    return out


def _messages(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, payload offset, end) for each nlmsg in a received buffer."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, flags, seq, _ = _HDR.unpack_from(data, offset)
        if length < 16:
            break
        yield kind, flags, seq, offset + 16, offset + length
        offset += (length + 3) & ~3


def _pack_cidr(cidr: str) -> tuple[int, int, bytes]:
    net = ipaddress.ip_network(cidr, strict=False)
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    return family, net.prefixlen, net.network_address.packed


def _route_msg(kind: int, flags: int, route: Route) -> bytes:
    family, plen, addr = _pack_cidr(route.dst)
    scope = RT_SCOPE_LINK if family == socket.AF_INET else RT_SCOPE_UNIVERSE
    body = (_RTMSG.pack(family, plen, 0, 0, RT_TABLE_MAIN, route.protocol, scope,
                        RTN_UNICAST, 0)
            + _attr(RTA_DST, addr) + _attr(RTA_OIF, struct.pack("=i", route.ifindex)))
    return _HDR.pack(16 + len(body), kind, flags, 0, 0) + body


def _neigh_msg(kind: int, flags: int, neigh: Neighbour) -> bytes:
    addr = ipaddress.ip_address(neigh.ip)
    family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    body = _NDMSG.pack(family, neigh.ifindex, NUD_PERMANENT, 0, 0) + _attr(NDA_DST, addr.packed)
    if kind == RTM_NEWNEIGH:
        body += _attr(NDA_LLADDR, bytes.fromhex(neigh.mac.replace(":", "")))
    return _HDR.pack(16 + len(body), kind, flags, 0, 0) + body


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ip(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


# ---- the real kernel ------------------------------------------------------------------------


class NetlinkKernel:
    """rtnetlink + /proc/sys, in the current namespace or a named one."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._sock: socket.socket | None = None
        self._seq = 0

    # -- sockets --

    def open_socket(self, groups: int = 0) -> socket.socket:
        with in_netns(self.netns):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        if not groups:
            sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        sock.bind((0, groups))
        return sock

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = self.open_socket()
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        return self._seq

    def _dump(self, kind: int, body: bytes) -> list[tuple[int, bytes, int, int]]:
        """All messages of a dump as (type, buffer, payload offset, end); retried if the
        kernel reports the dump was interrupted by a concurrent change."""
        for _ in range(5):
            sock, seq = self._socket(), self._next_seq()
            sock.send(_HDR.pack(16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
                      + body)
            out: list[tuple[int, bytes, int, int]] = []
            interrupted = done = False
            while not done:
                data = sock.recv(1 << 20)
                for mtype, flags, mseq, start, end in _messages(data):
                    if mseq != seq:
                        continue
                    interrupted |= bool(flags & NLM_F_DUMP_INTR)
                    if mtype == NLMSG_DONE:
                        done = True
                    elif mtype == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", data, start)[0]
                        self.close()
                        raise NetlinkError(err, f"netlink dump {kind}: {os.strerror(err)}")
                    else:
                        out.append((mtype, data, start, end))
            if not interrupted:
                return out
        raise NetlinkError(errno.EINTR, f"netlink dump {kind} kept being interrupted")

    def _pipeline(self, messages: Sequence[bytes]) -> list[tuple[int, int]]:
        """Send requests many per send(); return (index, errno) for each one that failed."""
        failures: list[tuple[int, int]] = []
        sock, i = self._socket(), 0
        while i < len(messages):
            first_seq, chunk, size = self._seq + 1, [], 0
            while i < len(messages) and size < _WINDOW:
                msg = bytearray(messages[i])
                seq = self._next_seq()
                last = i + 1 == len(messages) or size + len(msg) >= _WINDOW
                flags = struct.unpack_from("=H", msg, 6)[0] | (NLM_F_ACK if last else 0)
                struct.pack_into("=HI", msg, 6, flags, seq)
                chunk.append(bytes(msg))
                size += len(msg)
                i += 1
            sock.send(b"".join(chunk))
            base = i - len(chunk)
            while True:
                data = sock.recv(1 << 20)
                finished = False
                for mtype, _, mseq, start, _ in _messages(data):
                    if mtype != NLMSG_ERROR:
                        continue
                    err = -struct.unpack_from("=i", data, start)[0]
                    index = base + (mseq - first_seq) % 0x80000000
                    if err:
                        failures.append((index, err))
                    if mseq == seq:
                        finished = True
                if finished:
                    break
        return failures

    # -- links and addresses --

    def links(self) -> list[Link]:
        out = []
        for _, data, start, end in self._dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
            out.append(parse_link(data, start, end))
        return out

    def addresses(self, ifindex: int = 0) -> list[tuple[int, str]]:
        out = []
        for _, data, start, end in self._dump(RTM_GETADDR, _IFADDR.pack(0, 0, 0, 0, 0)):
            _, plen, _, _, index = _IFADDR.unpack_from(data, start)
            attrs = _attrs(data, start + _IFADDR.size, end)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw and (not ifindex or index == ifindex):
                out.append((index, f"{_ip(raw)}/{plen}"))
        return out

    def set_addresses(self, ifindex: int, add: Sequence[str], delete: Sequence[str]) -> None:
        msgs = []
        for kind, cidrs in ((RTM_DELADDR, delete), (RTM_NEWADDR, add)):
            for cidr in cidrs:
                iface = ipaddress.ip_interface(cidr)
                family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
                body = (_IFADDR.pack(family, iface.network.prefixlen, 0, 0, ifindex)
                        + _attr(IFA_LOCAL, iface.ip.packed)
                        + _attr(IFA_ADDRESS, iface.ip.packed))
                flags = NLM_F_REQUEST | (NLM_F_CREATE | NLM_F_REPLACE if kind == RTM_NEWADDR
                                         else 0)
                msgs.append(_HDR.pack(16 + len(body), kind, flags, 0, 0) + body)
        for _, err in self._pipeline(msgs):
            if err not in (errno.EEXIST, errno.EADDRNOTAVAIL):
                raise NetlinkError(err, f"address change on ifindex {ifindex}: "
                                        f"{os.strerror(err)}")

    def ensure_ipip_device(self, name: str, mtu: int) -> Link:
        """Create the IP-in-IP device if missing (tunl0 is the ipip module's fallback device:
        "creating" it loads the module), set its MTU and bring it up."""
        current = {link.name: link for link in self.links()}.get(name)
        if current is None:
            info = _attr(IFLA_INFO_KIND, b"ipip")
            body = (_IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
                    + _attr(IFLA_LINKINFO, info))
            self._check(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, ok=(errno.EEXIST,))
            current = {link.name: link for link in self.links()}[name]
        body = (_IFINFO.pack(0, 0, current.index, IFF_UP, IFF_UP)
                + _attr(IFLA_MTU, struct.pack("=I", mtu)))
        self._check(RTM_NEWLINK, 0, body)
        return {link.name: link for link in self.links()}[name]

    def _check(self, kind: int, flags: int, body: bytes, ok: tuple[int, ...] = ()) -> None:
        msg = _HDR.pack(16 + len(body), kind, NLM_F_REQUEST | flags, 0, 0) + body
        for _, err in self._pipeline([msg]):
            if err not in ok:
                raise NetlinkError(err, f"netlink request {kind}: {os.strerror(err)}")

    # -- routes --

    def routes(self, protocol: int, ifindex: int = 0) -> list[Route]:
        """Main-table unicast device routes (no gateway) of one protocol, both families
        (filtered by the kernel thanks to strict checking, and again here)."""
        req = _RTMSG.pack(socket.AF_UNSPEC, 0, 0, 0, RT_TABLE_MAIN, protocol, 0, 0, 0)
        if ifindex:
            req += _attr(RTA_OIF, struct.pack("=i", ifindex))
        out = []
        for _, data, start, end in self._dump(RTM_GETROUTE, req):
            family, plen, _, _, table, proto, _, rtype, _ = _RTMSG.unpack_from(data, start)
            if proto != protocol or rtype != RTN_UNICAST:
                continue
            attrs = _attrs(data, start + _RTMSG.size, end)
            if attrs.get(RTA_TABLE) and struct.unpack("=I", attrs[RTA_TABLE])[0] != RT_TABLE_MAIN:
                continue
            if table != RT_TABLE_MAIN and RTA_TABLE not in attrs:
                continue
            if RTA_GATEWAY in attrs:
                continue  # not a device route: the VXLAN manager's (vxlan_kernel.py)
            oif = struct.unpack("=i", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
            if ifindex and oif != ifindex:
                continue
            dst = attrs.get(RTA_DST)
            addr = _ip(dst) if dst else ("0.0.0.0" if family == socket.AF_INET else "::")
            out.append(Route(f"{addr}/{plen}", oif, proto))
        return out

    def add_routes_and_delete(self, add: Sequence[Route], delete: Sequence[Route]
                              ) -> list[tuple[Route, int]]:
        """Deletes first, then adds (NLM_F_EXCL: a route someone else owns is reported as
        EEXIST, never replaced). A delete of an absent route (ESRCH) is not a failure."""
        items = [*delete, *add]
        msgs = [_route_msg(RTM_DELROUTE, NLM_F_REQUEST, r) for r in delete]
        msgs += [_route_msg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, r)
                 for r in add]
        return [(items[i], err) for i, err in self._pipeline(msgs)
                if not (i < len(delete) and err == errno.ESRCH)]

    # -- neighbours --

    def neighbours(self, ifindex: int = 0) -> list[Neighbour]:
        """Permanent (static) neighbour entries."""
        out = []
        for _, data, start, end in self._dump(RTM_GETNEIGH, _NDMSG.pack(0, 0, 0, 0, 0)):
            _, index, state, _, _ = _NDMSG.unpack_from(data, start)
            if not state & NUD_PERMANENT or (ifindex and index != ifindex):
                continue
            attrs = _attrs(data, start + _NDMSG.size, end)
            if NDA_DST in attrs and NDA_LLADDR in attrs:
                out.append(Neighbour(index, _ip(attrs[NDA_DST]), _mac(attrs[NDA_LLADDR])))
        return out

    def set_neighbours(self, add: Sequence[Neighbour], delete: Sequence[Neighbour]
                       ) -> list[tuple[Neighbour, int]]:
        items = [*delete, *add]
        msgs = [_neigh_msg(RTM_DELNEIGH, NLM_F_REQUEST, n) for n in delete]
        msgs += [_neigh_msg(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, n)
                 for n in add]
        return [(items[i], err) for i, err in self._pipeline(msgs)
                if not (i < len(delete) and err == errno.ENOENT)]

    # -- sysctls --

    def read_sysctls(self, keys: Iterable[str]) -> dict[str, str | None]:
        """Values by key ("net/ipv4/conf/cali1/rp_filter"); None where the file is absent."""
        out: dict[str, str | None] = {}
        with in_netns(self.netns):
            for key in keys:
                try:
                    with open(f"/proc/sys/{key}") as f:
                        out[key] = f.read().strip()
                except FileNotFoundError:
                    out[key] = None
        return out

    def write_sysctls(self, values: dict[str, str]) -> list[tuple[str, int]]:
        failures = []
        with in_netns(self.netns):
            for key, value in values.items():
                try:
                    with open(f"/proc/sys/{key}", "w") as f:
                        f.write(value)
                except OSError as e:
                    failures.append((key, e.errno or errno.EIO))
        return failures


def parse_link(data: bytes, start: int, end: int) -> Link:
    _, _, index, flags, _ = _IFINFO.unpack_from(data, start)
    attrs = _attrs(data, start + _IFINFO.size, end)
    name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
    mtu = struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
    return Link(index, name, bool(flags & IFF_RUNNING), mtu, _mac(attrs.get(IFLA_ADDRESS, b"")))


def read_link_events(sock: socket.socket, on_link: Callable[[Link, bool], None]) -> None:
    """Read one buffer of RTNLGRP_LINK notifications; call on_link(link, present)."""
    data = sock.recv(1 << 20)
    for mtype, _, _, start, end in _messages(data):
        if mtype in (RTM_NEWLINK, RTM_DELLINK):
            on_link(parse_link(data, start, end), mtype == RTM_NEWLINK)
