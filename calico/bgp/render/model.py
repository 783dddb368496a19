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


def router_id(me: dict[str, Any], hostname: str) -> str:
    bgp = spec_of(me).get("bgp", {})
    if bgp.get("routerID"):
        return str(bgp["routerID"])
    v4 = node_iface(me, 4)
    if v4 is not None:
        return str(v4.ip)
    # An IPv6-only node without routerID: a stable id from its name.
    digest = int.from_bytes(hashlib.sha256(hostname.encode()).digest()[:4], "big")
    return str(ipaddress.IPv4Address(digest | 0x01000000))


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
    return {
        "password": password,
        "keep_next_hop": bool(spec.get("keepOriginalNextHop")),
        "restart_time": duration_seconds(spec.get("maxRestartTime")),
        "ttl_security": spec.get("ttlSecurity") or None,
        "allow_local_as": spec.get("numAllowedLocalASNumbers") or None,
        "source": spec.get("sourceAddress", "UseNodeIP"),
    }
