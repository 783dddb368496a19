"""The host-network half of the Linux dataplane: interfaces, sysctls, routes, IP-in-IP.

`HostNetworkManager` is what the Felix main loop drives (the nftables half sits beside it):

    hn = HostNetworkManager(NetlinkKernel(), hostname, wake=main_queue_wakeup)
    hn.start()                       # link watcher thread; first apply() reads the kernel
    loop:
        for msg in batch: hn.on_message(msg)     # calc graph messages; others are ignored
        hn.apply()                               # one ordered pass: links, sysctls, routes, ipip
        wait for messages or wake-up, at most hn.seconds_until_refresh()

In:  every calc-graph message, to each of its managers in order (manager.py): `RouteManager`
     (WorkloadEndpointUpdate/Remove), `SysctlManager` (none: it follows links), `IPIPManager`
     (HostMetadataUpdate/Remove, IPAMPoolUpdate/Remove, ConfigUpdate's ipipMTU and
     IpInIpTunnelAddr). The group itself reads the host-network-wide part of ConfigUpdate,
     shared by routes and sysctls and needing a kernel re-read when it changes (by
     FelixConfiguration field name: interfacePrefix, deviceRouteProtocol,
     routeRefreshInterval, ipv6Support; names are matched case-insensitively, so Felix's own
     names, e.g. DeviceRouteProtocol, work too).
     Link notifications arrive on the watcher thread through `notify_link`, which only queues
     them and calls `wake()`; all state changes happen in `apply()` on the caller's thread.
Out: kernel changes through the injected `kernel` (netlink.NetlinkKernel, or a fake in tests).

Resync (kernel read-back, apply only the difference) happens on the first `apply()`, every
`routeRefreshInterval` (default 90 s; 0 turns the timer off), after lost link notifications,
after an interface-prefix or route-protocol change, and on `resync()`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping

from calico.api.nets import parse_go_duration
from calico.felix import messages as m
from calico.felix.dataplane.ipip import IPIPManager
from calico.felix.dataplane.links import DEFAULT_INTERFACE_PREFIXES, LinkTable, LinkWatcher
from calico.felix.dataplane.manager import ManagerGroup
from calico.felix.dataplane.netlink import Kernel, Link, NetlinkKernel
from calico.felix.dataplane.routes import DEFAULT_ROUTE_PROTOCOL, RouteManager
from calico.felix.dataplane.sysctls import SysctlManager

log = logging.getLogger(__name__)

DEFAULT_REFRESH_INTERVAL = 90.0


def _seconds(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return parse_go_duration(text) / 1e9


class HostNetworkManager(ManagerGroup):
    """The netlink managers (routes, sysctls, IP-in-IP) and the link table they share: messages
    in (ManagerGroup), one ordered `apply()` out, the kernel read back on resync."""

    def __init__(self, kernel: Kernel, hostname: str = "", *,
                 wake: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._kernel = kernel
        self._wake = wake or (lambda: None)
        self._clock = clock
        self.links = LinkTable()
        self.prefixes: tuple[str, ...] = DEFAULT_INTERFACE_PREFIXES
        self.refresh_interval = DEFAULT_REFRESH_INTERVAL
        self.routes = RouteManager(kernel, self.links, DEFAULT_ROUTE_PROTOCOL, self.prefixes)
        self.sysctls = SysctlManager(kernel, self.prefixes)
        self.ipip = IPIPManager(kernel, hostname)
        super().__init__((self.routes, self.sysctls, self.ipip))
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
        if (prefixes, protocol, ipv6) != (self.prefixes, self.routes.protocol,
                                          self.sysctls.ipv6):
            self.prefixes = prefixes
            self.routes.prefixes = prefixes
            self.routes.set_protocol(protocol)
            self.sysctls.set_config(prefixes, ipv6)
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
        self._apply(routes=False)

    def apply(self) -> None:
        """Complete the managers' deferred work, process queued link events, resync if due,
        then sysctls, routes, IP-in-IP. A kernel error (netlink socket trouble, a namespace
        gone) is logged, not raised: the managers' caches may then be wrong, so the next
        apply() starts with a full resync."""
        self.complete_deferred_work()
        self._apply(routes=True)

    def _apply(self, routes: bool) -> None:
        self._drain_link_events()
        try:
            now = self._clock()
            if self._resync_requested or (self.refresh_interval > 0
                                          and now >= self._next_refresh):
                self._do_resync()
            self.sysctls.apply()
            if routes:
                self.routes.apply()
                self.ipip.apply()
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
        self.sysctls.on_link_change(name, new)
        self.routes.on_link_change(name, old, new)

    def _do_resync(self) -> None:
        started = self._clock()
        before = {link.name: link for link in self.links}
        for name in self.links.replace_all(self._kernel.links()):
            self._link_changed(name, before.get(name), self.links.get(name))
        self.sysctls.resync(self.links)
        self.routes.resync()
        self.ipip.mark_dirty()
        self._resync_requested = False
        self._next_refresh = started + self.refresh_interval
        log.debug("Host network resync read the kernel in %.3fs", self._clock() - started)
