"""CIDR text arithmetic for the calc graph and the nft renderer, on plain integers.

Felix handles tens of thousands of endpoint addresses at start-up; building an
`ipaddress.IPv4Network` for each (to normalise, print or collapse it) was a measurable share
of the cold start. These functions give exactly the results of the `ipaddress` expressions
they replace, computing them on ints for the common case — a well-formed IPv4 address or
CIDR in its canonical spelling — and handing anything else (IPv6, leading zeros, non-strings,
invalid text) to `ipaddress` itself, so errors and edge cases stay the standard library's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_V4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?:/(3[0-2]|[12][0-9]|[0-9]))?")
_ALL_V4 = (1 << 32) - 1


def _parse_v4(text: object) -> tuple[int, int] | None:
    """(network int with host bits cleared, prefix length), or None to take the slow path."""
    if type(text) is not str:
        return None
    match = _V4.fullmatch(text)
    if match is None:
        return None
    a, b, c, d, plen = match.groups()
    prefix = 32 if plen is None else int(plen)
    addr = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    return addr & (_ALL_V4 ^ (_ALL_V4 >> prefix)), prefix


def _v4_text(addr: int) -> str:
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def normalise_net(net: object) -> str:
    """`str(ipaddress.ip_network(net, strict=False))`."""
    parsed = _parse_v4(net)
    if parsed is None:
        return str(ipaddress.ip_network(net, strict=False))  # type: ignore[arg-type]
    return f"{_v4_text(parsed[0])}/{parsed[1]}"


def canonical_net(net: str) -> str:
    """The text nft prints for a net: a host address bare, a prefix as `addr/len`."""
    parsed = _parse_v4(net)
    if parsed is None:
        n = ipaddress.ip_network(net, strict=False)
        return str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
    addr, prefix = parsed
    return _v4_text(addr) if prefix == 32 else f"{_v4_text(addr)}/{prefix}"


def _parse_all_v4(nets: list[str]) -> list[tuple[int, int]] | None:
    """(network, prefix length) of each net, or None if any needs the slow path."""
    out = []
    for net in nets:
        parsed = _parse_v4(net)
        if parsed is None:
            return None
        out.append(parsed)
    return out


def collapse_nets(nets: Iterable[str]) -> list[str]:
    """Non-overlapping canonical elements for an interval set (one family): the canonical
    texts of `ipaddress.collapse_addresses` of the nets, in the same (ascending) order."""
    nets = list(nets)
    parsed = _parse_all_v4(nets)
    if parsed is None:
        return _collapse_slow(nets)
    ranges = sorted((addr, addr + (1 << (32 - prefix)) - 1) for addr, prefix in parsed)
    out: list[str] = []
    start = end = -1
    for lo, hi in ranges:
        if lo <= end + 1 and start >= 0:
            end = max(end, hi)
            continue
        if start >= 0:
            _cover(start, end, out)
        start, end = lo, hi
    if start >= 0:
        _cover(start, end, out)
    return out


def outermost_nets(nets: Iterable[str]) -> list[str]:
    """Non-overlapping canonical elements for an interval set (one family) that keep each
    member's own spelling: the nets not contained in another, ascending. Unlike
    `collapse_nets`, neighbours are not merged, so adding or removing a host address that no
    prefix covers changes exactly that one element — the form an element delta produces — and a
    set built whole equals the same set built by deltas."""
    nets = list(nets)
    ranges = _parse_all_v4(nets)
    if ranges is None:
        return _outermost_slow(nets)
    ranges.sort()  # at one address the widest net comes first
    out: list[str] = []
    end = -1
    for addr, prefix in ranges:
        if addr <= end:
            continue  # inside (or equal to) the previous outermost net
        end = addr + (1 << (32 - prefix)) - 1
        out.append(_v4_text(addr) if prefix == 32 else f"{_v4_text(addr)}/{prefix}")
    return out


def _outermost_slow(nets: list[str]) -> list[str]:
    parsed = sorted({ipaddress.ip_network(n, strict=False) for n in nets},
                    key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    out: list[str] = []
    last = None
    for net in parsed:
        if last is not None and net.version == last.version and net.subnet_of(last):
            continue
        last = net
        out.append(canonical_net(str(net)))
    return out


def _cover(start: int, end: int, out: list[str]) -> None:
    """Append the fewest aligned CIDRs covering [start, end] (IPv4), ascending."""
    while start <= end:
        size = start & -start if start else 1 << 32
        while size > end - start + 1:
            size >>= 1
        prefix = 33 - size.bit_length()
        out.append(_v4_text(start) if prefix == 32 else f"{_v4_text(start)}/{prefix}")
        start += size


def _collapse_slow(nets: list[str]) -> list[str]:
    parsed = [ipaddress.ip_network(n, strict=False) for n in nets]
    return [canonical_net(str(n)) for n in ipaddress.collapse_addresses(parsed)]
