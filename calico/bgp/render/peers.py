"""Which BGP sessions a node has, per address family, following Calico's confd. Pure.

- The node-to-node mesh (unless `nodeToNodeMeshEnabled: false`): every other node that is not
  a route reflector; a route reflector (a node with `routeReflectorClusterID`) has no mesh
  sessions at all. Each dials the other node's listen port; the side whose address is the
  greater *string* (Calico compares the text) is passive, so only one side connects.
- Every BGPPeer that applies to this node (`node`, `nodeSelector`, or neither: all nodes):
  its one `peerIP` (with its port, if any), or every node its `peerSelector` picks.
- The reverse sessions (unless the BGPPeer says `reversePeering: Manual`): when a BGPPeer's
  `peerSelector` picks this node, or its `peerIP` is this node's address, this node peers back
  with every node the BGPPeer applies to, so one resource configures both ends.

- Local workload peering: a BGPPeer with `localWorkloadSelector` that applies to this node
  peers with every endpoint on this node its selector picks (labels of the WorkloadEndpoint),
  at the endpoint's address, from BGPConfiguration `localWorkloadPeeringIPV4/6` (which must
  be an address of this host), as `Local_Workload_<address>`, eBGP multihop.

Sessions are keyed by (address, port): two BGPPeers with the same address and different ports
are two sessions (`Global_10_0_0_9_port_1790`). A BGPPeer by peerIP without a port that names
one of our nodes (address and AS) dials that node's listen port, as a reverse peering does, so
both land on one key. When several want one key, the first wins, in Calico confd's order
(`updatePeersV1`): the mesh; then the explicit peerings of global BGPPeers (neither `node` nor
`nodeSelector`); then those of node-specific BGPPeers; then the reverse peerings, so a node's
own BGPPeer to an address always beats another node's BGPPeer naming it. Within each pass
BGPPeers go by name (Calico walks a map: its order is unspecified). A route reflector treats
iBGP peers outside its cluster as its clients.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .model import (
    DEFAULT_AS,
    BGPInputs,
    Peer,
    RenderError,
    applies,
    cluster_id,
    duration_seconds,
    labels_of,
    listen_port,
    local_asn,
    node_asn,
    node_iface,
    node_setting,
    parse_asn,
    peer_extra,
    peer_ip_port,
    protocol_name,
    selects,
    spec_of,
)


@dataclass
class _PeerSet:
    """The peers of this node for one address family, as they are gathered."""

    inp: BGPInputs
    version: int
    my_iface: Any
    default_asn: int
    my_asn: int
    my_cluster: str | None
    my_labels: dict[str, str]
    peers: dict[tuple[Any, int | None], Peer] = field(default_factory=dict)

    def add(self, peer: Peer) -> None:
        self.peers.setdefault((peer.ip, peer.port), peer)

    def rr_client(self, asn: int, local: int, theirs: str | None) -> bool:
        return bool(self.my_cluster and asn == local and theirs != self.my_cluster)

    def passive(self, ip: Any) -> bool:
        """Calico makes the session to another node one-way: the greater address waits."""
        return str(ip) > str(self.my_iface.ip)

    def node_by_ip(self, ip: Any) -> tuple[str, dict[str, Any]] | None:
        for name, node in self.inp.nodes.items():
            iface = node_iface(node, self.version)
            if iface is not None and iface.ip == ip:
                return name, node
        return None

    def node_named_by(self, ip: Any, asn: int) -> str | None:
        """The node a BGPPeer's peerIP and AS name (Calico's `nodesWithIPPortAndAS`)."""
        found = self.node_by_ip(ip)
        if found is None or node_asn(found[1], self.default_asn) != asn:
            return None
        return found[0]

    def add_node(self, name: str, node: dict[str, Any], spec: dict[str, Any],
                 extra: dict[str, Any], prefix: str = "Node") -> None:
        """A session to another Calico node (a peerSelector match or a reverse peering), at
        its listen port (in the name too, as Calico names it, when one is set)."""
        iface = node_iface(node, self.version)
        if iface is None or iface.ip == self.my_iface.ip:
            return
        asn = node_asn(node, self.default_asn)
        local = local_asn(spec, self.my_asn)
        port = listen_port(self.inp, name)
        suffix = f"_port_{port}" if port else ""
        self.add(Peer(protocol_name(prefix, iface.ip) + suffix, iface.ip, port, asn, local,
                      kind=prefix.lower(),
                      rr_client=self.rr_client(asn, local, cluster_id(node)), **extra))

    def result(self) -> list[Peer]:
        return sorted(self.peers.values(),
                      key=lambda p: (p.ip.version, int(p.ip), p.port or 0))


def _mesh_peers(ps: _PeerSet, default_cfg: dict[str, Any]) -> None:
    """The node-to-node mesh: every other node that is not a route reflector."""
    if default_cfg.get("nodeToNodeMeshEnabled", True) is False or ps.my_cluster:
        return
    inp = ps.inp
    mesh_pw = inp.passwords.get("__mesh__")
    restart = duration_seconds(default_cfg.get("nodeMeshMaxRestartTime"))
    for name, node in sorted(inp.nodes.items()):
        iface = node_iface(node, ps.version)
        if name == inp.hostname or iface is None or iface.ip == ps.my_iface.ip:
            continue
        if cluster_id(node):
            continue  # reflectors are peered through BGPPeers, never through the mesh
        ps.add(Peer(protocol_name("Mesh", iface.ip), iface.ip, listen_port(inp, name),
                    node_asn(node, ps.default_asn), ps.my_asn, kind="mesh",
                    passive=ps.passive(iface.ip), password=mesh_pw, restart_time=restart))


def _reverse_peers(ps: _PeerSet, name: str, spec: dict[str, Any]) -> None:
    """The other end of a BGPPeer that names this node (by peerSelector or peerIP): the
    nodes it applies to peer with us, so we peer back with each of them (Calico's confd does
    the same; this is what lets one `nodeSelector: all(), peerSelector: <reflectors>` peer
    configure the route reflectors too). `reversePeering: Manual` turns this off."""
    if spec.get("reversePeering") == "Manual":
        return
    if spec.get("peerSelector"):
        if not selects(spec["peerSelector"], ps.my_labels):
            return
    elif spec.get("peerIP"):
        ip, port = peer_ip_port(str(spec["peerIP"]))
        mine = listen_port(ps.inp, ps.inp.hostname)
        if ip != ps.my_iface.ip or (port is not None and port != (mine or 179)):
            return
        if parse_asn(spec.get("asNumber") or ps.default_asn) != ps.my_asn:
            return  # Calico: the peerIP names a node only when the AS is that node's too
    else:
        return
    inp = ps.inp
    for node_name, node in sorted(inp.nodes.items()):
        if node_name != inp.hostname and applies(spec, node_name, labels_of(node)):
            ps.add_node(node_name, node, spec, peer_extra(inp, name, spec) or {})


def _bgppeer_prefix(spec: dict[str, Any], hostname: str, labels: dict[str, str]) -> str | None:
    """The protocol-name prefix of a BGPPeer that applies to this node; None if it does not."""
    if spec.get("node"):
        return "Node" if spec["node"] == hostname else None
    if spec.get("nodeSelector"):
        return "Node" if selects(spec["nodeSelector"], labels) else None
    return "Global"


def _bgppeer_peers(ps: _PeerSet, name: str, spec: dict[str, Any]) -> None:
    """The sessions one BGPPeer that applies to this node asks for: every node its
    peerSelector selects, or its one peerIP."""
    inp = ps.inp
    prefix = _bgppeer_prefix(spec, inp.hostname, ps.my_labels)
    if prefix is None:
        return
    extra = peer_extra(inp, name, spec)
    if extra is None:
        return
    if spec.get("peerSelector"):
        for node_name, node in sorted(inp.nodes.items()):
            if node_name != inp.hostname and selects(spec["peerSelector"], labels_of(node)):
                ps.add_node(node_name, node, spec, extra, prefix)
        return
    if not spec.get("peerIP"):
        return
    ip, port = peer_ip_port(str(spec["peerIP"]))
    if ip.version != ps.version or ip == ps.my_iface.ip:
        return
    local = local_asn(spec, ps.my_asn)
    asn = parse_asn(spec.get("asNumber", local))
    named = ps.node_named_by(ip, parse_asn(spec.get("asNumber") or ps.default_asn))
    if port is None and named is not None:
        port = listen_port(inp, named)  # one of our nodes: dial its listen port, as Calico
    node = ps.node_by_ip(ip)
    suffix = f"_port_{port}" if port else ""
    ps.add(Peer(protocol_name(prefix, ip) + suffix, ip, port, asn, local, kind=prefix.lower(),
                rr_client=ps.rr_client(asn, local, cluster_id(node[1]) if node else None),
                passive=node is not None and prefix == "Global" and ps.passive(ip), **extra))


def _local_workload_peers(ps: _PeerSet, name: str, spec: dict[str, Any]) -> None:
    """Sessions with this node's endpoints that a BGPPeer's localWorkloadSelector picks."""
    inp = ps.inp
    if not spec.get("localWorkloadSelector") or not applies(spec, inp.hostname, ps.my_labels):
        return
    source = node_setting(inp, f"localWorkloadPeeringIPV{ps.version}")
    extra = peer_extra(inp, name, spec)
    if extra is None:
        return
    local = local_asn(spec, ps.my_asn)
    asn = parse_asn(spec.get("asNumber", local))
    for wep in sorted(inp.workloads, key=lambda w: (w.get("metadata") or {}).get("name", "")):
        if not selects(spec["localWorkloadSelector"], labels_of(wep)):
            continue
        for cidr in spec_of(wep).get("ipNetworks") or []:
            ip = ipaddress.ip_interface(cidr).ip
            if ip.version != ps.version:
                continue
            if not source:
                why = (f'BGPPeer "{name}": localWorkloadPeeringIPV{ps.version} is not set, '
                       f"no session with {ip}")
                if why not in inp.skipped:
                    inp.skipped.append(why)
                continue
            ps.add(Peer(protocol_name("Local_Workload", ip), ip, None, asn, local,
                        kind="local_workload", local_address=str(source),
                        **{**extra, "source": "UseNodeIP"}))


def compute_peers(inp: BGPInputs, version: int) -> list[Peer]:
    """Every BGP session of this node for one address family, by (address, port)."""
    me = inp.nodes.get(inp.hostname)
    if me is None:
        raise RenderError(f'Node "{inp.hostname}" does not exist')
    default_cfg = spec_of(inp.configs.get("default"))
    default_asn = parse_asn(default_cfg.get("asNumber", DEFAULT_AS))
    my_iface = node_iface(me, version)
    if my_iface is None:
        return []
    ps = _PeerSet(inp, version, my_iface, default_asn, node_asn(me, default_asn),
                  cluster_id(me), labels_of(me))
    _mesh_peers(ps, default_cfg)
    bgppeers = [((r.get("metadata") or {}).get("name", ""), spec_of(r)) for r in inp.peers]
    bgppeers.sort(key=lambda item: item[0])
    # Calico's order (the first for an (address, port) wins): global BGPPeers' own peerings,
    # node-specific ones', then the reverse peerings.
    for global_pass in (True, False):
        for name, spec in bgppeers:
            if global_pass == (not spec.get("node") and not spec.get("nodeSelector")):
                _bgppeer_peers(ps, name, spec)
    for name, spec in bgppeers:
        _reverse_peers(ps, name, spec)
    for name, spec in bgppeers:
        _local_workload_peers(ps, name, spec)
    return ps.result()
