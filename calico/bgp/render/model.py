"""The renderer's inputs and the small readers every part of it shares: a `BGPInputs` snapshot
(resources in Calico's JSON form), the `Peer` a session is rendered from, and helpers that read
Nodes and BGPPeers (addresses, AS numbers, labels, durations). Pure."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_AS = 64512
DEFAULT_ROUTE_PROTOCOL = 80
# How long a restarted BIRD waits for sessions that are not back before it syncs the kernel
# and, above all, before it announces anything: in graceful-restart recovery BIRD sends its
# peers no route until every peer has sent End-of-RIB, so one BGPPeer that never answers holds
# back a restarted node's new blocks for this long (BIRD's default, 240 s, for four minutes).
# Calico nodes' sessions are back in about a second, a GoBGP ToR's after its fixed 5 s idle.
GR_WAIT = 10


@dataclass
class BGPInputs:
    """Everything one render needs, as plain data; `render` only appends to `skipped`."""

    hostname: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # Node resources by name
    peers: list[dict[str, Any]] = field(default_factory=list)  # BGPPeer resources
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # BGPConfiguration by name
    pools: list[dict[str, Any]] = field(default_factory=list)  # IPPool resources
    blocks: list[str] = field(default_factory=list)  # this node's affine block CIDRs
    route_protocol: int = DEFAULT_ROUTE_PROTOCOL  # Felix's kernel route protocol number
    passwords: dict[str, str] = field(default_factory=dict)  # BGPPeer name -> password
    router_id: str | None = None  # CALICO_ROUTER_ID: an IPv4 address, or "hash"
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)  # BGPFilter by name
    workloads: list[dict[str, Any]] = field(default_factory=list)  # this node's endpoints
    skipped: list[str] = field(default_factory=list)  # filled by render: peers left out, why


class RenderError(ValueError):
    """The inputs cannot make a working configuration (e.g. this node has no address)."""


@dataclass(frozen=True)
class Peer:
    """One BGP session to render: who (address, port, AS), how (options), as what (kind)."""

    name: str  # BIRD protocol name
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int | None
    asn: int
    local_asn: int  # this node's AS on this session (BGPPeer localASNumber, else the node's)
    kind: str = "global"  # mesh | node | global | local_workload
    local_address: str | None = None  # instead of the node's address (local workload peering)
    rr_client: bool = False
    passive: bool = False
    password: str | None = None
    next_hop: str = "Auto"  # Auto | Self | Keep | KeepEBGP (keepOriginalNextHop)
    restart_time: int | None = None
    keepalive_time: int | None = None
    ttl_security: int | None = None
    allow_local_as: int | None = None
    source: str = "UseNodeIP"  # or "None"
    filters: tuple[str, ...] = ()  # BGPFilter names, in order
    reachable_by: str | None = None  # a gateway: a static /32 (/128) route to the peer

    @property
    def ibgp(self) -> bool:
        return self.asn == self.local_asn


def spec_of(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("spec") or {}


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def parse_asn(value: Any) -> int:
    """A plain ("64512") or dotted ("1.10" = 1*65536+10) AS number."""
    text = str(value)
    if "." in text:
        hi, lo = text.split(".", 1)
        return int(hi) * 65536 + int(lo)
    return int(text)


def duration_seconds(value: Any) -> int | None:
    """Seconds of a Go duration ("120s", "2m", "1h30m"); None if unset or unparsable."""
    if value in (None, ""):
        return None
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(h|ms|m|s)", str(value)):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return int(total) or None


def parse_iface(addr: str | None) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    if not addr:
        return None
    try:
        return ipaddress.ip_interface(addr)
    except ValueError:
        return None


def node_iface(node: dict[str, Any], version: int):
    return parse_iface(spec_of(node).get("bgp", {}).get(f"ipv{version}Address"))


def node_asn(node: dict[str, Any], default_asn: int) -> int:
    asn = spec_of(node).get("bgp", {}).get("asNumber")
    return parse_asn(asn) if asn not in (None, "") else default_asn


def cluster_id(node: dict[str, Any]) -> str | None:
    return spec_of(node).get("bgp", {}).get("routeReflectorClusterID") or None


def selects(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return False
    from calico.selector import parse

    return parse(selector).evaluate(labels)


BIRD_SAFE = re.compile(r'[^"\\\n\r]{1,80}')


def protocol_name(prefix: str, ip: Any) -> str:
    return f"{prefix}_{re.sub(r'[^0-9A-Za-z]', '_', str(ip))}"


def hash_router_id(name: str) -> str:
    """Calico's `hashToIPv4`: the first four bytes of SHA-256 of the node name, the first one
    moved out of the multicast range."""
    first, *rest = hashlib.sha256(name.encode()).digest()[:4]
    return ".".join(str(b) for b in [first - 32 if first > 223 else first, *rest])


def router_id(inp: BGPInputs, me: dict[str, Any]) -> str:
    """CALICO_ROUTER_ID (an IPv4 address, or `hash`), else the node's IPv4 address, else (an
    IPv6-only node) the hash of its name."""
    setting = (inp.router_id or "").strip()
    if setting == "hash":
        return hash_router_id(inp.hostname)
    if setting:
        try:
            return str(ipaddress.IPv4Address(setting))
        except ValueError:
            raise RenderError(f'CALICO_ROUTER_ID "{setting}" is neither an IPv4 address nor '
                              '"hash"') from None
    bgp = spec_of(me).get("bgp", {})
    if bgp.get("routerID"):
        return str(bgp["routerID"])
    v4 = node_iface(me, 4)
    return str(v4.ip) if v4 is not None else hash_router_id(inp.hostname)


def listen_port(inp: BGPInputs, node_name: str) -> int | None:
    """A node's BGP port: `listenPort` of BGPConfiguration `node.<name>`, else `default`'s."""
    for cfg in (f"node.{node_name}", "default"):
        port = spec_of(inp.configs.get(cfg)).get("listenPort")
        if port:
            return int(port)
    return None


def node_setting(inp: BGPInputs, field_name: str) -> Any:
    """A BGPConfiguration field, from `node.<this node>` if it sets it, else `default`."""
    node = spec_of(inp.configs.get(f"node.{inp.hostname}"))
    if node.get(field_name) not in (None, "", []):
        return node[field_name]
    return spec_of(inp.configs.get("default")).get(field_name)


def peer_ip_port(text: str) -> tuple[Any, int | None]:
    """`10.0.0.1`, `10.0.0.1:1790`, `fd00::1`, `[fd00::1]:1790`."""
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::(\d+))?", text)
    if m:
        return ipaddress.ip_address(m.group(1)), int(m.group(2)) if m.group(2) else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return ipaddress.ip_address(host), int(port)
    return ipaddress.ip_address(text), None


def applies(spec: dict[str, Any], node_name: str, labels: dict[str, str]) -> bool:
    """Whether a BGPPeer's `node` / `nodeSelector` (neither: every node) covers a node."""
    if spec.get("node"):
        return spec["node"] == node_name
    if spec.get("nodeSelector"):
        return selects(spec["nodeSelector"], labels)
    return True


