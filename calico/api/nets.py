"""Addresses and networks in resources: parsing with Calico's rules and clear reasons.

Calico accepts a bare address where a CIDR is expected (`10.0.0.1` means `10.0.0.1/32`) and
stores CIDRs in their canonical, masked form (`10.0.0.1/24` is kept as `10.0.0.0/24` for pools;
rule nets keep what was written but must parse).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .base import FieldError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
# An IPv4 address in the spelling `ipaddress` accepts (no leading zeros), bare or /32.
V4_HOST = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}(?:/32)?")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# An IPv4 address or CIDR (host bits allowed) in the one spelling everyone writes: a regular
# expression accepts it about ten times faster than `ipaddress` (a large GlobalNetworkSet
# holds hundreds of thousands); anything else goes to `ipaddress`.
_V4_CIDR = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}(?:/(?:3[0-2]|[12][0-9]|[0-9]))?")


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
    if not (isinstance(value, str) and _V4_CIDR.fullmatch(value)):
        parse_cidr(value)
    return value


def check_cidrs(values: Any) -> list[str] | None:
    """Validator for a list of CIDRs (host bits allowed), naming the index of a bad one.
    One call for the whole list: no per-item validator call."""
    if values is None:
        return None
    if not isinstance(values, list):
        raise ValueError("is not a list")
    match = _V4_CIDR.fullmatch
    for i, value in enumerate(values):
        if not (isinstance(value, str) and match(value)):
            try:
                parse_cidr(value)
            except ValueError as err:
                raise FieldError(str(err), field=(i,), value=value) from None
    return values


def check_ip(value: Any) -> str:
    parse_ip(value)
    return value


def ip_version(value: str) -> int:
    """4 or 6 for an address or CIDR string."""
    return parse_cidr(value).version


# ---- values the infrastructure kinds share: AS numbers, peer addresses, Go durations ------

AS_NUMBER_MAX = 2**32 - 1


def parse_as_number(value: Any) -> int:
    """A BGP AS number as Calico's numorstring.ASNumber reads it: an integer, a decimal string,
    or the dotted (asdot) form "<high>.<low>" with 16-bit halves ("1.10" is 65546).
    Zero is rejected: Calico treats it as "not set"."""
    if isinstance(value, bool):
        raise ValueError("is not a valid AS number")
    if isinstance(value, str):
        text = value.strip()
        high, dot, low = text.partition(".")
        if dot:
            if not (high.isdigit() and low.isdigit()) or int(high) > 65535 or int(low) > 65535:
                raise ValueError("is not a valid AS number: the dotted form is <0-65535>.<0-65535>")
            value = int(high) << 16 | int(low)
        elif text.isdigit():
            value = int(text)
        else:
            raise ValueError("is not a valid AS number")
    if not isinstance(value, int):
        raise ValueError("is not a valid AS number")
    if not 0 < value <= AS_NUMBER_MAX:
        raise ValueError(f"is not a valid AS number (1-{AS_NUMBER_MAX}, or dotted 0.1-65535.65535)")
    return value


# Calico's pattern is `^(\d+).(\d+).(\d+).(\d+):(\d+)$` with "." unescaped, which backtracks
# catastrophically on a long run of digits (a junk peerIP hung a syncer thread in the fault
# tests). A match only matters when the host part then parses as an IP address, which needs
# real dots, so escaping them accepts and rejects exactly the same values, in linear time.
_IPV4_PORT = re.compile(r"^\d+\.\d+\.\d+\.\d+:\d+$")
_IPV6_PORT = re.compile(r"^\[([0-9a-fA-F:.]+)\]:(\d+)$")


def parse_ip_port(value: Any) -> tuple[IPAddress, int | None]:
    """A BGP peer address: `<IP>`, `<IPv4>:<port>` or `[<IPv6>]:<port>` (port 1-65535)."""
    reason = 'is not a valid peer address: "<IP>", "<IPv4>:<port>" or "[<IPv6>]:<port>"'
    if not isinstance(value, str) or not value:
        raise ValueError(reason)
    host, port = value, None
    if _IPV4_PORT.match(value) or _IPV6_PORT.match(value):
        host, _, port_text = value.rpartition(":")
        host = host.strip("[]")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError("has an invalid port (1-65535)")
    try:
        return ipaddress.ip_address(host), port
    except ValueError:
        raise ValueError(reason) from None


_DURATION_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6,
                   "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(value: Any) -> int:
    """A Go `time.ParseDuration` string ("90s", "5m30s", "1.5h", "300ms", "0") in nanoseconds.
    This is how Calico reads every metav1.Duration field."""
    reason = 'is not a valid duration (e.g. "90s", "5m30s", "1h", "300ms")'
    if not isinstance(value, str) or not value:
        raise ValueError(reason)
    text, sign = value, 1
    if text[0] in "+-":
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    if text == "0":
        return 0
    total, pos = 0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match or not (match.group(1) or match.group(2)):
            raise ValueError(reason)
        whole, frac, unit = match.group(1) or "0", match.group(2) or "", match.group(3)
        scale = _DURATION_UNITS[unit]
        total += int(whole) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
        pos = match.end()
    if not text or total > 2**63 - 1:
        raise ValueError(reason)
    return sign * total


def format_go_duration(nanos: int) -> str:
    """The canonical text Go's `Duration.String()` gives, which is how Calico stores a
    duration: 90s -> "1m30s", 1h -> "1h0m0s", 0.5s -> "500ms"."""
    if nanos == 0:
        return "0s"
    sign, u = ("-" if nanos < 0 else ""), abs(nanos)

    def frac(n: int, digits: int) -> str:
        whole, rest = divmod(n, 10**digits)
        return str(whole) + (("." + f"{rest:0{digits}d}".rstrip("0")) if rest else "")

    if u < 10**3:
        return f"{sign}{u}ns"
    if u < 10**6:
        return f"{sign}{frac(u, 3)}\u00b5s"
    if u < 10**9:
        return f"{sign}{frac(u, 6)}ms"
    secs, sub = divmod(u, 10**9)
    out = frac((secs % 60) * 10**9 + sub, 9) + "s"
    mins = secs // 60
    if mins:
        out = f"{mins % 60}m{out}"
        if mins // 60:
            out = f"{mins // 60}h{out}"
    return sign + out


def check_duration(value: Any) -> str:
    """Validator for a metav1.Duration field: stored in Go's canonical form."""
    return format_go_duration(parse_go_duration(value))
