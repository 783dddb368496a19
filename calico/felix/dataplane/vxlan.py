"""The VXLAN overlay: `vxlan.calico`, its FDB and ARP entries, and the routes to remote blocks
in VXLAN pools (Calico's vxlan_mgr.go and the VXLAN part of its route manager).

In (calc-graph messages; a netlink manager, hostnet.py):
- `VXLANTunnelEndpointUpdate/Remove`: this host's VTEP configures the device; every other
  host's becomes an FDB entry (`<its MAC> dst <its address> self permanent`) and an ARP entry
  (`<its tunnel address> lladdr <its MAC> permanent`);
- `RouteUpdate/Remove`: through the tunnel, `<block> via <remote tunnel address> dev
  vxlan.calico onlink`; or, CrossSubnet within our subnet, `<block> via <remote host> dev
  <the interface holding our address>`; tagged with Felix's route protocol;
- `IPAMPoolUpdate/Remove` and `ConfigUpdate` (Felix names, case-insensitive): VXLAN is on when
  `VXLANEnabled` says so, or, when it is unset, while any enabled IPv4 pool has `vxlanMode`
  Always or CrossSubnet (Calico decides the same way from the pools); `VXLANVNI` (4096),
  `VXLANPort` (4789), `VXLANMTU` (0: the parent interface's MTU minus the 50 bytes of outer
  headers), `DeviceRouteProtocol`.
Out: kernel changes through `VXLANKernel` (vxlan_kernel.py, or a fake in unit tests).

The device: VNI, port, learning off, parent = the interface holding this host's address and
that address as the outer source, MAC = the VTEP's MAC (the same MAC every other host
computes for us), MTU, up, and exactly one address, our tunnel address as a /32. A device
whose VNI, port, source or parent differ is deleted and created again; MTU and MAC are
changed in place.

Stateless restart: `apply()` compares with what the kernel has (device, address, FDB, ARP,
routes with our protocol and a gateway) and writes only the difference, so a restarted Felix
that wants what the previous one programmed writes nothing: no flap, no lost packet. Routes
that change next hop are replaced in one request, never deleted first.

When VXLAN is off, the device is deleted (its routes go with it) and so are our routes with
a gateway (the CrossSubnet same-subnet ones). A route with a gateway counts as ours when it
has our protocol and lies inside an IP pool (never, say, a default route of protocol `boot`
when `deviceRouteProtocol` is 3). Until this host's VTEP is known (its tunnel
address not yet allocated) nothing is touched.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Protocol

from calico.felix import messages as m
from calico.felix.dataplane.netlink import Link, Neighbour, NetlinkError
from calico.felix.dataplane.routes import DEFAULT_ROUTE_PROTOCOL
from calico.felix.dataplane.vxlan_kernel import FDBEntry, GatewayRoute, VXLANDevice

log = logging.getLogger(__name__)

DEVICE = "vxlan.calico"
DEFAULT_VNI = 4096
DEFAULT_PORT = 4789
VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14


class Kernel(Protocol):
    """The kernel calls the VXLAN manager makes (vxlan_kernel.VXLANKernel, or a fake in unit
    tests): reads of the device, its addresses, FDB, ARP and gateway routes, and batched
    writes of each; a failure raises NetlinkError."""

    def links(self) -> list[Link]: ...
    def addresses(self, ifindex: int = 0) -> list[tuple[int, str]]: ...
    def set_addresses(self, ifindex: int, add: list[str], delete: list[str]) -> None: ...
    def vxlan_device(self, name: str) -> VXLANDevice | None: ...
    def create_vxlan_device(self, dev: VXLANDevice) -> None: ...
    def set_link(self, index: int, mtu: int, mac: str) -> None: ...
    def delete_link(self, index: int) -> None: ...
    def fdb(self, ifindex: int) -> list[FDBEntry]: ...
    def set_fdb(self, add: list[FDBEntry], delete: list[FDBEntry]) -> list: ...
    def arp(self, ifindex: int) -> list[Neighbour]: ...
    def set_neighbours(self, add: list[Neighbour], delete: list[Neighbour]) -> list: ...
    def gateway_routes(self, protocol: int) -> list[GatewayRoute]: ...
    def set_gateway_routes(self, add: list[GatewayRoute], delete: list[GatewayRoute]
                           ) -> list: ...


def _flag(text: str | None) -> bool | None:
    if text is None or text.strip() == "" or text == "None":
        return None
    return text.strip().lower() in ("true", "1", "yes")


class VXLANManager:
    """VTEPs, routes, pools and config in; `vxlan.calico` and its FDB, ARP entries and routes
    out, on `apply()` (a netlink manager, hostnet.py)."""

    waits_for_nftables = True  # routes to remote workloads, written with the other routes

    def __init__(self, kernel: Kernel, hostname: str = "") -> None:
        self._kernel = kernel
        self.hostname = hostname
        self.protocol = DEFAULT_ROUTE_PROTOCOL
        self.enabled_setting: bool | None = None  # VXLANEnabled; None: from the pools
        self.vni, self.port, self.mtu = DEFAULT_VNI, DEFAULT_PORT, 0
        self._pools: dict[str, bool] = {}
        self._pool_nets: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        self.local: m.VXLANTunnelEndpointUpdate | None = None
        self.vteps: dict[str, m.VXLANTunnelEndpointUpdate] = {}
        self.routes: dict[str, m.RouteUpdate] = {}
        self._parent_index = 0
        self._dirty = True
        self.error = ""  # last failure, for status reporting

    # ---- inputs ----

    def on_message(self, msg: m.Message) -> None:
        match msg:
            case m.VXLANTunnelEndpointUpdate():
                if msg.node == self.hostname:
                    self.local = msg
                else:
                    self.vteps[msg.node] = msg
            case m.VXLANTunnelEndpointRemove():
                if msg.node == self.hostname:
                    self.local = None
                else:
                    self.vteps.pop(msg.node, None)
            case m.RouteUpdate():
                self.routes[msg.dst] = msg
            case m.RouteRemove():
                self.routes.pop(msg.dst, None)
            case m.IPAMPoolUpdate():
                net = ipaddress.ip_network(msg.cidr, strict=False)
                self._pool_nets[msg.id] = net
                self._pools[msg.id] = (msg.vxlan_mode in ("Always", "CrossSubnet")
                                       and not msg.disabled and net.version == 4)
            case m.IPAMPoolRemove():
                self._pools.pop(msg.id, None)
                self._pool_nets.pop(msg.id, None)
            case m.ConfigUpdate():
                self._on_config({k.lower(): v for k, v in msg.config.items()})
            case _:
                return
        self._dirty = True

    def _on_config(self, cfg: dict[str, str]) -> None:
        self.enabled_setting = _flag(cfg.get("vxlanenabled"))
        self.vni = int(cfg.get("vxlanvni") or DEFAULT_VNI)
        self.port = int(cfg.get("vxlanport") or DEFAULT_PORT)
        self.mtu = int(cfg.get("vxlanmtu") or 0)
        self.protocol = int(cfg.get("devicerouteprotocol") or DEFAULT_ROUTE_PROTOCOL)

    def complete_deferred_work(self) -> None:
        """Nothing deferred: `apply()` compares with the kernel when anything changed."""

    def on_link_change(self, name: str, old: Link | None, new: Link | None) -> None:
        if name == DEVICE or self._parent_index in (getattr(old, "index", -1),
                                                    getattr(new, "index", -1)):
            self._dirty = True

    def resync(self) -> None:
        self._dirty = True

    def enabled(self) -> bool:
        if self.enabled_setting is not None:
            return self.enabled_setting
        return any(self._pools.values())

    # ---- apply ----

    def apply(self) -> None:
        if not self._dirty:
            return
        self._dirty, self.error = False, ""
        try:
            if not self.enabled():
                self._remove_all()
            elif self.local is not None:
                self._program(self.local)
        except NetlinkError as e:
            self.error = f"VXLAN device {DEVICE}: {e.strerror}"
            log.error("%s; retrying at the next resync", self.error)

    def _remove_all(self) -> None:
        dev = self._kernel.vxlan_device(DEVICE)
        if dev is not None:
            log.info("VXLAN is off: deleting %s", DEVICE)
            self._kernel.delete_link(dev.index)
        if not self._pool_nets:
            return  # no pool, so no route of ours (spare the route dump)
        stale = self._ours(self._kernel.gateway_routes(self.protocol))
        if stale:
            self._report(self._kernel.set_gateway_routes([], stale))

    def _program(self, me: m.VXLANTunnelEndpointUpdate) -> None:
        parent = self._parent(me.parent_ip)
        if parent is None:
            raise NetlinkError(0, f"no interface holds this host's address {me.parent_ip}")
        self._parent_index = parent.index
        dev = self._ensure_device(me, parent)
        self._ensure_address(dev.index, f"{me.tunnel_ip}/32")
        self._sync_fdb_and_arp(dev.index)
        self._sync_routes(dev.index, parent.index)

    def _parent(self, ip: str) -> Link | None:
        indexes = {i for i, cidr in self._kernel.addresses() if cidr.split("/")[0] == ip}
        return next((ln for ln in self._kernel.links() if ln.index in indexes), None)

    def _ensure_device(self, me: m.VXLANTunnelEndpointUpdate, parent: Link) -> VXLANDevice:
        want = VXLANDevice(DEVICE, self.vni, self.port, me.parent_ip, parent.index, me.mac,
                           self.mtu or parent.mtu - VXLAN_OVERHEAD)
        have = self._kernel.vxlan_device(DEVICE)
        other = next((ln for ln in self._kernel.links() if ln.name == DEVICE), None)
        if have is None and other is not None or have is not None and (
                (have.vni, have.port, have.local, have.parent)
                != (want.vni, want.port, want.local, want.parent)):
            log.info("Recreating %s: it is %s, want %s", DEVICE, have or other, want)
            self._kernel.delete_link(other.index if other else 0)
            have = None
        if have is None:
            log.info("Creating %s: %s", DEVICE, want)
            self._kernel.create_vxlan_device(want)
        elif (have.mtu, have.mac, have.up) != (want.mtu, want.mac, True):
            log.info("Updating %s: MTU %d, MAC %s", DEVICE, want.mtu, want.mac)
            self._kernel.set_link(have.index, want.mtu, want.mac)
        else:
            return have
        dev = self._kernel.vxlan_device(DEVICE)
        if dev is None:
            raise NetlinkError(0, f"{DEVICE} vanished after it was created")
        return dev

    def _ensure_address(self, index: int, want: str) -> None:
        have = {c for i, c in self._kernel.addresses(index) if ":" not in c}
        if have != {want}:
            self._kernel.set_addresses(index, sorted({want} - have), sorted(have - {want}))

    def _sync_fdb_and_arp(self, index: int) -> None:
        vteps = sorted(self.vteps.values(), key=lambda v: v.node)
        want_fdb = {FDBEntry(index, v.mac, v.parent_ip) for v in vteps}
        have_fdb = set(self._kernel.fdb(index))
        if want_fdb != have_fdb:
            self._report(self._kernel.set_fdb(sorted(want_fdb - have_fdb),
                                              sorted(have_fdb - want_fdb)))
        want_arp = {Neighbour(index, v.tunnel_ip, v.mac) for v in vteps}
        have_arp = set(self._kernel.arp(index))
        if want_arp != have_arp:
            wanted_ips = {n.ip for n in want_arp}
            self._report(self._kernel.set_neighbours(
                sorted(want_arp - have_arp),
                sorted(n for n in have_arp - want_arp if n.ip not in wanted_ips)))

    def wanted_routes(self, index: int, parent: int) -> set[GatewayRoute]:
        out = set()
        for r in self.routes.values():
            if not r.vxlan:
                out.add(GatewayRoute(r.dst, r.gateway, parent, self.protocol))
            elif r.node in self.vteps:
                out.add(GatewayRoute(r.dst, self.vteps[r.node].tunnel_ip, index,
                                     self.protocol, onlink=True))
        return out

    def _sync_routes(self, index: int, parent: int) -> None:
        want = self.wanted_routes(index, parent)
        have = set(self._ours(self._kernel.gateway_routes(self.protocol)))
        if want == have:
            return
        wanted_dsts = {r.dst for r in want}
        delete = sorted(r for r in have - want if r.dst not in wanted_dsts)
        add = sorted(want - have)  # replaces: a route changing next hop is never absent
        log.info("VXLAN routes: %d to add or replace, %d to delete", len(add), len(delete))
        self._report(self._kernel.set_gateway_routes(add, delete))

    def _ours(self, routes: list[GatewayRoute]) -> list[GatewayRoute]:
        """Our protocol is not enough to call a route with a gateway ours (with
        `deviceRouteProtocol` 3, "boot", the host's default route has it too): only those
        inside an IP pool are."""
        nets = [n for n in self._pool_nets.values() if n.version == 4]
        return [r for r in routes
                if any(ipaddress.IPv4Network(r.dst).subnet_of(n) for n in nets)]

    def _report(self, failures: list) -> None:
        for item, err in failures:
            log.warning("VXLAN: failed to program %s: errno %s", item, err)
            self.error = f"failed to program {item}"
        if failures:
            self._dirty = True  # retried at the next apply
