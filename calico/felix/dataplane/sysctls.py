"""Per-interface and global sysctls for workload interfaces.

Every interface whose name matches a workload prefix (`cali`, `tap` by default) gets, as soon
as it is oper up (Calico's endpoint manager skips interfaces that are down and configures them
when they come up; a new interface starts with the kernel defaults, so "came up" means
"configure again"):

- `net.ipv4.conf.<if>.rp_filter=1`: strict reverse-path filtering, so a workload (a VM above
  all) cannot spoof its source address; 0 on the interface of an address-space endpoint (our
  extension): its IPv4 address has no host route (another space may use it on this host), so
  strict filtering would refuse even its ARP for 169.254.1.1; its IPv4 packets never reach
  the host's IPv4 stack (the translator turns them into IPv6 from P::src, and the endpoint's
  policy chain admits only its own P::A);
- `net.ipv4.conf.<if>.proxy_arp=1` and `net.ipv4.neigh.<if>.proxy_delay=0`: the host answers
  the workload's ARP for its gateway 169.254.1.1 (never assigned anywhere) with its own MAC,
  immediately;
- `net.ipv4.conf.<if>.forwarding=1`: IPv4 forwarding is decided per *input* interface;
- `net.ipv6.conf.<if>.proxy_ndp=1`, `forwarding=1`, `accept_ra=0`: as Calico does (the
  workload's IPv6 gateway is the host veth's own link-local address, so NDP needs no proxy
  entries; proxy_ndp is set for parity with Calico);
- `net.ipv4.conf.<if>.route_localnet=1` only when the OpenStack metadata redirect targets a
  loopback address (MetadataAddr 127.0.0.1, the default): the kernel otherwise drops a packet
  from a workload DNATed to 127.0.0.1 as a martian. Never written as 0: when the redirect
  moves elsewhere, interfaces keep the 1 until they are re-created.

Globally: `net.ipv4.ip_forward=1` and `net.ipv6.conf.all.forwarding=1` (IPv6 forwarding is only
ever decided by the `all` switch). IPv6 keys are skipped on interfaces without IPv6.

Writes are idempotent, so `apply()` writes every key of each dirty interface; `resync()` reads
everything back, rewrites only what differs and leaves nothing dirty that it has just checked
(at 1,000 interfaces that halves a cold start's 7,000 sysctl writes to none or one pass).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable

from calico.felix.dataplane.links import LinkTable, is_workload_interface
from calico.felix.dataplane.netlink import Kernel, Link
from calico.felix.messages import Message, WorkloadEndpointRemove, WorkloadEndpointUpdate

log = logging.getLogger(__name__)

INTERFACE_SYSCTLS_V4 = (
    ("net/ipv4/conf/{}/rp_filter", "1"),
    ("net/ipv4/conf/{}/proxy_arp", "1"),
    ("net/ipv4/neigh/{}/proxy_delay", "0"),
    ("net/ipv4/conf/{}/forwarding", "1"),
)
INTERFACE_SYSCTLS_V6 = (
    ("net/ipv6/conf/{}/proxy_ndp", "1"),
    ("net/ipv6/conf/{}/forwarding", "1"),
    ("net/ipv6/conf/{}/accept_ra", "0"),
)
GLOBAL_SYSCTLS_V4 = {"net/ipv4/ip_forward": "1"}
GLOBAL_SYSCTLS_V6 = {"net/ipv6/conf/all/forwarding": "1"}


ROUTE_LOCALNET = (("net/ipv4/conf/{}/route_localnet", "1"),)


def interface_sysctls(name: str, ipv6: bool = True,
                      route_localnet: bool = False) -> dict[str, str]:
    pairs = (INTERFACE_SYSCTLS_V4 + (INTERFACE_SYSCTLS_V6 if ipv6 else ())
             + (ROUTE_LOCALNET if route_localnet else ()))
    return {key.format(name): value for key, value in pairs}


class SysctlManager:
    """Desired sysctls for up workload interfaces (plus the global switches); a dirty set of
    interface names; `apply()` writes, `resync()` reads back and fixes drift. A netlink
    manager (hostnet.py) that takes no message: link events and its group's config drive it."""

    waits_for_nftables = False  # interfaces, not endpoints: written alongside the first apply

    def __init__(self, kernel: Kernel, links: LinkTable,
                 prefixes: Iterable[str] = ("cali", "tap"), ipv6: bool = True) -> None:
        self._kernel = kernel
        self._links = links
        self.prefixes = tuple(prefixes)
        self.ipv6 = ipv6
        self.route_localnet = False
        self._up: set[str] = set()  # workload interfaces that are oper up
        self._dirty: set[str] = set()
        self._globals_dirty = True
        self._space_eps: dict[object, str] = {}  # address-space endpoint -> its interface

    def on_message(self, msg: Message) -> None:
        """Sysctls follow interfaces (`on_link_change`); endpoint messages only say which
        interfaces belong to address-space endpoints (rp_filter 0, see above)."""
        if not isinstance(msg, WorkloadEndpointUpdate | WorkloadEndpointRemove):
            return
        old = self._space_eps.pop(msg.id, None)
        if isinstance(msg, WorkloadEndpointUpdate) and msg.address_space:
            self._space_eps[msg.id] = msg.interface
        for name in {old, self._space_eps.get(msg.id)} - {None}:
            if name in self._up:
                self._dirty.add(name)

    def complete_deferred_work(self) -> None:
        """Nothing deferred."""

    def _globals(self) -> dict[str, str]:
        return {**GLOBAL_SYSCTLS_V4, **(GLOBAL_SYSCTLS_V6 if self.ipv6 else {})}

    def on_link_change(self, name: str, old: Link | None, link: Link | None) -> None:
        """An interface appeared, vanished, changed index or oper state."""
        if link is not None and link.up and is_workload_interface(name, self.prefixes):
            self._up.add(name)
            self._dirty.add(name)
        else:
            self._up.discard(name)
            self._dirty.discard(name)

    def set_config(self, prefixes: Iterable[str], ipv6: bool,
                   route_localnet: bool = False) -> None:
        self.prefixes, self.ipv6 = tuple(prefixes), ipv6
        self.route_localnet = route_localnet
        self._globals_dirty = True  # the caller re-reads the links, which re-marks interfaces

    def _iface(self, name: str) -> dict[str, str]:
        values = interface_sysctls(name, self.ipv6, self.route_localnet)
        if name in self._space_eps.values():
            values[f"net/ipv4/conf/{name}/rp_filter"] = "0"
        return values

    def apply(self) -> None:
        values = dict(self._globals()) if self._globals_dirty else {}
        for name in self._dirty:
            values.update(self._iface(name))
        if not values:
            return
        failed = self._write(values)
        self._globals_dirty = any(k in failed for k in self._globals())
        self._dirty = {n for n in self._dirty
                       if any(k in failed for k in self._iface(n))}

    def resync(self) -> None:
        """Re-derive the up workload interfaces from the (fresh) link table, as the prefixes
        may have changed; read every managed sysctl back and rewrite the ones that drifted."""
        self._up = {ln.name for ln in self._links
                    if ln.up and is_workload_interface(ln.name, self.prefixes)}
        self._dirty &= self._up
        wanted = dict(self._globals())
        for name in self._up:
            wanted.update(self._iface(name))
        current = self._kernel.read_sysctls(wanted)
        drifted = {k: v for k, v in wanted.items()
                   if current.get(k) is not None and current[k] != v}
        failed: set[str] = set()
        if drifted:
            log.info("Sysctl resync: fixing %d drifted values", len(drifted))
            failed = self._write(drifted)
        # Everything read back is now right (or failed and is retried): no second write.
        self._globals_dirty = any(k in failed for k in self._globals())
        self._dirty = {n for n in self._dirty
                       if any(k in failed for k in self._iface(n))}

    def _write(self, values: dict[str, str]) -> set[str]:
        """Write; return the keys that failed and should be retried. A missing file means the
        interface vanished (a link event follows) or has no IPv6: neither is retried."""
        failed = set()
        for key, err in self._kernel.write_sysctls(values):
            if err == errno.ENOENT:
                log.debug("Sysctl %s absent, skipping", key)
            else:
                log.warning("Failed to set sysctl %s=%s: %s", key, values[key],
                            errno.errorcode.get(err, err))
                failed.add(key)
        return failed
