"""The text of bird.conf: global settings, per family the block statics, export functions and
kernel protocol, then one `protocol bgp` per peer. Pure.

Per family `v`:
- `static_blocks<v>`: a blackhole per affine block, except one-address blocks (a blackhole
  there would shadow nothing but could shadow the workload's own route, as Calico notes).
- `calico_export<v>(bool to_ibgp)`: what a peer receives. Pools with `disableBGPExport`: never.
  Communities from `prefixAdvertisements` are added first, so they reach our own blocks too.
  Routes learned over BGP: to an iBGP peer, those learned over eBGP (BIRD itself never sends an
  iBGP-learned route to an iBGP peer unless it reflects); to an eBGP peer, those learned over
  iBGP (never eBGP to eBGP: a host is no transit between two other ASes). Then our blocks (never
  the /32s beneath them) and any other pool route (borrowed addresses); nothing else.
  The service CIDRs of BGPConfiguration (serviceClusterIPs, serviceExternalIPs,
  serviceLoadBalancerIPs) are static blackholes here, exported like our blocks.
- `kernel<v>`: learns Felix's workload routes (its route protocol, inside a pool, not in a
  VXLAN pool: Felix routes those, as in Calico's calico_kernel_programming), programs
  what BGP learned (not in a VXLAN pool) (IP-in-IP pools through `tunl0`) and the static routes, never a service
  CIDR (the service proxy, not a route, handles those addresses).
- `direct<v>`: device routes (for recursive next hops), minus `ignoredInterfaces`, `cali*`
  and `kube-ipvs*` as in Calico. `bindMode: NodeIP` makes every session `strict bind`, so BIRD
  listens on the node's address only.
Each peer's export is `calico_export<v>(<is iBGP>)` after the BGPFilter functions it names.

Logging, as Calico's BIRD: to stderr (calico-node's log), every protocol's state changes, or
everything when BGPConfiguration `logSeverityScreen` (`node.<name>`'s, else `default`'s) is
Debug or Trace.
"""

from __future__ import annotations

from .bgpfilter import filter_calls, filter_functions
from .filters import (
    blocks_of,
    communities,
    direct_interfaces,
    ipip_statements,
    pools_of,
    prefix_set,
    service_cidrs,
    vxlan_pools_of,
)
from .model import (
    GR_WAIT,
    BGPInputs,
    Peer,
    RenderError,
    cluster_id,
    listen_port,
    node_iface,
    node_setting,
    router_id,
)
from .peers import compute_peers


def _statics(inp: BGPInputs, v: str, blocks: list[str], peers: list[Peer],
             lines: list[str]) -> None:
    routes = [f"  route {b} blackhole;" for b in blocks if not b.endswith(("/32", "/128"))]
    host = "/32" if v == "4" else "/128"
    routes += [f"  route {p.ip}{host} via {p.reachable_by};" for p in peers if p.reachable_by]
    routes += [f"  route {c} blackhole;" for c in service_cidrs(inp, int(v))]
    if routes:
        lines += [f"protocol static static_blocks{v} {{", f"  ipv{v};", *routes, "}"]


def _export_function(inp: BGPInputs, v: str, version: int, blocks: list[str],
                     peers: list[Peer], lines: list[str]) -> None:
    pools, hidden = pools_of(inp, version)
    lines.append(f"function calico_aggr{v}() {{")
    for b in blocks:
        lines += [f"  if net = {b} then accept;", f"  if net ~ {b} then reject;"]
    lines.append("}")
    lines.append(f"function calico_ibgp_learned{v}() {{")
    lines += [f'  if proto = "{p.name}" then return true;' for p in peers if p.ibgp]
    lines += ["  return false;", "}"]
    lines.append(f"function calico_export{v}(bool to_ibgp) {{")
    if hidden:
        lines.append(f"  if net ~ {prefix_set(hidden)} then reject;")
    for cidr, stmts in communities(inp, version):
        if stmts:
            lines.append(f"  if net ~ {prefix_set([cidr])} then {{ {' '.join(stmts)} }}")
    lines.append(f"  if source = RTS_BGP then {{ if to_ibgp || calico_ibgp_learned{v}() "
                 "then accept; reject; }")
    services = service_cidrs(inp, version)
    if services:
        lines.append(f"  if source = RTS_STATIC && net ~ {prefix_set(services, plus=False)} "
                     "then accept;")
    lines.append(f"  calico_aggr{v}();")
    if pools:
        lines.append(f"  if net ~ {prefix_set(pools)} then accept;")
    lines += ["  reject;", "}"]


def _render_family(inp: BGPInputs, version: int, lines: list[str]) -> list[Peer]:
    v = str(version)
    pools, _ = pools_of(inp, version)
    blocks = blocks_of(inp, version)
    peers = compute_peers(inp, version)
    lines.append(f"# ---- IPv{v} ----")
    _statics(inp, v, blocks, peers, lines)
    _export_function(inp, v, version, blocks, peers, lines)
    lines += filter_functions(inp.filters, version)
    lines.append(f"filter calico_kernel{v} {{")
    lines.append("  if source != RTS_BGP && source != RTS_STATIC then reject;")
    vxlan = vxlan_pools_of(inp, version)
    if vxlan:  # Felix routes VXLAN pools
        lines.append(f"  if source = RTS_BGP && net ~ {prefix_set(vxlan)} then reject;")
    services = service_cidrs(inp, version)
    if services:
        lines.append(f"  if net ~ {prefix_set(services)} then reject;")
    if version == 4:
        lines += [f"  {stmt}" for stmt in ipip_statements(inp)]
    lines += ["  accept;", "}"]
    learn = f"krt_source = {inp.route_protocol}"
    learn += f" && net ~ {prefix_set(pools)}" if pools else " && false"
    if vxlan:
        learn += f" && !(net ~ {prefix_set(vxlan)})"
    lines.append(f"protocol kernel kernel{v} {{")
    lines.append(f"  ipv{v} {{ import where {learn}; export filter calico_kernel{v}; }};")
    lines.append("  learn; persist; scan time 10; graceful restart; merge paths on;")
    lines.append("}")
    return peers


