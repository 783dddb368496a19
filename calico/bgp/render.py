"""Render BIRD 2 configuration for one Calico node from datastore state. Pure: no I/O.

Input is a `BGPInputs` snapshot (resources in Calico's JSON form, plus this node's affine
IPAM blocks); output is the text of one bird.conf that runs IPv4 and IPv6 in one daemon.

What the configuration does, per address family:
- `static_blocks4/6`: a blackhole route per affine block. Exported to peers as the aggregate
  and to the kernel, so traffic to unallocated addresses of our block is dropped here instead
  of following a default route; Felix's /32 routes to workloads are more specific and win.
- `kernel4/6`: learns Felix's workload routes (only those tagged with Felix's route protocol
  and inside a pool), programs routes learned from peers and the block blackholes. Pools
  with `vxlanMode` Always/CrossSubnet are Felix's to route (as in Calico's
  calico_kernel_programming): routes in them are neither learned nor programmed. `persist`
  and graceful restart keep routes in the kernel while BIRD restarts or reloads: calico-node
  starts BIRD with `-R`, so the kernel table is not synced (routes to other hosts pruned)
  until the sessions are back and have sent End-of-RIB, or `GR_WAIT` seconds have passed.
- `calico_export4/6`: what peers receive: our blocks (never the /32s beneath them), single
  addresses we hold in other hosts' blocks (borrowed), communities from
  `prefixAdvertisements`; never anything outside a pool, never a pool with
  `disableBGPExport`. A route reflector also reflects routes it learned; other nodes export
  only what they originate.
- peers: the node-to-node mesh (unless `nodeToNodeMeshEnabled: false`), and every BGPPeer that
  applies to this node (global, `node:` or `nodeSelector:`), each either one `peerIP` or every
  Calico node matching `peerSelector`; and, on a node that a `peerSelector` selects, the
  reverse sessions to every node that BGPPeer applies to. A node with
  `routeReflectorClusterID` treats iBGP peers outside its cluster as route-reflector clients. A peer on the node's own subnet is direct;
  others are multihop with recursive next hops.

Protocol names follow Calico's (`Mesh_10_0_0_2`, `Node_10_0_0_3`, `Global_10_0_0_4`), so
`calicoctl node status` reads the same as Calico's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_AS = 64512
DEFAULT_ROUTE_PROTOCOL = 80
# How long a restarted BIRD defers syncing the kernel for sessions that are not back (BIRD's
# default, 240 s, freezes this host's routes for four minutes whenever a peer is down when it
# restarts). Sessions come up in about a second, or after one or two 5 s connect retries.
GR_WAIT = 20


@dataclass
class BGPInputs:
    hostname: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # Node resources by name
    peers: list[dict[str, Any]] = field(default_factory=list)  # BGPPeer resources
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # BGPConfiguration by name
    pools: list[dict[str, Any]] = field(default_factory=list)  # IPPool resources
    blocks: list[str] = field(default_factory=list)  # this node's affine block CIDRs
    route_protocol: int = DEFAULT_ROUTE_PROTOCOL  # Felix's kernel route protocol number
    passwords: dict[str, str] = field(default_factory=dict)  # BGPPeer name -> password
    skipped: list[str] = field(default_factory=list)  # filled by render: peers left out, why


class RenderError(ValueError):
    """The inputs cannot make a working configuration (e.g. this node has no address)."""


@dataclass(frozen=True)
class Peer:
    name: str  # BIRD protocol name
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int | None
    asn: int
    rr_client: bool = False
    password: str | None = None
    keep_next_hop: bool = False
    restart_time: int | None = None
    ttl_security: int | None = None
    allow_local_as: int | None = None
    source: str = "UseNodeIP"  # or "None"


def _spec(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("spec") or {}


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def parse_asn(value: Any) -> int:
    """A plain ("64512") or dotted ("1.10" = 1*65536+10) AS number."""
    text = str(value)
    if "." in text:
        hi, lo = text.split(".", 1)
        return int(hi) * 65536 + int(lo)
    return int(text)


def _duration_seconds(value: Any) -> int | None:
    """Seconds of a Go duration ("120s", "2m", "1h30m"); None if unset or unparsable."""
    if value in (None, ""):
        return None
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(h|ms|m|s)", str(value)):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return int(total) or None


def _iface(addr: str | None) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    if not addr:
        return None
    try:
        return ipaddress.ip_interface(addr)
    except ValueError:
        return None


def _node_iface(node: dict[str, Any], version: int):
    return _iface(_spec(node).get("bgp", {}).get(f"ipv{version}Address"))


def _node_asn(node: dict[str, Any], default_asn: int) -> int:
    asn = _spec(node).get("bgp", {}).get("asNumber")
    return parse_asn(asn) if asn not in (None, "") else default_asn


def _cluster_id(node: dict[str, Any]) -> str | None:
    return _spec(node).get("bgp", {}).get("routeReflectorClusterID") or None


def _selects(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return False
    from calico.selector import parse

    return parse(selector).evaluate(labels)


_BIRD_SAFE = re.compile(r'[^"\\\n\r]{1,80}')


def _protocol_name(prefix: str, ip: Any) -> str:
    return f"{prefix}_{re.sub(r'[^0-9A-Za-z]', '_', str(ip))}"


def _router_id(me: dict[str, Any], hostname: str) -> str:
    bgp = _spec(me).get("bgp", {})
    if bgp.get("routerID"):
        return str(bgp["routerID"])
    v4 = _node_iface(me, 4)
    if v4 is not None:
        return str(v4.ip)
    # An IPv6-only node without routerID: a stable id from its name.
    digest = int.from_bytes(hashlib.sha256(hostname.encode()).digest()[:4], "big")
    return str(ipaddress.IPv4Address(digest | 0x01000000))


def _peer_ip_port(text: str) -> tuple[Any, int | None]:
    """`10.0.0.1`, `10.0.0.1:1790`, `fd00::1`, `[fd00::1]:1790`."""
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::(\d+))?", text)
    if m:
        return ipaddress.ip_address(m.group(1)), int(m.group(2)) if m.group(2) else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return ipaddress.ip_address(host), int(port)
    return ipaddress.ip_address(text), None


def _applies(spec: dict[str, Any], node_name: str, labels: dict[str, str]) -> bool:
    """Whether a BGPPeer's `node` / `nodeSelector` (neither: every node) covers a node."""
    if spec.get("node"):
        return spec["node"] == node_name
    if spec.get("nodeSelector"):
        return _selects(spec["nodeSelector"], labels)
    return True


