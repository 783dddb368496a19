"""The host-network half of the Linux dataplane: interfaces, sysctls, routes, IP-in-IP, VXLAN.

`HostNetworkManager` is what the Felix main loop drives (the nftables half sits beside it):

    hn = HostNetworkManager(NetlinkKernel(), hostname, wake=main_queue_wakeup)
    hn.start()                       # link watcher thread; first apply() reads the kernel
    loop:
        for msg in batch: hn.on_message(msg)     # calc graph messages; others are ignored
        hn.apply()                               # one ordered pass: links, sysctls, routes, ipip
        wait for messages or wake-up, at most hn.seconds_until_refresh()

In:  every calc-graph message, to each of its managers in list order (manager.py):
     `SysctlManager` (none: it follows links), `RouteManager` (WorkloadEndpointUpdate/Remove),
     `IPIPManager` (HostMetadataUpdate/Remove, IPAMPoolUpdate/Remove, ConfigUpdate's ipipMTU
     and IpInIpTunnelAddr), `VXLANManager` (VTEPs, RouteUpdate/Remove, pools, the VXLAN
     settings; listed only when the kernel shim offers VXLAN calls), `ConntrackManager`
     (endpoints' ipNATs: the flows of a floating IP that moved are forgotten), `XlatManager`
     (address-space endpoints: the translator at their interfaces, xlat/manager.py). The group
     itself reads the host-network-wide part of ConfigUpdate,
     shared by routes and sysctls and needing a kernel re-read when it changes (by
     FelixConfiguration field name: interfacePrefix, deviceRouteProtocol,
     routeRefreshInterval, ipv6Support, and whether the metadata redirect targets a loopback
     address: metadataAddr with the OpenStack evidence, nft/config.py; names are matched case-insensitively, so Felix's own
     names, e.g. DeviceRouteProtocol, work too).
     Link notifications arrive on the watcher thread through `notify_link`, which only queues
     them and calls `wake()`; all state changes happen in `apply()` on the caller's thread.
Out: kernel changes through the injected `kernel` (netlink.NetlinkKernel, or a fake in tests).
     Each member is a `NetlinkManager`: link changes, resyncs and applies go to every member in
     list order too, so a new one (a VXLAN device and its routes) plugs in by being listed.

Resync (kernel read-back, apply only the difference) happens on the first `apply()`, every
`routeRefreshInterval` (default 90 s; 0 turns the timer off), after lost link notifications,
after an interface-prefix or route-protocol change, and on `resync()`.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from calico.api.nets import parse_go_duration
from calico.felix import messages as m
from calico.felix.dataplane.conntrack import ConntrackManager, delete_entries
from calico.felix.dataplane.ipip import IPIPManager
from calico.felix.dataplane.links import DEFAULT_INTERFACE_PREFIXES, LinkTable, LinkWatcher
from calico.felix.dataplane.manager import Manager, ManagerGroup
from calico.felix.dataplane.netlink import Kernel, Link, NetlinkKernel
from calico.felix.dataplane.nft.config import NftConfig
from calico.felix.dataplane.routes import DEFAULT_ROUTE_PROTOCOL, RouteManager
from calico.felix.dataplane.sysctls import SysctlManager
from calico.felix.dataplane.vxlan import Kernel as VXLANKernelShim
from calico.felix.dataplane.vxlan import VXLANManager
from calico.felix.dataplane.vxlan_kernel import VXLANKernel
from calico.felix.dataplane.xlat.manager import TranslatorAPI, XlatManager, default_translator

log = logging.getLogger(__name__)

DEFAULT_REFRESH_INTERVAL = 90.0


def _seconds(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return parse_go_duration(text) / 1e9


def _metadata_on_loopback(config: Mapping[str, str]) -> bool:
    """The OpenStack metadata redirect targets a loopback address (sysctls.py: route_localnet)."""
    try:
        cfg = NftConfig.from_mapping(config)
    except ValueError:  # a setting the nftables half rejects; Felix validated it already
        return False
    return cfg.openstack and ipaddress.IPv4Address(cfg.metadata_addr or "0.0.0.0").is_loopback


@runtime_checkable
class NetlinkManager(Manager, Protocol):
    """A manager that writes the kernel itself (netlink, /proc/sys) when its group applies.

    Besides every message (Manager), it hears of every link change that matters, in
    `on_link_change` (appeared, vanished, new index, up/down); `resync()` re-reads what it
    owns from the kernel (the shared link table is fresh by then) so the next `apply()` fixes
    any drift; `apply()` writes the difference and handles its own kernel errors, except an
    OSError that means the netlink socket itself failed (the group then resyncs).
    `waits_for_nftables`: True to be applied only after an nftables transaction that
    succeeded; False to be applied also in `prepare()`, alongside the first one."""

    waits_for_nftables: bool

    def on_link_change(self, name: str, old: Link | None, new: Link | None) -> None: ...

    def resync(self) -> None: ...

    def apply(self) -> None: ...


class HostNetworkManager(ManagerGroup):
    """The netlink managers (sysctls, routes, IP-in-IP, VXLAN) and the link table they share: messages
    in (ManagerGroup), one ordered `apply()` out, the kernel read back on resync."""

    managers: tuple[NetlinkManager, ...]

    def __init__(self, kernel: Kernel, hostname: str = "", *,
                 wake: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 vxlan_kernel: VXLANKernelShim | None = None,
                 conntrack_delete: Callable[[str], int] | None = None,
                 translator: Callable[[], TranslatorAPI] | None = None) -> None:
        self._kernel = kernel
        self._wake = wake or (lambda: None)
        self._clock = clock
        self.links = LinkTable()
        self.prefixes: tuple[str, ...] = DEFAULT_INTERFACE_PREFIXES
        self.refresh_interval = DEFAULT_REFRESH_INTERVAL
        self.sysctls = SysctlManager(kernel, self.links, self.prefixes)
        self.routes = RouteManager(kernel, self.links, DEFAULT_ROUTE_PROTOCOL, self.prefixes)
        self.ipip = IPIPManager(kernel, hostname)
        if vxlan_kernel is None and isinstance(kernel, NetlinkKernel):
            vxlan_kernel = VXLANKernel(kernel)
        self.vxlan = VXLANManager(vxlan_kernel, hostname) if vxlan_kernel else None
        if conntrack_delete is None:  # the real thing only with the real kernel
            conntrack_delete = (delete_entries if isinstance(kernel, NetlinkKernel)
                                else lambda address: 0)
        self.conntrack = ConntrackManager(conntrack_delete)
        self.xlat = XlatManager(self.links, self.prefixes,
                                translator or default_translator)
        super().__init__((self.sysctls, self.routes, self.ipip,
                          *((self.vxlan,) if self.vxlan else ()), self.conntrack, self.xlat))
        self._events: collections.deque[tuple[Link | None, bool]] = collections.deque()
        self._events_lock = threading.Lock()
        self._resync_requested = True
        self._next_refresh = 0.0
        self._watcher: LinkWatcher | None = None

    # ---- lifecycle ----

    def start(self) -> None:
        """Start watching links (before the first read-back, so no change falls between)."""
        if isinstance(self._kernel, NetlinkKernel) and self._watcher is None:
            self._watcher = LinkWatcher(self._kernel, self.notify_link)
            self._watcher.start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    # ---- inputs ----

    def on_message(self, msg: m.Message) -> None:
        """The group's own settings first (ConfigUpdate), then every manager in order."""
        if isinstance(msg, m.ConfigUpdate):
            self._on_config(msg.config)
        super().on_message(msg)

    def notify_link(self, link: Link | None, present: bool) -> None:
        """From the watcher thread: queue a link event (None: events were lost) and wake."""
        with self._events_lock:
            self._events.append((link, present))
        self._wake()

    def resync(self) -> None:
        """Ask for a full kernel read-back on the next apply()."""
        self._resync_requested = True
        self._wake()

    def _on_config(self, config: Mapping[str, str]) -> None:
        cfg = {k.lower(): v for k, v in config.items()}
        prefixes = tuple(p.strip() for p in cfg.get("interfaceprefix", "").split(",")
                         if p.strip()) or DEFAULT_INTERFACE_PREFIXES
        protocol = int(cfg.get("devicerouteprotocol") or DEFAULT_ROUTE_PROTOCOL)
        ipv6 = cfg.get("ipv6support", "true").lower() not in ("false", "0", "no")
        refresh = cfg.get("routerefreshinterval")
        self.refresh_interval = _seconds(refresh) if refresh else DEFAULT_REFRESH_INTERVAL
        localnet = _metadata_on_loopback(config)
        if (prefixes, protocol, ipv6, localnet) != (self.prefixes, self.routes.protocol,
                                                    self.sysctls.ipv6,
                                                    self.sysctls.route_localnet):
            self.prefixes = prefixes
            self.routes.prefixes = prefixes
            self.xlat.prefixes = prefixes
            self.routes.set_protocol(protocol)
            self.sysctls.set_config(prefixes, ipv6, localnet)
            self._resync_requested = True
        self._next_refresh = min(self._next_refresh, self._clock() + self.refresh_interval)

    # ---- apply ----

    def seconds_until_refresh(self) -> float | None:
        """How long the main loop may sleep before apply() is due for a periodic resync."""
        if self._resync_requested:
            return 0.0
        if self.refresh_interval <= 0:
            return None
        return max(0.0, self._next_refresh - self._clock())

    def prepare(self) -> None:
        """The part of apply() that does not depend on endpoints: link events, the resync if
        due, sysctls (they follow interface names). Safe at any time; the driver runs it while
        its first, whole-ruleset nftables transaction runs on another thread."""
        self._apply(full=False)

    def apply(self) -> None:
        """Complete the managers' deferred work, process queued link events, resync if due,
        then sysctls, routes, IP-in-IP. A kernel error (netlink socket trouble, a namespace
        gone) is logged, not raised: the managers' caches may then be wrong, so the next
        apply() starts with a full resync."""
        self.complete_deferred_work()
        self._apply(full=True)

    def _apply(self, full: bool) -> None:
        self._drain_link_events()
        try:
            now = self._clock()
            if self._resync_requested or (self.refresh_interval > 0
                                          and now >= self._next_refresh):
                self._do_resync()
            for manager in self.managers:
                if full or not manager.waits_for_nftables:
                    manager.apply()
        except OSError:
            log.exception("Host network apply failed; will resync")
            self._resync_requested = True
            close = getattr(self._kernel, "close", None)
            if close is not None:
                close()

    def _drain_link_events(self) -> None:
        with self._events_lock:
            events, self._events = list(self._events), collections.deque()
        for link, present in events:
            if link is None:
                self._resync_requested = True
                continue
            old = self.links.get(link.name)
            if present:
                changed = self.links.update(link)
            else:
                changed = self.links.remove(link.name, link.index)
            if changed:
                self._link_changed(link.name, old, self.links.get(link.name))

    def _link_changed(self, name: str, old: Link | None, new: Link | None) -> None:
        log.debug("Link %s: %s -> %s", name, old, new)
        for manager in self.managers:
            manager.on_link_change(name, old, new)

    def _do_resync(self) -> None:
        started = self._clock()
        before = {link.name: link for link in self.links}
        for name in self.links.replace_all(self._kernel.links()):
            self._link_changed(name, before.get(name), self.links.get(name))
        for manager in self.managers:
            manager.resync()
        self._resync_requested = False
        self._next_refresh = started + self.refresh_interval
        log.debug("Host network resync read the kernel in %.3fs", self._clock() - started)
