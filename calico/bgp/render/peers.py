"""Which BGP sessions a node has, per address family, following Calico's confd: the
node-to-node mesh, BGPPeers that apply to this node (one peerIP, or every node a peerSelector
picks), and the reverse side of node-to-node BGPPeers whose peerSelector picks this node. Pure."""

from __future__ import annotations

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
    node_asn,
    node_iface,
    parse_asn,
    peer_extra,
    peer_ip_port,
    protocol_name,
    selects,
    spec_of,
)


@dataclass
class _PeerSet:
    """The peers of this node for one address family, as they are gathered: the first
    session to a given address wins (mesh, then BGPPeers by name)."""

    inp: BGPInputs
    version: int
    my_iface: Any
    default_asn: int
    my_asn: int
    my_cluster: str | None
    my_labels: dict[str, str]
    peers: dict[Any, Peer] = field(default_factory=dict)

    def add_node(self, prefix: str, node: dict[str, Any], extra: dict[str, Any]) -> None:
        """A session to another Calico node (a peerSelector match or a reverse peering)."""
        iface = node_iface(node, self.version)
        if iface is None or iface.ip == self.my_iface.ip:
            return
        asn = node_asn(node, self.default_asn)
        theirs = cluster_id(node)
        rr_client = bool(self.my_cluster and asn == self.my_asn and theirs != self.my_cluster)
        if iface.ip not in self.peers:
            self.peers[iface.ip] = Peer(protocol_name(prefix, iface.ip), iface.ip, None, asn,
                                        rr_client=rr_client, **extra)

    def result(self) -> list[Peer]:
        return sorted(self.peers.values(), key=lambda p: (p.ip.version, int(p.ip)))


def _mesh_peers(ps: _PeerSet, default_cfg: dict[str, Any]) -> None:
    """The node-to-node mesh: every other node, unless `nodeToNodeMeshEnabled: false`."""
    if default_cfg.get("nodeToNodeMeshEnabled", True) is False:
        return
    inp = ps.inp
    mesh_pw = inp.passwords.get("__mesh__")
    restart = duration_seconds(default_cfg.get("nodeMeshMaxRestartTime"))
    for name, node in sorted(inp.nodes.items()):
        if name == inp.hostname:
            continue
        # In a mesh every node peers with every node: no reflection between them.
        iface = node_iface(node, ps.version)
        if iface is None or iface.ip == ps.my_iface.ip or iface.ip in ps.peers:
            continue
        ps.peers[iface.ip] = Peer(protocol_name("Mesh", iface.ip), iface.ip, None,
                                  node_asn(node, ps.default_asn), password=mesh_pw,
                                  restart_time=restart)


def _reverse_peers(ps: _PeerSet, name: str, spec: dict[str, Any]) -> None:
    """The other end of a node-to-node BGPPeer whose peerSelector selects this node: the
    nodes it applies to peer with us, so we peer back with each of them (Calico's confd does
    the same; this is what lets one `nodeSelector: all(), peerSelector: <reflectors>` peer
    configure the route reflectors too)."""
    if not (spec.get("peerSelector") and selects(spec["peerSelector"], ps.my_labels)):
        return
    inp = ps.inp
    for node_name, node in sorted(inp.nodes.items()):
        if node_name != inp.hostname and applies(spec, node_name, labels_of(node)):
            ps.add_node("Node", node, peer_extra(inp, name, spec) or {})


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
                ps.add_node("Node", node, extra)
        return
    if not spec.get("peerIP"):
        return
    ip, port = peer_ip_port(str(spec["peerIP"]))
    if ip.version != ps.version or ip == ps.my_iface.ip:
        return
    asn = parse_asn(spec.get("asNumber", ps.my_asn))
    ps.peers.setdefault(ip, Peer(protocol_name(prefix, ip), ip, port, asn, **extra))


def compute_peers(inp: BGPInputs, version: int) -> list[Peer]:
    """Every BGP peer of this node for one address family, deduplicated by peer address."""
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
    for res in sorted(inp.peers, key=lambda r: (r.get("metadata") or {}).get("name", "")):
        spec = spec_of(res)
        name = (res.get("metadata") or {}).get("name", "")
        _reverse_peers(ps, name, spec)
        _bgppeer_peers(ps, name, spec)
    return ps.result()
