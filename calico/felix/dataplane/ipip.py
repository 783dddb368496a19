"""The IP-in-IP tunnel device (`tunl0`) for pools with `ipipMode` Always or CrossSubnet.

Felix's share of IP-in-IP, as in Calico: while any enabled IPv4 pool wants IP-in-IP, make sure
`tunl0` exists and is up with the right MTU, and carries exactly this host's tunnel address
(a /32 from IPAM, given to Felix as `IpInIpTunnelAddr`). When no pool wants it, the address
is removed (the device itself is the ipip module's fallback device and stays).

MTU: FelixConfiguration `ipipMTU` (`IpInIpMtu`) when set, else the fabric MTU minus the 20
bytes of the outer IPv4 header: 1480 on a 1500 fabric. The fabric MTU is the MTU of the
interface holding this host's address (HostMetadataUpdate for our hostname), 1500 if unknown.

Left to others: routes to remote blocks `via <remote host> dev tunl0 onlink` are BIRD's (the
BGP renderer exports them with `proto bird`); CrossSubnet's "encapsulate only across subnets"
is also a routing decision made there. NAT-outgoing and the allow rule for IPIP packets from
other hosts belong to the nftables renderer.
"""

from __future__ import annotations

import ipaddress
import logging

from calico.felix.dataplane.netlink import Kernel, Link, NetlinkError
from calico.felix.messages import (
    ConfigUpdate,
    HostMetadataRemove,
    HostMetadataUpdate,
    IPAMPoolRemove,
    IPAMPoolUpdate,
    Message,
)

log = logging.getLogger(__name__)

DEVICE = "tunl0"
IPIP_OVERHEAD = 20
DEFAULT_FABRIC_MTU = 1500


class IPIPManager:
    """Pools, this host's metadata and the tunnel config in; `tunl0` with the right MTU and
    exactly this host's tunnel address out, on `apply()` (a netlink manager, hostnet.py)."""

    waits_for_nftables = True  # written with the routes, as it always was

    def __init__(self, kernel: Kernel, hostname: str = "") -> None:
        self._kernel = kernel
        self.hostname = hostname
        self._pools: dict[str, IPAMPoolUpdate] = {}
        self._host_addr = ""
        self.tunnel_addr = ""  # "10.65.0.1", from IpInIpTunnelAddr
        self.mtu: int | None = None  # ipipMTU; None = fabric MTU - 20
        self._dirty = True
        self.error: str = ""  # last failure, for status reporting

    # ---- inputs ----

    def on_message(self, msg: Message) -> None:
        match msg:
            case IPAMPoolUpdate():
                self._pools[msg.id] = msg
                self._dirty = True
            case IPAMPoolRemove():
                if self._pools.pop(msg.id, None) is not None:
                    self._dirty = True
            case HostMetadataUpdate() | HostMetadataRemove():
                self._on_host(msg)
            case ConfigUpdate():
                # Felix's names, matched case-insensitively (FelixConfiguration's work too).
                cfg = {k.lower(): v for k, v in msg.config.items()}
                mtu = int(cfg.get("ipipmtu") or cfg.get("ipinipmtu") or 0) or None
                self.set_config(cfg.get("ipiniptunneladdr", "") or
                                cfg.get("ipv4ipiptunneladdr", ""), mtu)

    def complete_deferred_work(self) -> None:
        """Nothing deferred: the device is checked against the kernel in `apply()`."""

    def _on_host(self, msg: HostMetadataUpdate | HostMetadataRemove) -> None:
        if msg.hostname == self.hostname:
            addr = getattr(msg, "ipv4_addr", "")
            self._host_addr = addr.split("/")[0] if addr else ""
            self._dirty = True

    def set_config(self, tunnel_addr: str, mtu: int | None) -> None:
        if (tunnel_addr, mtu) != (self.tunnel_addr, self.mtu):
            self.tunnel_addr, self.mtu = tunnel_addr, mtu
            self._dirty = True

    def on_link_change(self, name: str, old: Link | None, new: Link | None) -> None:
        """Not watched: the device is checked against the kernel when dirty."""

    def resync(self) -> None:
        """Check the device and its address again on the next apply()."""
        self._dirty = True

    # ---- derived ----

    def enabled(self) -> bool:
        return any(p.ipip_mode in ("Always", "CrossSubnet") and not p.disabled
                   and ipaddress.ip_network(p.cidr, strict=False).version == 4
                   for p in self._pools.values())

    def wanted_mtu(self) -> int:
        if self.mtu:
            return self.mtu
        fabric = DEFAULT_FABRIC_MTU
        if self._host_addr:
            indexes = {i for i, cidr in self._kernel.addresses()
                       if cidr.split("/")[0] == self._host_addr}
            mtus = [link.mtu for link in self._kernel.links() if link.index in indexes]
            fabric = mtus[0] if mtus else fabric
        return fabric - IPIP_OVERHEAD

    # ---- apply ----

    def apply(self) -> None:
        if not self._dirty:
            return
        try:
            if self.enabled():
                link = self._kernel.ensure_ipip_device(DEVICE, self.wanted_mtu())
                want = {f"{self.tunnel_addr}/32"} if self.tunnel_addr else set()
            else:
                link = next((ln for ln in self._kernel.links() if ln.name == DEVICE), None)
                want = set()
            if link is not None:
                have = {c for i, c in self._kernel.addresses(link.index) if ":" not in c}
                if have != want:
                    self._kernel.set_addresses(link.index, sorted(want - have),
                                               sorted(have - want))
            self._dirty, self.error = False, ""
        except NetlinkError as e:
            # e.g. EOPNOTSUPP on a kernel without the ipip module: retried at the next resync.
            self.error = f"IP-in-IP device {DEVICE}: {e.strerror}"
            log.error("%s", self.error)
            self._dirty = False
