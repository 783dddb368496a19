"""VXLAN in the calculation graph: every host's tunnel endpoint, and the routes to remote
blocks that Felix programs for VXLAN pools (Calico's VXLANResolver and L3RouteResolver).

In (from the graph, by datastore kind):
- Nodes: `spec.bgp.ipv4Address` (with its prefix: it also says which subnet a host is on),
  `spec.ipv4VXLANTunnelAddr` (allocated from IPAM by calico-node) and `spec.vxlanTunnelMACAddr`;
- IPv4 IP pools with their `vxlanMode`;
- IPAM blocks (`/calico/ipam/v2/assignment/ipv4/block/...`, Calico's AllocationBlock JSON):
  the host the block is affine to (`affinity: "host:<node>"`) and, for addresses allocated
  to a different host than the block's (borrowed), that host (the `node` attribute).

Out (to the sequencer, coalesced there):
- `VXLANTunnelEndpointUpdate/Remove`, one per host whose address and tunnel address are both
  known (this host included). The MAC is the Node's `vxlanTunnelMACAddr` or, as in Calico,
  0x66 followed by the first five bytes of SHA-1 of the node name (locally administered,
  unicast), so every host computes the same MAC for a host without asking it.
- `RouteUpdate/Remove`, one per destination: each block of another host, and each address
  borrowed by another host, inside an IPv4 pool with `vxlanMode` Always or CrossSubnet.
  CrossSubnet encapsulates only towards hosts outside this host's subnet (the prefix of our
  own `ipv4Address`); towards the same subnet the route goes via the host's address, plain.
  A route through the tunnel waits for the remote host's VTEP (the dataplane needs its
  tunnel address as the gateway); a route waits for the remote host's address in any case.

Routes are recomputed (not patched) whenever an input changed since the last flush: a few
thousand blocks cost milliseconds, and a recomputation cannot drift the way increments can.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any, Protocol

from calico.api.cluster import Node
from calico.felix import messages as m

ENCAP_MODES = ("Always", "CrossSubnet")
BLOCKS_PREFIX = "/calico/ipam/v2/assignment/"


def vtep_mac(node: str) -> str:
    """Calico's deterministic VTEP MAC for a node without `vxlanTunnelMACAddr`."""
    digest = hashlib.sha1(node.encode()).digest()
    return ":".join(f"{b:02x}" for b in (b"f" + digest[:5]))


