"""The netlink half of VXLAN: the vxlan device, its forwarding database (FDB), its ARP
entries and routes with a gateway, on top of `netlink.NetlinkKernel`'s codec and sockets.

Kept apart from netlink.py (which serves every manager) because only the VXLAN manager needs
it. Same rules as there: batch methods return failures as (item, errno), never raise for one
bad item; requests for many items go out pipelined.

- `vxlan_device(name)`: the device's VNI, UDP port, local (source) address, parent ifindex,
  MAC, MTU, up — what decides whether an existing device can be kept as it is.
- `create_vxlan_device` / `set_link` / `delete_link`.
- `fdb(ifindex)` / `set_fdb`: permanent `<mac> dst <host> self` entries (AF_BRIDGE), which
  tell the device where to send a frame for a remote VTEP's MAC. Learning is off: only
  these entries decide.
- `arp(ifindex)`: permanent IPv4 neighbours on one device (set through
  `NetlinkKernel.set_neighbours`).
- `gateway_routes(protocol, ifindexes)` / `set_gateway_routes`: main-table routes with a
  next hop (`10.65.2.0/26 via 10.65.2.0 dev vxlan.calico onlink`). Adds replace, so a route
  that moves from the fabric to the tunnel (or back) changes in one step, never absent.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .netlink import (
    _HDR,
    _IFINFO,
    _NDMSG,
    _RTMSG,
    IFF_UP,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MTU,
    NDA_DST,
    NDA_LLADDR,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NUD_PERMANENT,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_TABLE,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTN_UNICAST,
    Link,
    Neighbour,
    NetlinkError,
    NetlinkKernel,
    _attr,
    _attrs,
    _ip,
    _mac,
    parse_link,
)

IFLA_INFO_DATA = 2
IFLA_VXLAN_ID, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL = 1, 3, 4
IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 7, 15
RTNH_F_ONLINK = 4
NTF_SELF = 0x02


@dataclass(frozen=True, slots=True)
class VXLANDevice:
    """A vxlan link as the kernel has it (or as wanted: `index` 0, `up` True)."""

    name: str
    vni: int
    port: int
    local: str  # outer source address
    parent: int  # ifindex the outer packets leave by
    mac: str
    mtu: int
    index: int = 0
    up: bool = True


@dataclass(frozen=True, slots=True, order=True)
class GatewayRoute:
    dst: str
    gateway: str
    ifindex: int
    protocol: int
    onlink: bool = False


@dataclass(frozen=True, slots=True, order=True)
class FDBEntry:
    ifindex: int
    mac: str
    dst: str  # the remote host's address


class VXLANKernel:
    """VXLAN's kernel calls, through the sockets and codec of a NetlinkKernel."""

    def __init__(self, kernel: NetlinkKernel) -> None:
        self.kernel = kernel

    def links(self) -> list[Link]:
        return self.kernel.links()

    def addresses(self, ifindex: int = 0) -> list[tuple[int, str]]:
        return self.kernel.addresses(ifindex)

    def set_addresses(self, ifindex: int, add: Sequence[str], delete: Sequence[str]) -> None:
        self.kernel.set_addresses(ifindex, add, delete)

    def set_neighbours(self, add: Sequence[Neighbour], delete: Sequence[Neighbour]
                       ) -> list[tuple[Neighbour, int]]:
        return self.kernel.set_neighbours(add, delete)

    def _request(self, kind: int, flags: int, body: bytes, what: str) -> None:
        msg = _HDR.pack(16 + len(body), kind, NLM_F_REQUEST | flags, 0, 0) + body
        for _, err in self.kernel._pipeline([msg]):
            raise NetlinkError(err, f"{what}: {errno.errorcode.get(err, err)}")

    # ---- the device ----

    def vxlan_device(self, name: str) -> VXLANDevice | None:
        """The named link if it is a vxlan device; None if absent or of another kind (a
        `Link` of another kind is still reported by `links()`)."""
        for _, data, start, end in self.kernel._dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
            link = parse_link(data, start, end)
            if link.name != name:
                continue
            info = _attrs(data, start + _IFINFO.size, end).get(IFLA_LINKINFO, b"")
            nested = _attrs(info, 0, len(info))
            if nested.get(IFLA_INFO_KIND, b"").rstrip(b"\0") != b"vxlan":
                return None
            vx = nested.get(IFLA_INFO_DATA, b"")
            a = _attrs(vx, 0, len(vx))
            _, _, _, flags, _ = _IFINFO.unpack_from(data, start)
            return VXLANDevice(
                name, struct.unpack("=I", a[IFLA_VXLAN_ID])[0] if IFLA_VXLAN_ID in a else 0,
                struct.unpack("!H", a[IFLA_VXLAN_PORT])[0] if IFLA_VXLAN_PORT in a else 0,
                _ip(a[IFLA_VXLAN_LOCAL]) if IFLA_VXLAN_LOCAL in a else "",
                struct.unpack("=I", a[IFLA_VXLAN_LINK])[0] if IFLA_VXLAN_LINK in a else 0,
                link.mac, link.mtu, link.index, bool(flags & IFF_UP))
        return None

    def create_vxlan_device(self, dev: VXLANDevice) -> None:
        data = (_attr(IFLA_VXLAN_ID, struct.pack("=I", dev.vni))
                + _attr(IFLA_VXLAN_LINK, struct.pack("=I", dev.parent))
                + _attr(IFLA_VXLAN_LOCAL, ipaddress.IPv4Address(dev.local).packed)
                + _attr(IFLA_VXLAN_LEARNING, b"\0")
                + _attr(IFLA_VXLAN_PORT, struct.pack("!H", dev.port)))
        info = _attr(IFLA_INFO_KIND, b"vxlan") + _attr(IFLA_INFO_DATA, data)
        body = (_IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP)
                + _attr(IFLA_IFNAME, dev.name.encode() + b"\0")
                + _attr(IFLA_ADDRESS, bytes.fromhex(dev.mac.replace(":", "")))
                + _attr(IFLA_MTU, struct.pack("=I", dev.mtu)) + _attr(IFLA_LINKINFO, info))
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create {dev.name}")

    def set_link(self, index: int, mtu: int, mac: str) -> None:
        """Set MTU and MAC and bring the link up, in one request."""
        body = (_IFINFO.pack(0, 0, index, IFF_UP, IFF_UP)
                + _attr(IFLA_MTU, struct.pack("=I", mtu))
                + _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", ""))))
        self._request(RTM_NEWLINK, 0, body, f"set link {index}")

    def delete_link(self, index: int) -> None:
        self._request(RTM_DELLINK, 0, _IFINFO.pack(0, 0, index, 0, 0), f"delete link {index}")

    # ---- FDB and ARP ----

    def _neigh_dump(self, family: int, ifindex: int) -> list[tuple[int, dict[int, bytes]]]:
        out = []
        for _, data, start, end in self.kernel._dump(RTM_GETNEIGH,
                                                     _NDMSG.pack(family, 0, 0, 0, 0)):
            fam, index, state, _, _ = _NDMSG.unpack_from(data, start)
            if fam == family and index == ifindex and state & NUD_PERMANENT:
                out.append((index, _attrs(data, start + _NDMSG.size, end)))
        return out

    def fdb(self, ifindex: int) -> list[FDBEntry]:
        return [FDBEntry(i, _mac(a[NDA_LLADDR]), _ip(a[NDA_DST]))
                for i, a in self._neigh_dump(socket.AF_BRIDGE, ifindex)
                if NDA_DST in a and NDA_LLADDR in a]

    def set_fdb(self, add: Sequence[FDBEntry], delete: Sequence[FDBEntry]
                ) -> list[tuple[FDBEntry, int]]:
        items = [*delete, *add]
        msgs = [_fdb_msg(RTM_DELNEIGH, 0, e) for e in delete]
        msgs += [_fdb_msg(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, e) for e in add]
        return [(items[i], err) for i, err in self.kernel._pipeline(msgs)
                if not (i < len(delete) and err == errno.ENOENT)]

    def arp(self, ifindex: int) -> list[Neighbour]:
        return [Neighbour(i, _ip(a[NDA_DST]), _mac(a[NDA_LLADDR]))
                for i, a in self._neigh_dump(socket.AF_INET, ifindex)
                if NDA_DST in a and NDA_LLADDR in a]

    # ---- routes with a gateway ----

    def gateway_routes(self, protocol: int, ifindexes: Iterable[int] = ()
                       ) -> list[GatewayRoute]:
        """IPv4 main-table unicast routes of `protocol` that have a gateway (on the given
        interfaces, or any)."""
        only = set(ifindexes)
        req = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, protocol, 0, 0, 0)
        out = []
        for _, data, start, end in self.kernel._dump(RTM_GETROUTE, req):
            _, plen, _, _, table, proto, _, rtype, flags = _RTMSG.unpack_from(data, start)
            a = _attrs(data, start + _RTMSG.size, end)
            if RTA_TABLE in a:
                table = struct.unpack("=I", a[RTA_TABLE])[0]
            if proto != protocol or rtype != RTN_UNICAST or table != RT_TABLE_MAIN:
                continue
            if RTA_GATEWAY not in a or RTA_OIF not in a:
                continue
            oif = struct.unpack("=i", a[RTA_OIF])[0]
            if only and oif not in only:
                continue
            dst = _ip(a[RTA_DST]) if RTA_DST in a else "0.0.0.0"
            out.append(GatewayRoute(f"{dst}/{plen}", _ip(a[RTA_GATEWAY]), oif, proto,
                                    bool(flags & RTNH_F_ONLINK)))
        return out

    def set_gateway_routes(self, add: Sequence[GatewayRoute], delete: Sequence[GatewayRoute]
                           ) -> list[tuple[GatewayRoute, int]]:
        """Deletes first (an absent route is not a failure), then adds (replacing)."""
        items = [*delete, *add]
        msgs = [_gw_route_msg(RTM_DELROUTE, 0, r) for r in delete]
        msgs += [_gw_route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, r) for r in add]
        return [(items[i], err) for i, err in self.kernel._pipeline(msgs)
                if not (i < len(delete) and err == errno.ESRCH)]