def _session_lines(inp: BGPInputs, peer: Peer, on_link: bool) -> list[str]:
    me = inp.nodes[inp.hostname]
    my_iface = node_iface(me, peer.ip.version)
    local = f"local {peer.local_address or my_iface.ip}" if peer.source != "None" else "local"
    port = listen_port(inp, inp.hostname)
    if port:
        local += f" port {port}"
    bind = node_setting(inp, "bindMode") == "NodeIP" and peer.source != "None"
    neighbor = f"neighbor {peer.ip}" + (f" port {peer.port}" if peer.port else "")
    out = [f"{local} as {peer.local_asn};", f"{neighbor} as {peer.asn};"]
    if bind:
        out.append("strict bind on;")  # bindMode: NodeIP: listen on the node's address only
    if peer.ttl_security:
        out.append(f"ttl security on; multihop {peer.ttl_security};")
    else:
        out.append("direct;" if on_link else "multihop;")
    if peer.passive:
        out.append("passive on;")
    if peer.rr_client:
        out.append(f"rr client; rr cluster id {cluster_id(me)};")
    if peer.password:
        out.append(f'password "{peer.password}";')
    if peer.restart_time:
        out.append(f"graceful restart time {peer.restart_time};")
    if peer.keepalive_time:
        # BIRD wants the keepalive below the hold time: keep Calico's 3:1 ratio if needed.
        hold = max(30, 3 * peer.keepalive_time)
        out.append(f"hold time {hold}; keepalive time {peer.keepalive_time};")
    if peer.allow_local_as:
        out.append(f"allow local as {peer.allow_local_as};")
    return out


def _channel(inp: BGPInputs, peer: Peer, on_link: bool) -> str:
    version = peer.ip.version
    imports = filter_calls(inp.filters, peer.filters, "import", version, peer.ibgp)
    exports = filter_calls(inp.filters, peer.filters, "export", version, peer.ibgp)
    exports.append(f"calico_export{version}({'true' if peer.ibgp else 'false'});")
    parts = [f"import filter {{ {' '.join([*imports, 'accept;'])} }};",
             f"export filter {{ {' '.join([*exports, 'reject;'])} }};",
             "gateway direct;" if on_link else f"gateway recursive; igp table master{version};"]
    if peer.next_hop == "Self":
        parts.append("next hop self;")
    elif peer.next_hop == "Keep" or (peer.next_hop == "KeepEBGP" and not peer.ibgp):
        parts.append("next hop keep;")
    elif peer.ibgp:
        # A route learned over eBGP (a ToR's, a workload's) goes on to iBGP peers with us as
        # the next hop: the peer's own next hop may be reachable only through this host.
        parts.append("next hop self ebgp;")
    return " ".join(parts)


def _render_peer(inp: BGPInputs, peer: Peer, lines: list[str]) -> None:
    my_iface = node_iface(inp.nodes[inp.hostname], peer.ip.version)
    on_link = (peer.ip in my_iface.network and peer.ttl_security is None
               and peer.kind != "local_workload")
    lines.append(f"protocol bgp {peer.name} from calico_peer {{")
    lines += [f"  {line}" for line in _session_lines(inp, peer, on_link)]
    for name in peer.filters:
        if name not in inp.filters:
            why = f'BGP session {peer.name}: BGPFilter "{name}" does not exist (ignored)'
            if why not in inp.skipped:
                inp.skipped.append(why)
    lines.append(f"  ipv{peer.ip.version} {{ {_channel(inp, peer, on_link)} }};")
    lines.append("}")


def debug_line(inp: BGPInputs) -> str:
    """BIRD's protocol debugging for BGPConfiguration `logSeverityScreen`."""
    level = str(node_setting(inp, "logSeverityScreen") or "Info").lower()
    return "debug protocols all;" if level in ("debug", "trace") else \
        "debug protocols { states };"


def render(inp: BGPInputs) -> str:
    """The whole bird.conf for `inp.hostname`. Raises RenderError if that node is missing or
    has no BGP address."""
    me = inp.nodes.get(inp.hostname)
    if me is None:
        raise RenderError(f'Node "{inp.hostname}" does not exist')
    inp.skipped.clear()
    if node_iface(me, 4) is None and node_iface(me, 6) is None:
        raise RenderError(f'Node "{inp.hostname}" has no spec.bgp.ipv4Address or ipv6Address')
    lines = [
        f"# Generated by calico-py for node {inp.hostname}. Do not edit.",
        f"router id {router_id(inp, me)};",
        "log stderr all;",
        debug_line(inp),
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
        if node_iface(me, version) is not None:
            peers.extend(_render_family(inp, version, lines))
            lines.append(f"protocol direct direct{version} {{ ipv{version}; "
                         f"interface {direct_interfaces(inp)}; }}")
    for peer in peers:
        _render_peer(inp, peer, lines)
    return "\n".join(lines) + "\n"
