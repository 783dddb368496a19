"""An in-memory kernel for the host-network managers' unit tests (no tests here: it is named
test_routes_* only to live beside them). It implements the `Kernel` contract of
calico.felix.dataplane.netlink, with the kernel behaviours the managers rely on: EXCL adds
fail with EEXIST when any route holds the destination, deletes match the protocol, routes and
neighbours vanish with their link, an admin-down flushes neighbours."""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence

from calico.felix.dataplane.netlink import Link, Neighbour, NetlinkError, Route


class FakeKernel:
    def __init__(self) -> None:
        self._links: dict[str, Link] = {"lo": Link(1, "lo", True, 65536),
                                        "eth0": Link(2, "eth0", True, 1500)}
        self.route_set: set[Route] = set()
        self.neigh: dict[tuple[int, str], str] = {}
        self.sysctls: dict[str, str] = {"net/ipv4/ip_forward": "0",
                                        "net/ipv6/conf/all/forwarding": "0"}
        self.addrs: set[tuple[int, str]] = {(2, "192.168.0.10/24")}
        self.route_batches: list[tuple[list[Route], list[Route]]] = []
        self.sysctl_writes = 0
        self.ipip_supported = True
        self._next_index = 10

    # ---- test helpers ----

    def add_link(self, name: str, up: bool = True, mtu: int = 1500) -> Link:
        self._next_index += 1
        link = Link(self._next_index, name, up, mtu)
        self._links[name] = link
        for key in ("net/ipv4/conf/{}/rp_filter", "net/ipv4/conf/{}/proxy_arp",
                    "net/ipv4/neigh/{}/proxy_delay", "net/ipv4/conf/{}/forwarding",
                    "net/ipv6/conf/{}/proxy_ndp", "net/ipv6/conf/{}/forwarding",
                    "net/ipv6/conf/{}/accept_ra", "net/ipv4/conf/{}/route_localnet"):
            self.sysctls[key.format(name)] = "0" if "proxy_delay" not in key else "80"
        return link

    def set_up(self, name: str, up: bool) -> Link:
        link = self._links[name]
        self._links[name] = Link(link.index, name, up, link.mtu)
        return self._links[name]

    def del_link(self, name: str) -> Link:
        link = self._links.pop(name)
        self.route_set = {r for r in self.route_set if r.ifindex != link.index}
        self.neigh = {k: v for k, v in self.neigh.items() if k[0] != link.index}
        self.sysctls = {k: v for k, v in self.sysctls.items() if f"/{name}/" not in k}
        return link

    def index(self, name: str) -> int:
        return self._links[name].index

    def dsts(self, protocol: int | None = None, name: str | None = None) -> set[str]:
        return {r.dst for r in self.route_set
                if (protocol is None or r.protocol == protocol)
                and (name is None or r.ifindex == self.index(name))}

    # ---- the Kernel contract ----

    def links(self) -> list[Link]:
        return list(self._links.values())

    def routes(self, protocol: int, ifindex: int = 0) -> list[Route]:
        return sorted(r for r in self.route_set
                      if r.protocol == protocol and (not ifindex or r.ifindex == ifindex))

    def add_routes_and_delete(self, add: Sequence[Route], delete: Sequence[Route]
                              ) -> list[tuple[Route, int]]:
        self.route_batches.append((list(add), list(delete)))
        failures = []
        for r in delete:
            self.route_set.discard(r)
        indexes = {ln.index for ln in self._links.values()}
        for r in add:
            if r.ifindex not in indexes:
                failures.append((r, errno.ENODEV))
            elif any(x.dst == r.dst for x in self.route_set):
                failures.append((r, errno.EEXIST))
            else:
                self.route_set.add(r)
        return failures

    def neighbours(self, ifindex: int = 0) -> list[Neighbour]:
        return [Neighbour(i, ip, mac) for (i, ip), mac in self.neigh.items()
                if not ifindex or i == ifindex]

    def set_neighbours(self, add: Sequence[Neighbour], delete: Sequence[Neighbour]
                       ) -> list[tuple[Neighbour, int]]:
        for n in delete:
            self.neigh.pop((n.ifindex, n.ip), None)
        for n in add:
            self.neigh[(n.ifindex, n.ip)] = n.mac
        return []

    def read_sysctls(self, keys: Iterable[str]) -> dict[str, str | None]:
        return {k: self.sysctls.get(k) for k in keys}

    def write_sysctls(self, values: dict[str, str]) -> list[tuple[str, int]]:
        failures = []
        for k, v in values.items():
            if k in self.sysctls:
                self.sysctls[k] = v
                self.sysctl_writes += 1
            else:
                failures.append((k, errno.ENOENT))
        return failures

    def addresses(self, ifindex: int = 0) -> list[tuple[int, str]]:
        return sorted(a for a in self.addrs if not ifindex or a[0] == ifindex)

    def set_addresses(self, ifindex: int, add: Sequence[str], delete: Sequence[str]) -> None:
        for c in delete:
            self.addrs.discard((ifindex, c))
        for c in add:
            self.addrs.add((ifindex, c))

    def ensure_ipip_device(self, name: str, mtu: int) -> Link:
        if not self.ipip_supported:
            raise NetlinkError(errno.EOPNOTSUPP, "Operation not supported")
        link = self._links.get(name) or self.add_link(name)
        self._links[name] = Link(link.index, name, True, mtu)
        return self._links[name]
