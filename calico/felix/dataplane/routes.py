"""Routes and static neighbour entries to local workloads.

For each workload endpoint this manager wants, on the endpoint's interface:
- one device route per address (`10.65.0.3/32 dev cali12 scope link`, `fd00::3/128 dev cali12`)
  in the main table, tagged with Felix's route protocol (`DEFAULT_ROUTE_PROTOCOL`, settable as
  FelixConfiguration `deviceRouteProtocol`);
- one permanent neighbour entry per address with the endpoint's MAC, so the host never has to
  ARP/NDP for its own workloads (Calico does this for IPv4; we do it for both families);
- one device route per external address of the endpoint's ipNATs that Felix programs
  (floating.active_nats: FloatingIPs Enabled, or an OpenStack endpoint), as Calico's endpoint
  manager does: the floating IP is routed to the instance's host, where BIRD learns the route
  like any workload route (inside an IP pool) and advertises it. No neighbour entry: traffic
  to it is DNATed to the internal address before routing (nft/dnat.py).

Routes exist only while the interface is oper up: an interface that goes down has its routes
deleted and gets them back when it comes up (Calico's route table skips interfaces that are
down and does a full sync of an interface when it comes up). An interface that appears after
its endpoint (a VM booting, a CNI race) is programmed as soon as its link event arrives.

Ownership: routes carrying our protocol number are ours, whatever their interface; routes of
any other protocol are never deleted or replaced (adds use NLM_F_EXCL, deletes name the
protocol). Permanent neighbours are ours only on workload interfaces.

State: desired (`_want_*`, by interface name, from endpoint messages), kernel view (`_have_*`,
by ifindex, from read-back plus our own successful changes) and a dirty set of interface names.
`apply()` diffs the dirty interfaces and sends every delete, then every add, in one pipelined
netlink batch. `resync()` re-reads the kernel (all routes with our protocol, all permanent
neighbours) and marks everything dirty, so strays are removed and missing entries re-added.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable

from calico.felix.dataplane.floating import active_nats, floating_ips_enabled
from calico.felix.dataplane.links import LinkTable, is_workload_interface
from calico.felix.dataplane.netlink import Kernel, Link, Neighbour, Route
from calico.felix.messages import (
    ConfigUpdate,
    Message,
    WorkloadEndpointID,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)

log = logging.getLogger(__name__)

# Felix's route protocol. Calico's own default is 3 ("boot"), which the kernel and other tools
# also use, so a read-back could not tell Felix's routes from anyone else's. 80 is unassigned in
# iproute2's rt_protos (0-18, 42, 99, 186-192 are taken by kernel, boot, static, dhcp, ra,
# zebra, bird, babel, keepalived, the FRR daemons...), so no component of a normal host uses it.
# To see it by name: `echo "80 felix" > /etc/iproute2/rt_protos.d/calico.conf`.
DEFAULT_ROUTE_PROTOCOL = 80


class RouteManager:
    """Desired routes and neighbours per workload interface (a netlink manager, hostnet.py:
    endpoint messages in); one ordered `apply()` of the difference from the kernel."""

    waits_for_nftables = True  # a route to an endpoint before its policy would bypass it

    def __init__(self, kernel: Kernel, links: LinkTable,
                 protocol: int = DEFAULT_ROUTE_PROTOCOL,
                 prefixes: Iterable[str] = ("cali", "tap")) -> None:
        self._kernel = kernel
        self._links = links
        self.protocol = protocol
        self.prefixes = tuple(prefixes)
        self._endpoints: dict[WorkloadEndpointID, WorkloadEndpointUpdate] = {}
        self._want_routes: dict[str, Counter[str]] = {}
        self._want_neigh: dict[str, Counter[tuple[str, str]]] = {}
        self._have_routes: dict[int, set[str]] = {}
        self._have_neigh: dict[int, dict[str, str]] = {}
        self._dirty: set[str] = set()
        self._stray_indexes: set[int] = set()  # our routes on links we could not name
        self._old_protocols: set[int] = set()
        self.conflicts: set[str] = set()  # dsts held by another protocol's route (EEXIST)
        self.floating_ips = False  # FelixConfiguration floatingIPs: Enabled

    # ---- desired state ----

    def on_message(self, msg: Message) -> None:
        if isinstance(msg, ConfigUpdate):
            self._set_floating_ips(floating_ips_enabled(msg.config))
        elif isinstance(msg, WorkloadEndpointUpdate):
            old = self._endpoints.get(msg.id)
            if old is not None:
                self._contribute(old, -1)
            self._endpoints[msg.id] = msg
            self._contribute(msg, +1)
        elif isinstance(msg, WorkloadEndpointRemove):
            old = self._endpoints.pop(msg.id, None)
            if old is not None:
                self._contribute(old, -1)

    def complete_deferred_work(self) -> None:
        """Nothing deferred: the wanted routes are counted as messages arrive; the diff
        against the kernel needs the link table and is `apply()`'s."""

    def _set_floating_ips(self, enabled: bool) -> None:
        """Re-count every endpoint's routes under the new floatingIPs setting."""
        if enabled == self.floating_ips:
            return
        for ep in self._endpoints.values():
            self._contribute(ep, -1)
        self.floating_ips = enabled
        for ep in self._endpoints.values():
            self._contribute(ep, +1)

    def _contribute(self, ep: WorkloadEndpointUpdate, sign: int) -> None:
        """Add (or take back) one endpoint's routes and neighbours: reference counts, so two
        endpoints claiming one address on an interface cannot remove each other's route."""
        routes = self._want_routes.setdefault(ep.interface, Counter())
        neigh = self._want_neigh.setdefault(ep.interface, Counter())
        for net in (*ep.ipv4_nets, *ep.ipv6_nets):
            network = ipaddress.ip_network(net, strict=False)
            routes[str(network)] += sign
            if ep.mac and network.num_addresses == 1:
                neigh[(str(network.network_address), ep.mac.lower())] += sign
        for _, external in active_nats(ep, self.floating_ips):
            routes[str(ipaddress.ip_network(external))] += sign
        for counter in (routes, neigh):
            for key in [k for k, v in counter.items() if v <= 0]:
                del counter[key]
        if not routes:
            self._want_routes.pop(ep.interface, None)
        if not neigh:
            self._want_neigh.pop(ep.interface, None)
        self._dirty.add(ep.interface)

    def _wanted_neighbours(self, iface: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for ip, mac in sorted(self._want_neigh.get(iface, ())):
            out.setdefault(ip, mac)  # two MACs for one address: pick one, deterministically
        return out

    def set_protocol(self, protocol: int) -> None:
        """Switch route protocol: routes of the old number are ours too, and go at resync."""
        if protocol != self.protocol:
            self._old_protocols.add(self.protocol)
            self._old_protocols.discard(protocol)
            self.protocol = protocol

    # ---- kernel state ----

    def on_link_change(self, name: str, old: Link | None, new: Link | None) -> None:
        """A link appeared, vanished, changed index or oper state. A vanished or new ifindex has
        no routes; a link that went down or came up may have lost its neighbours (an admin
        down flushes them), so they are re-sent (REPLACE is idempotent)."""
        if old is not None and (new is None or new.index != old.index):
            self._have_routes.pop(old.index, None)
            self._have_neigh.pop(old.index, None)
        if new is not None:
            self._have_routes.setdefault(new.index, set())
            self._have_neigh[new.index] = {}
        self._dirty.add(name)

    def resync(self) -> None:
        """Re-read our routes and the workload interfaces' permanent neighbours (the link
        table must be fresh); everything becomes dirty."""
        self._have_routes = defaultdict(set)
        for route in self._kernel.routes(self.protocol):
            self._have_routes[route.ifindex].add(route.dst)
        self._have_routes = dict(self._have_routes)
        old_routes = [r for p in self._old_protocols for r in self._kernel.routes(p)]
        if old_routes:
            log.info("Removing %d routes of old protocol(s) %s", len(old_routes),
                     sorted(self._old_protocols))
            self._report(self._kernel.add_routes_and_delete([], old_routes))
        self._old_protocols.clear()
        self._have_neigh = {}
        for n in self._kernel.neighbours():
            name = self._links.name_of(n.ifindex)
            if name is not None and is_workload_interface(name, self.prefixes):
                self._have_neigh.setdefault(n.ifindex, {})[n.ip] = n.mac
        self._dirty = set(self._want_routes) | set(self._links.names())
        self._stray_indexes = {i for i in self._have_routes if self._links.name_of(i) is None}
        self.conflicts.clear()

    # ---- apply ----

    def apply(self) -> None:
        if not self._dirty and not self._stray_indexes:
            return
        route_del: list[Route] = []
        route_add: list[Route] = []
        neigh_del: list[Neighbour] = []
        neigh_add: list[Neighbour] = []
        for name in sorted(self._dirty):
            link = self._links.get(name)
            if link is None:
                continue  # no link, no kernel state; the link event will mark it dirty again
            idx = link.index
            want = set(self._want_routes.get(name, ())) if link.up else set()
            have = self._have_routes.get(idx, set())
            route_del += [Route(d, idx, self.protocol) for d in sorted(have - want)]
            route_add += [Route(d, idx, self.protocol) for d in sorted(want - have)
                          if d not in self.conflicts]
            want_n = self._wanted_neighbours(name)
            have_n = self._have_neigh.get(idx, {})
            if is_workload_interface(name, self.prefixes):
                neigh_del += [Neighbour(idx, ip, mac) for ip, mac in sorted(have_n.items())
                              if ip not in want_n]
            if link.up:
                neigh_add += [Neighbour(idx, ip, mac) for ip, mac in sorted(want_n.items())
                              if have_n.get(ip) != mac]
        for idx in self._stray_indexes:
            route_del += [Route(d, idx, self.protocol) for d in sorted(self._have_routes[idx])]
        self._dirty.clear()
        self._stray_indexes.clear()
        if route_add or route_del:
            log.info("Programming routes: %d to add, %d to delete", len(route_add),
                     len(route_del))
            self._apply_routes(route_add, route_del)
        if neigh_add or neigh_del:
            self._apply_neighbours(neigh_add, neigh_del)

    def _apply_routes(self, add: list[Route], delete: list[Route]) -> None:
        failures = {r: err for r, err in self._kernel.add_routes_and_delete(add, delete)}
        for r in delete:
            if r not in failures:
                self._have_routes.get(r.ifindex, set()).discard(r.dst)
        exists = []
        for r in add:
            err = failures.get(r)
            if err is None:
                self._have_routes.setdefault(r.ifindex, set()).add(r.dst)
            elif err == errno.EEXIST:
                exists.append(r)
        if exists:
            # Either our own route we did not know about (a CNI pre-add, a missed event) or
            # another protocol's: read ours back to tell which.
            ours = {(r.dst, r.ifindex) for r in self._kernel.routes(self.protocol)}
            for r in exists:
                if (r.dst, r.ifindex) in ours:
                    self._have_routes.setdefault(r.ifindex, set()).add(r.dst)
                else:
                    log.warning("Route to %s is held by another route (not protocol %d); "
                                "leaving it alone until the next refresh", r.dst, self.protocol)
                    self.conflicts.add(r.dst)
        self._report([(r, e) for r, e in failures.items() if e != errno.EEXIST])

    def _apply_neighbours(self, add: list[Neighbour], delete: list[Neighbour]) -> None:
        failures = {n: err for n, err in self._kernel.set_neighbours(add, delete)}
        for n in delete:
            if n not in failures:
                self._have_neigh.get(n.ifindex, {}).pop(n.ip, None)
        for n in add:
            if n not in failures:
                self._have_neigh.setdefault(n.ifindex, {})[n.ip] = n.mac
        self._report(list(failures.items()))

    def _report(self, failures: list) -> None:
        """Log failures; anything but a vanished interface is retried on the next apply."""
        for item, err in failures:
            if err in (errno.ENODEV, errno.ENETDOWN):
                log.debug("%s: interface gone or down", item)
                continue
            log.warning("Failed to program %s: %s", item, errno.errorcode.get(err, err))
            name = self._links.name_of(item.ifindex)
            if name is not None:
                self._dirty.add(name)

    # ---- introspection (tests, status) ----

    def wanted_routes(self) -> dict[str, set[str]]:
        return {k: set(v) for k, v in self._want_routes.items() if v}
