"""Which of an endpoint's ipNATs (floating IPs) this Felix programs, as Calico's Felix decides.

A WorkloadEndpoint's `ipNATs` map an external address (a floating IP) to one of the endpoint's
own addresses. Felix programs them only when FelixConfiguration `floatingIPs` is `Enabled`
(default `Disabled`), or always for endpoints whose orchestrator is `openstack`: Calico's
`floatingIPs` governs NAT mappings written by other orchestrators, and OpenStack floating IPs
are programmed regardless of it. Two dataplane managers ask the same question: the nftables
DNAT manager (DNAT/SNAT maps) and the route manager (a route for each external address on the
endpoint's interface, which BIRD learns and advertises like any workload route inside a pool).

Where two endpoints claim one external address, the numerically lower internal address wins
(Calico: the alphabetically earlier one; both are deterministic, so every host decides the
same); where one internal address has several external ones, the hairpin SNAT uses the lowest
external address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from calico.felix import messages as m

OPENSTACK = "openstack"


def floating_ips_enabled(config: Mapping[str, str]) -> bool:
    """FelixConfiguration `floatingIPs` (Felix name FloatingIPs) from a ConfigUpdate's mapping."""
    for key, value in config.items():
        if key.lower() == "floatingips":
            return str(value).strip().lower() == "enabled"
    return False


def active_nats(ep: m.WorkloadEndpointUpdate, enabled: bool) -> tuple[tuple[str, str], ...]:
    """The endpoint's (internal, external) pairs, both IP versions, that Felix programs."""
    if not enabled and ep.orchestrator != OPENSTACK:
        return ()
    return (*ep.ipv4_nat, *ep.ipv6_nat)


def nat_maps(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """(external -> internal for DNAT, internal -> external for the hairpin SNAT), with
    conflicts settled deterministically (see the module doc)."""
    dnat: dict[str, str] = {}
    for internal, external in pairs:
        old = dnat.get(external)
        if old is None or _key(internal) < _key(old):
            dnat[external] = internal
    snat: dict[str, str] = {}
    for external, internal in dnat.items():
        old = snat.get(internal)
        if old is None or _key(external) < _key(old):
            snat[internal] = external
    return dnat, snat


def _key(addr: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(addr)
    return ip.version, int(ip)