class VXLANSink(Protocol):
    """Where the resolver sends its output (the event sequencer, which coalesces it): VTEPs
    and routes, each update replacing the last for its node or destination."""

    def vtep_update(self, msg: m.VXLANTunnelEndpointUpdate) -> None: ...
    def vtep_remove(self, node: str) -> None: ...
    def route_update(self, msg: m.RouteUpdate) -> None: ...
    def route_remove(self, dst: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Host:
    iface: ipaddress.IPv4Interface | None  # the host's address with its subnet
    tunnel_ip: str
    mac: str


@dataclass(frozen=True, slots=True)
class _Block:
    cidr: str
    host: str  # affine host, "" if none
    borrowed: tuple[tuple[str, str], ...]  # (address, node) held by a host not `host`


class VXLANResolver:
    """Nodes, pools and IPAM blocks in; VTEPs and VXLAN-pool routes out (module doc)."""

    def __init__(self, hostname: str, sink: VXLANSink) -> None:
        self.hostname = hostname
        self._sink = sink
        self._hosts: dict[str, _Host] = {}
        self._pools: dict[str, tuple[ipaddress.IPv4Network, str]] = {}
        self._blocks: dict[str, _Block] = {}
        self._vteps: set[str] = set()
        self._routes: set[str] = set()
        self._dirty = False

    # ---- inputs ----

    def on_node(self, name: str, node: Node | None) -> None:
        host = None if node is None else _host(name, node)
        if self._hosts.get(name) == host:
            return
        if host is None:
            self._hosts.pop(name, None)
        else:
            self._hosts[name] = host
        self._send_vtep(name)
        self._dirty = True

    def on_pool(self, name: str, cidr: str | None, vxlan_mode: str = "Never") -> None:
        net = None if cidr is None else ipaddress.ip_network(cidr, strict=False)
        if isinstance(net, ipaddress.IPv4Network) and vxlan_mode in ENCAP_MODES:
            self._pools[name] = (net, vxlan_mode)
        elif self._pools.pop(name, None) is None:
            return
        self._dirty = True

    def on_block(self, key: str, value: Any) -> None:
        """An IPAM block's JSON (decoded), or None when it was deleted."""
        block = _block(value) if isinstance(value, dict) else None
        if self._blocks.get(key) == block:
            return
        if block is None:
            self._blocks.pop(key, None)
        else:
            self._blocks[key] = block
        self._dirty = True

    # ---- outputs ----

    def _send_vtep(self, name: str) -> None:
        host = self._hosts.get(name)
        if host is not None and host.iface is not None and host.tunnel_ip:
            self._vteps.add(name)
            self._sink.vtep_update(m.VXLANTunnelEndpointUpdate(
                name, str(host.iface.ip), host.tunnel_ip, host.mac))
        elif name in self._vteps:
            self._vteps.discard(name)
            self._sink.vtep_remove(name)

    def flush(self) -> None:
        """Recompute the routes if anything they depend on changed; send the difference."""
        if not self._dirty:
            return
        self._dirty = False
        wanted = self.routes()
        for dst in sorted(self._routes - wanted.keys()):
            self._sink.route_remove(dst)
        for msg in wanted.values():
            self._sink.route_update(msg)
        self._routes = set(wanted)

    def routes(self) -> dict[str, m.RouteUpdate]:
        """Every route Felix should program now, by destination."""
        if not self._pools:
            return {}
        me = self._hosts.get(self.hostname)
        subnet = None if me is None or me.iface is None else me.iface.network
        out: dict[str, m.RouteUpdate] = {}
        for _key, block in sorted(self._blocks.items()):
            targets = [(str(ip), node) for ip, node in block.borrowed if node != self.hostname]
            if block.host and block.host != self.hostname:
                targets.append((block.cidr, block.host))
            for dst, node in targets:
                route = self._route(dst, node, subnet)
                if route is not None:
                    out[route.dst] = route
        return out

    def _route(self, dst: str, node: str, subnet: ipaddress.IPv4Network | None
               ) -> m.RouteUpdate | None:
        net = ipaddress.ip_network(dst, strict=False)
        if net.version != 4:
            return None
        mode = next((mode for pool, mode in self._pools.values() if net.subnet_of(pool)), None)
        host = self._hosts.get(node)
        if mode is None or host is None or host.iface is None:
            return None
        same_subnet = subnet is not None and host.iface.ip in subnet
        vxlan = mode == "Always" or not same_subnet
        if vxlan and node not in self._vteps:
            return None
        return m.RouteUpdate(str(net), node, str(host.iface.ip), vxlan)


def _host(name: str, node: Node) -> _Host:
    addr = node.spec.bgp.ipv4Address if node.spec.bgp is not None else None
    iface = ipaddress.IPv4Interface(addr) if addr else None
    return _Host(iface, node.spec.ipv4VXLANTunnelAddr or "",
                 (node.spec.vxlanTunnelMACAddr or vtep_mac(name)).lower())


def _block(value: dict[str, Any]) -> _Block | None:
    """The routing-relevant part of an AllocationBlock; None if it is not one."""
    cidr = value.get("cidr")
    if not cidr or value.get("deleted"):
        return None
    net = ipaddress.ip_network(cidr, strict=False)
    affinity = value.get("affinity") or ""
    host = affinity[5:] if affinity.startswith("host:") else ""
    attrs = value.get("attributes") or []
    borrowed = []
    for ordinal, index in enumerate(value.get("allocations") or ()):
        if index is None or not 0 <= index < len(attrs):
            continue
        node = ((attrs[index] or {}).get("secondary") or {}).get("node") or ""
        if node and node != host:
            borrowed.append((str(net.network_address + ordinal), node))
    return _Block(str(net), host, tuple(borrowed))
