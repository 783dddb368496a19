"""Neutron subnet (and its network) -> the DHCP agent's subnet record: a pure mapping.

Calico's DHCP agent does not talk to Neutron: it learns subnets from the datastore. For each
subnet with DHCP enabled the driver writes, at `/calico/dhcp/v2/no-region/subnet/<id>`, the
JSON networking-calico writes:

    {"network_id": ..., "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
     "host_routes": [{"destination": ..., "nexthop": ...}], "dns_servers": ["8.8.8.8"]}

(`dns_servers` only when the subnet has some), plus what networking-calico leaves out and
the agent needs to serve the network in full, each only when known:

    "mtu": 1450                         the network's MTU (DHCP option 26, the RA's MTU)
    "dns_domain": "example.org."        the network's dns_domain (Neutron's `dns` extension)
    "ipv6_address_mode": "slaac"        IPv6 subnets: slaac | dhcpv6-stateful |
    "ipv6_ra_mode": "slaac"                           dhcpv6-stateless

networking-calico's agent ignores keys it does not know, so the records stay readable by it.
Subnets with DHCP disabled have no record.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


def subnet_record(subnet: Mapping[str, Any],
                  network: Mapping[str, Any] | None = None) -> dict[str, Any]:
    cidr = ipaddress.ip_network(subnet["cidr"], strict=False)
    data: dict[str, Any] = {
        "network_id": subnet["network_id"],
        "cidr": str(cidr),
        "host_routes": [{"destination": r["destination"], "nexthop": r["nexthop"]}
                        for r in subnet.get("host_routes") or []],
        "gateway_ip": subnet.get("gateway_ip"),
    }
    if subnet.get("dns_nameservers"):
        data["dns_servers"] = list(subnet["dns_nameservers"])
    if cidr.version == 6:
        for key in ("ipv6_address_mode", "ipv6_ra_mode"):
            mode = subnet.get(key)
            if mode:
                if mode not in IPV6_MODES:
                    raise ValueError(f"{key} {mode!r} is not one of {', '.join(IPV6_MODES)}")
                data[key] = mode
    if network:
        if int(network.get("mtu") or 0) > 0:
            data["mtu"] = int(network["mtu"])
        if network.get("dns_domain"):
            data["dns_domain"] = str(network["dns_domain"])
    return data


def subnet_value(subnet: Mapping[str, Any], network: Mapping[str, Any] | None = None) -> str:
    """The stored text (canonical JSON, so equal records compare equal as text)."""
    return json.dumps(subnet_record(subnet, network), sort_keys=True, separators=(",", ":"))


def wants_record(subnet: Mapping[str, Any]) -> bool:
    return bool(subnet.get("enable_dhcp"))