def peer_extra(inp: BGPInputs, name: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """A BGPPeer's session options; None (and a note in `inp.skipped`) if its password
    cannot be written into BIRD's configuration."""
    password = inp.passwords.get(name)
    if password is not None and not BIRD_SAFE.fullmatch(password):
        # BIRD strings cannot escape quotes: never peer without the intended password.
        why = f'BGPPeer "{name}": password has characters BIRD cannot take'
        if why not in inp.skipped:
            inp.skipped.append(why)
        return None
    # keepOriginalNextHop (deprecated) keeps the next hop towards eBGP peers only, as Calico.
    next_hop = spec.get("nextHopMode") or ("KeepEBGP" if spec.get("keepOriginalNextHop") else
                                           "Auto")
    return {
        "password": password,
        "next_hop": next_hop,
        "restart_time": duration_seconds(spec.get("maxRestartTime")),
        "keepalive_time": duration_seconds(spec.get("keepaliveTime")),
        "ttl_security": spec.get("ttlSecurity") or None,
        "allow_local_as": spec.get("numAllowedLocalASNumbers") or None,
        "source": spec.get("sourceAddress", "UseNodeIP"),
        "filters": tuple(spec.get("filters") or ()),
        "reachable_by": spec.get("reachableBy") or None,
    }


def local_asn(spec: dict[str, Any], node_as: int) -> int:
    """This node's AS on a BGPPeer's sessions: its `localASNumber`, else the node's."""
    value = spec.get("localASNumber")
    return parse_asn(value) if value not in (None, "") else node_as