def _peer_extra(inp: BGPInputs, name: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """A BGPPeer's session options; None (and a note in `inp.skipped`) if its password
    cannot be written into BIRD's configuration."""
    password = inp.passwords.get(name)
    if password is not None and not _BIRD_SAFE.fullmatch(password):
        # BIRD strings cannot escape quotes: never peer without the intended password.
        why = f'BGPPeer "{name}": password has characters BIRD cannot take'
        if why not in inp.skipped:
            inp.skipped.append(why)
        return None
    return {
        "password": password,
        "keep_next_hop": bool(spec.get("keepOriginalNextHop")),
        "restart_time": _duration_seconds(spec.get("maxRestartTime")),
        "ttl_security": spec.get("ttlSecurity") or None,
        "allow_local_as": spec.get("numAllowedLocalASNumbers") or None,
        "source": spec.get("sourceAddress", "UseNodeIP"),
    }


def compute_peers(inp: BGPInputs, version: int) -> list[Peer]:
    """Every BGP peer of this node for one address family, deduplicated by peer address."""
    me = inp.nodes.get(inp.hostname)
    if me is None:
        raise RenderError(f'Node "{inp.hostname}" does not exist')
    default_cfg = _spec(inp.configs.get("default"))
    default_asn = parse_asn(default_cfg.get("asNumber", DEFAULT_AS))
    my_iface = _node_iface(me, version)
    if my_iface is None:
        return []
    my_asn = _node_asn(me, default_asn)
    my_cluster = _cluster_id(me)
    my_labels = _labels(me)
    peers: dict[Any, Peer] = {}

    def add_node_peer(prefix: str, node: dict[str, Any], extra: dict[str, Any]) -> None:
        iface = _node_iface(node, version)
        if iface is None or iface.ip == my_iface.ip:
            return
        asn = _node_asn(node, default_asn)
        theirs = _cluster_id(node)
        rr_client = bool(my_cluster and asn == my_asn and theirs != my_cluster)
        if iface.ip not in peers:
            peers[iface.ip] = Peer(_protocol_name(prefix, iface.ip), iface.ip, None, asn,
                                   rr_client=rr_client, **extra)

    if default_cfg.get("nodeToNodeMeshEnabled", True) is not False:
        mesh_pw = inp.passwords.get("__mesh__")
        restart = _duration_seconds(default_cfg.get("nodeMeshMaxRestartTime"))
        for name, node in sorted(inp.nodes.items()):
            if name == inp.hostname:
                continue
            # In a mesh every node peers with every node: no reflection between them.
            iface = _node_iface(node, version)
            if iface is None or iface.ip == my_iface.ip or iface.ip in peers:
                continue
            peers[iface.ip] = Peer(_protocol_name("Mesh", iface.ip), iface.ip, None,
                                   _node_asn(node, default_asn), password=mesh_pw,
                                   restart_time=restart)

    for res in sorted(inp.peers, key=lambda r: (r.get("metadata") or {}).get("name", "")):
        spec = _spec(res)
        name = (res.get("metadata") or {}).get("name", "")
        if spec.get("peerSelector") and _selects(spec["peerSelector"], my_labels):
            # The other end of a node-to-node BGPPeer: the nodes it applies to peer with us,
            # so we peer back with each of them (Calico's confd does the same; this is what
            # lets one `nodeSelector: all(), peerSelector: <reflectors>` peer configure the
            # route reflectors too).
            for node_name, node in sorted(inp.nodes.items()):
                if node_name != inp.hostname and _applies(spec, node_name, _labels(node)):
                    add_node_peer("Node", node, _peer_extra(inp, name, spec) or {})
        if spec.get("node"):
            if spec["node"] != inp.hostname:
                continue
            prefix = "Node"
        elif spec.get("nodeSelector"):
            if not _selects(spec["nodeSelector"], my_labels):
                continue
            prefix = "Node"
        else:
            prefix = "Global"
        extra = _peer_extra(inp, name, spec)
        if extra is None:
            continue
        if spec.get("peerSelector"):
            for node_name, node in sorted(inp.nodes.items()):
                if node_name != inp.hostname and _selects(spec["peerSelector"], _labels(node)):
                    add_node_peer("Node", node, extra)
            continue
        if not spec.get("peerIP"):
            continue
        ip, port = _peer_ip_port(str(spec["peerIP"]))
        if ip.version != version or ip == my_iface.ip:
            continue
        asn = parse_asn(spec.get("asNumber", my_asn))
        peers.setdefault(ip, Peer(_protocol_name(prefix, ip), ip, port, asn, **extra))
    return sorted(peers.values(), key=lambda p: (p.ip.version, int(p.ip)))


def _pools(inp: BGPInputs, version: int) -> tuple[list[str], list[str]]:
    """(exported pool CIDRs, pool CIDRs with disableBGPExport) of one family."""
    exported, hidden = [], []
    for pool in inp.pools:
        spec = _spec(pool)
        try:
            net = ipaddress.ip_network(spec.get("cidr", ""), strict=False)
        except ValueError:
            continue
        if net.version != version:
            continue
        (hidden if spec.get("disableBGPExport") else exported).append(str(net))
    return sorted(exported), sorted(hidden)


def _blocks(inp: BGPInputs, version: int) -> list[str]:
    out = []
    for cidr in inp.blocks:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version == version:
            out.append(str(net))
    return sorted(out)


def _communities(inp: BGPInputs, version: int) -> list[tuple[str, list[str]]]:
    """(cidr, [BIRD community-add statements]) from BGPConfiguration prefixAdvertisements."""
    spec = _spec(inp.configs.get("default"))
    named = {c.get("name"): c.get("value") for c in spec.get("communities") or []}
    out = []
    for adv in spec.get("prefixAdvertisements") or []:
        try:
            net = ipaddress.ip_network(adv.get("cidr", ""), strict=False)
        except ValueError:
            continue
        if net.version != version:
            continue
        stmts = []
        for comm in adv.get("communities") or []:
            value = named.get(comm, comm)
            parts = str(value).split(":")
            if len(parts) == 2:
                stmts.append(f"bgp_community.add(({parts[0]}, {parts[1]}));")
            elif len(parts) == 3:
                stmts.append(f"bgp_large_community.add(({parts[0]}, {parts[1]}, {parts[2]}));")
        out.append((str(net), stmts))
    return out


def _set(cidrs: Iterable[str], plus: bool = True) -> str:
    return "[ " + ", ".join(f"{c}{'+' if plus else ''}" for c in cidrs) + " ]"


def _render_family(inp: BGPInputs, version: int, lines: list[str]) -> list[Peer]:
    v = str(version)
    pools, hidden = _pools(inp, version)
    blocks = _blocks(inp, version)
    peers = compute_peers(inp, version)
    me = inp.nodes[inp.hostname]
    reflector = _cluster_id(me) is not None

    lines.append(f"# ---- IPv{v} ----")
    if blocks:
        lines.append(f"protocol static static_blocks{v} {{")
        lines.append(f"  ipv{v};")
        lines.extend(f"  route {b} blackhole;" for b in blocks)
        lines.append("}")
    lines.append(f"function calico_aggr{v}() {{")
    for b in blocks:
        lines.append(f"  if net = {b} then accept;")
        lines.append(f"  if net ~ {b} then reject;")
    lines.append("}")
    lines.append(f"filter calico_export{v} {{")
    if hidden:
        lines.append(f"  if net ~ {_set(hidden)} then reject;")
    if not reflector:
        lines.append("  if source = RTS_BGP then reject;")
    lines.append(f"  calico_aggr{v}();")
    for cidr, stmts in _communities(inp, version):
        if stmts:
            lines.append(f"  if net ~ {_set([cidr])} then {{ {' '.join(stmts)} }}")
    if pools:
        lines.append(f"  if net ~ {_set(pools)} then accept;")
    lines.append("  reject;")
    lines.append("}")
    learn = f"krt_source = {inp.route_protocol}"
    learn += f" && net ~ {_set(pools)}" if pools else " && false"
    program = "source = RTS_BGP || source = RTS_STATIC"
    vxlan = [str(ipaddress.ip_network(_spec(p)["cidr"], strict=False)) for p in inp.pools
             if _spec(p).get("vxlanMode") in ("Always", "CrossSubnet")
             and ipaddress.ip_network(_spec(p)["cidr"], strict=False).version == version]
    if vxlan:  # Felix routes VXLAN pools: BIRD neither re-advertises nor programs them
        learn += f" && !(net ~ {_set(vxlan)})"
        program = f"source = RTS_STATIC || (source = RTS_BGP && !(net ~ {_set(vxlan)}))"
    lines.append(f"protocol kernel kernel{v} {{")
    lines.append(f"  ipv{v} {{ import where {learn}; export where {program}; }};")
    lines.append("  learn; persist; scan time 10; graceful restart; merge paths on;")
    lines.append("}")
    return peers


def _render_peer(inp: BGPInputs, peer: Peer, lines: list[str]) -> None:
    me = inp.nodes[inp.hostname]
    default_asn = parse_asn(_spec(inp.configs.get("default")).get("asNumber", DEFAULT_AS))
    my_asn = _node_asn(me, default_asn)
    my_iface = _node_iface(me, peer.ip.version)
    v = str(peer.ip.version)
    node_cfg = _spec(inp.configs.get(f"node.{inp.hostname}"))
    listen_port = node_cfg.get("listenPort") or _spec(inp.configs.get("default")).get(
        "listenPort")
    local = f"local {my_iface.ip}" if peer.source != "None" else "local"
    if listen_port:
        local += f" port {listen_port}"
    neighbor = f"neighbor {peer.ip}"
    if peer.port:
        neighbor += f" port {peer.port}"
    on_link = peer.ip in my_iface.network and peer.ttl_security is None
    lines.append(f"protocol bgp {peer.name} from calico_peer {{")
    lines.append(f"  {local} as {my_asn};")
    lines.append(f"  {neighbor} as {peer.asn};")
    if peer.ttl_security:
        lines.append(f"  ttl security on; multihop {peer.ttl_security};")
    elif on_link:
        lines.append("  direct;")
    else:
        lines.append("  multihop;")
    if peer.rr_client:
        cluster = _cluster_id(me)
        lines.append(f"  rr client; rr cluster id {cluster};")
    if peer.password:
        lines.append(f'  password "{peer.password}";')
    if peer.restart_time:
        lines.append(f"  graceful restart time {peer.restart_time};")
    if peer.allow_local_as:
        lines.append(f"  allow local as {peer.allow_local_as};")
    channel = ["import all;", f"export filter calico_export{v};"]
    channel.append("gateway direct;" if on_link else f"gateway recursive; igp table master{v};")
    if peer.keep_next_hop:
        channel.append("next hop keep;")
    lines.append(f"  ipv{v} {{ {' '.join(channel)} }};")
    lines.append("}")


def render(inp: BGPInputs) -> str:
    """The whole bird.conf for `inp.hostname`. Raises RenderError if that node is missing or
    has no BGP address."""
    me = inp.nodes.get(inp.hostname)
    if me is None:
        raise RenderError(f'Node "{inp.hostname}" does not exist')
    inp.skipped.clear()
    if _node_iface(me, 4) is None and _node_iface(me, 6) is None:
        raise RenderError(f'Node "{inp.hostname}" has no spec.bgp.ipv4Address or ipv6Address')
    lines = [
        f"# Generated by calico-py for node {inp.hostname}. Do not edit.",
        f"router id {_router_id(me, inp.hostname)};",
        f"graceful restart wait {GR_WAIT};",
        "protocol device { scan time 10; }",
        "template bgp calico_peer {",
        "  hold time 30; keepalive time 10;",
        "  connect delay time 1; connect retry time 5; error wait time 5, 30;",
        "  graceful restart;",
        "}",
    ]
    peers: list[Peer] = []
    for version in (4, 6):
        if _node_iface(me, version) is not None:
            peers.extend(_render_family(inp, version, lines))
    for peer in peers:
        _render_peer(inp, peer, lines)
    return "\n".join(lines) + "\n"
