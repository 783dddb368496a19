"""Neutron floating IPs -> the `ipNATs` of the WorkloadEndpoint of the port they point at.

In: Neutron floating IP dicts (as the L3 plugin returns them: `id`, `floating_ip_address`,
`fixed_ip_address`, `port_id`), keyed by id. A floating IP is associated when it has a
`port_id` and a `fixed_ip_address`; it then becomes one `{internalIP: <fixed IP>, externalIP:
<floating IP>}` entry of that port's endpoint, which Felix on the instance's host turns into
DNAT/SNAT and a route that BIRD advertises (Felix programs OpenStack endpoints' ipNATs whatever
FelixConfiguration `floatingIPs` says, as Calico's does).

Who writes it: the endpoint syncer (`with_nats` on every endpoint document, from the resync's
snapshot of all floating IPs or an event handler's floating IPs of one port), and the Neutron
floating-IP callbacks (AFTER_CREATE / AFTER_UPDATE / AFTER_DELETE), which name the ports whose
endpoints must be rewritten: `ports_of_event` — both the old and the new port of a
re-association, the port of a disassociation or deletion. A port deleted with its floating IP
still associated loses its endpoint anyway (Neutron disassociates it in the same call).

A floating IP whose fixed address is not one of the port's fixed IPs (stale, or a race with a
port update) is left out and logged; Calico would reject the whole endpoint otherwise.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)


def _associated(fip: Mapping[str, Any]) -> bool:
    return bool(fip.get("port_id") and fip.get("fixed_ip_address")
                and fip.get("floating_ip_address"))


def ip_nats(port: Mapping[str, Any], floating_ips: Mapping[str, Mapping[str, Any]]
            ) -> list[dict[str, str]]:
    """The port's ipNATs, sorted by external address (stable, so a resync rewrites nothing)."""
    fixed = {str(ipaddress.ip_address(f["ip_address"])) for f in port.get("fixed_ips") or []
             if f.get("ip_address")}
    out = []
    for fip in floating_ips.values():
        if not _associated(fip) or fip["port_id"] != port.get("id"):
            continue
        try:
            internal = str(ipaddress.ip_address(fip["fixed_ip_address"]))
            external = str(ipaddress.ip_address(fip["floating_ip_address"]))
        except ValueError:
            log.error("floating IP %s: addresses %r -> %r are not IP addresses; left out",
                      fip.get("id"), fip.get("floating_ip_address"),
                      fip.get("fixed_ip_address"))
            continue
        if internal not in fixed:
            log.warning("floating IP %s (%s): fixed address %s is not one of port %s's; "
                        "left out", fip.get("id"), external, internal, port.get("id"))
            continue
        out.append({"internalIP": internal, "externalIP": external})
    return sorted(out, key=lambda n: (ipaddress.ip_address(n["externalIP"]).version,
                                      int(ipaddress.ip_address(n["externalIP"]))))


def with_nats(doc: dict[str, Any], port: Mapping[str, Any],
              floating_ips: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The endpoint document with the port's ipNATs set (none: the field is absent)."""
    nats = ip_nats(port, floating_ips)
    if nats:
        doc["spec"]["ipNATs"] = nats
    else:
        doc["spec"].pop("ipNATs", None)
    return doc


def of_ports(floating_ips: Iterable[Mapping[str, Any]], port_ids: Iterable[str]
             ) -> dict[str, Mapping[str, Any]]:
    """The floating IPs associated with any of these ports, by id."""
    wanted = set(port_ids)
    return {f["id"]: f for f in floating_ips if _associated(f) and f["port_id"] in wanted}


def ports_of_event(states: Iterable[Any]) -> set[str]:
    """The ports named by a floating-IP event's states (old and new floating IP dicts)."""
    out = set()
    for state in states or ():
        if isinstance(state, Mapping):
            fip = state.get("floatingip", state)  # an update's new state may be the request
            if isinstance(fip, Mapping) and fip.get("port_id"):
                out.add(fip["port_id"])
    return out
