"""The pure arithmetic and parsing behind `scale_lab.py`, kept apart so a unit test covers it.

- `percentile(values, q)`: the nearest-rank percentile (q in 0..100) of a non-empty list: the
  smallest value with at least q% of the values at or below it, so p99 of 49 samples is the
  largest one, never an interpolation between samples.
- `power_law_exponent(xs, ys)`: b of the least-squares fit of log y = a + b log x over the
  points with x, y > 0 (at least two distinct x); None when it cannot be fitted.
- `parse_route_count(text)`: the route counts of `birdc show route count`, per table.
- `parse_prometheus(text)`: Prometheus text exposition (etcd's /metrics) into
  {(name, labels): value}, labels a sorted tuple of (key, value) pairs.
- `metric_sum(samples, name, **labels)`: the sum of the samples of `name` whose labels
  include the given ones.
- `echo_request(ident, seq)` / `is_echo_reply(packet, ident)`: an ICMP echo request, and
  whether a packet read from a raw IPv4 ICMP socket (IP header included) is a reply to `ident`.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence

_ROUTE_COUNT = re.compile(
    r"(\d+) of (\d+) routes for (\d+) networks in table (\S+)")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q} is not between 0 and 100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def power_law_exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    points = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True)
              if x > 0 and y is not None and y > 0]
    if len({p[0] for p in points}) < 2:
        return None
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    sxx = sum((p[0] - mx) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    return sxy / sxx


def parse_route_count(text: str) -> dict[str, int]:
    """{table: routes} from `birdc show route count` (BIRD 2: "3 of 3 routes for 3 networks
    in table master4"); the first number, the routes in the table."""
    return {m.group(4): int(m.group(1)) for m in _ROUTE_COUNT.finditer(text)}


def parse_prometheus(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"metrics line not understood: {line!r}")
        labels = tuple(sorted(_LABEL.findall(m.group(3) or "")))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def metric_sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
               **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = b"calico-scale-lab"
    header = struct.pack("!BBHHH", 8, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    return struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident & 0xFFFF,
                       seq & 0xFFFF) + payload


def is_echo_reply(packet: bytes, ident: int) -> bool:
    if len(packet) < 20:
        return False
    ihl = (packet[0] & 0x0F) * 4
    icmp = packet[ihl:ihl + 8]
    if len(icmp) < 8:
        return False
    kind, _code, _sum, got = struct.unpack("!BBHH", icmp[:6])
    return kind == 0 and got == ident & 0xFFFF
