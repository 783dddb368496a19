"""Neutron subnet -> the DHCP agent's subnet record: a pure mapping.

Calico's DHCP agent does not talk to Neutron: it learns subnets from the datastore. For each
subnet with DHCP enabled the driver writes, at `/calico/dhcp/v2/no-region/subnet/<id>`, the
JSON networking-calico writes:

    {"network_id": ..., "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
     "host_routes": [{"destination": ..., "nexthop": ...}], "dns_servers": ["8.8.8.8"]}

(`dns_servers` only when the subnet has some). Subnets with DHCP disabled have no record.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any


def subnet_record(subnet: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "network_id": subnet["network_id"],
        "cidr": str(ipaddress.ip_network(subnet["cidr"], strict=False)),
        "host_routes": [{"destination": r["destination"], "nexthop": r["nexthop"]}
                        for r in subnet.get("host_routes") or []],
        "gateway_ip": subnet.get("gateway_ip"),
    }
    if subnet.get("dns_nameservers"):
        data["dns_servers"] = list(subnet["dns_nameservers"])
    return data


def subnet_value(subnet: Mapping[str, Any]) -> str:
    """The stored text (canonical JSON, so equal records compare equal as text)."""
    return json.dumps(subnet_record(subnet), sort_keys=True, separators=(",", ":"))


def wants_record(subnet: Mapping[str, Any]) -> bool:
    return bool(subnet.get("enable_dhcp"))
