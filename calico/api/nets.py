"""Addresses and networks in resources: parsing with Calico's rules and clear reasons.

Calico accepts a bare address where a CIDR is expected (`10.0.0.1` means `10.0.0.1/32`) and
stores CIDRs in their canonical, masked form (`10.0.0.1/24` is kept as `10.0.0.0/24` for pools;
rule nets keep what was written but must parse).
"""

from __future__ import annotations

import ipaddress
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(value: Any) -> IPAddress:
    if not isinstance(value, str):
        raise ValueError("is not a valid IP address")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not a valid IP address") from None


def parse_cidr(value: Any, *, strict: bool = False) -> IPNetwork:
    """A CIDR or a bare address (as a host network). With `strict`, host bits must be zero."""
    if not isinstance(value, str) or not value:
        raise ValueError("is not a valid CIDR")
    try:
        return ipaddress.ip_network(value, strict=strict)
    except ValueError:
        if strict:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                pass
            else:
                raise ValueError("is not a valid CIDR: host bits are set") from None
        raise ValueError("is not a valid CIDR") from None


def check_cidr(value: Any) -> str:
    """Validator for a CIDR field: keeps the text as given once it parses."""
    parse_cidr(value)
    return value


def check_ip(value: Any) -> str:
    parse_ip(value)
    return value


def ip_version(value: str) -> int:
    """4 or 6 for an address or CIDR string."""
    return parse_cidr(value).version