def _fdb_msg(kind: int, flags: int, e: FDBEntry) -> bytes:
    body = (_NDMSG.pack(socket.AF_BRIDGE, e.ifindex, NUD_PERMANENT, NTF_SELF, 0)
            + _attr(NDA_LLADDR, bytes.fromhex(e.mac.replace(":", "")))
            + _attr(NDA_DST, ipaddress.ip_address(e.dst).packed))
    return _HDR.pack(16 + len(body), kind, NLM_F_REQUEST | flags, 0, 0) + body


def _gw_route_msg(kind: int, flags: int, r: GatewayRoute) -> bytes:
    net = ipaddress.IPv4Network(r.dst)
    body = (_RTMSG.pack(socket.AF_INET, net.prefixlen, 0, 0, RT_TABLE_MAIN, r.protocol,
                        RT_SCOPE_UNIVERSE, RTN_UNICAST, RTNH_F_ONLINK if r.onlink else 0)
            + _attr(RTA_DST, net.network_address.packed)
            + _attr(RTA_GATEWAY, ipaddress.IPv4Address(r.gateway).packed)
            + _attr(RTA_OIF, struct.pack("=i", r.ifindex)))
    return _HDR.pack(16 + len(body), kind, NLM_F_REQUEST | flags, 0, 0) + body
