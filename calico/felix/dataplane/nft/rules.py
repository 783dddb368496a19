"""Pure rendering of `messages.Rule` into nft rule texts (no I/O).

One Calico rule becomes one or more nft rules:
- AND-ed parts are conjunctions in one nft rule; negated lists become one `!=` match per
  element (`ip saddr != A ip saddr != B`), which is "not any of them";
- OR-ed lists (nets, ports together with named-port sets) expand into one nft rule per value,
  the cross product of the lists; when that product exceeds `MAX_EXPANSION`, the longest
  literal list moves into a content-addressed named set (`l4_<hash>`, `lp_<hash>`), which the
  caller creates. Inline anonymous sets (`{ 80, 443 }`) are never generated: DESIGN.md
  measured them at 2–10× the transaction cost.
- A rule for both IP versions that matches addresses or ICMP renders once per family
  (`ip ...` / `ip6 ...`, referencing `s4-` / `s6-` sets); otherwise it renders once. A family
  whose selector sets are empty is left out (it could not match).
- `icmp type T code C` negated is `@th,0,16 != T*256+C` (type and code are the first two
  bytes of the ICMP header): NOT(type AND code) in one expression.

Cost per packet: the kernel evaluates a rule's matches in the order written and stops at the
first that fails, so each rule puts the cheap tests first: protocol, ICMP and ports (a load
and a compare), then literal addresses, then set lookups (an interval-set lookup costs far more
than a compare; `benchmarks/datapath.py` measured 64-byte UDP through 100 TCP rules at 0.21 of
conntrack-only with the lookup first, 0.54 with it last). A chain of two or more rules that all
need one protocol starts with `meta l4proto != P return` (a packet of another protocol can match
none of them), so such a packet costs one rule per policy instead of one per rule. The text is
written so that nft's listing of it parses back to the same bytecode: nft folds
`meta l4proto 6 ... th dport 80` into `tcp dport 80` where the port is, so a lookup written
before the port would come back before the protocol test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from calico.felix.cidrs import canonical_net, collapse_nets
from calico.felix.dataplane.nft.names import ip_set_name, literal_set_name
from calico.felix.dataplane.nft.table import SetSpec
from calico.felix.messages import Action, IPSetType, PortRange, Rule

MAX_EXPANSION = 16
PORT_PROTOCOLS = (6, 17, 132)
ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
NET_SPEC = {f: SetSpec((ADDR_TYPE[f],), ("interval",)) for f in (4, 6)}
PORT_SPEC = SetSpec(("inet_service",), ("interval",))
_L3 = {4: "ip", 6: "ip6"}
_ICMP = {4: "icmp", 6: "icmpv6"}


@dataclass(frozen=True, slots=True)
class Marks:
    """Packet-mark bits Felix uses (inside Calico's default mark mask 0xffff0000), and the
    nft statements that set and clear them and the matches that test them."""

    accept: int = 0x10000
    pass_: int = 0x20000
    scratch: int = 0x40000  # anti-spoofing "source seen" bit
    no_cache: int = 0x80000  # a Log rule was hit: the verdict is not cached (verdict_cache.py)

    def clear(self, bits: int) -> str:
        return f"meta mark set meta mark & {0xffffffff & ~bits:#010x}"

    def set(self, bits: int) -> str:
        return f"meta mark set meta mark | {bits:#010x}"

    def is_set(self, bits: int) -> str:
        return f"meta mark & {bits:#010x} == {bits:#010x}"

    def is_clear(self, bits: int) -> str:
        return f"meta mark & {bits:#010x} == 0"


@dataclass(slots=True)
class Rendered:
    """nft rule texts plus the literal sets they reference (name -> spec, elements)."""

    rules: list[str] = field(default_factory=list)
    sets: dict[str, tuple[SetSpec, frozenset[str]]] = field(default_factory=dict)


def net_family(net: str) -> int:
    return 6 if ":" in net else 4


def _port(p: PortRange) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}-{p[1]}"


def _merge_ports(ports) -> list[str]:
    merged: list[list[int]] = []
    for lo, hi in sorted(ports):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [_port((lo, hi)) for lo, hi in merged]


def action_verdict(rule: Rule, marks: Marks, untracked: bool = False,
                   log_prefix: str = "calico-packet") -> str:
    if rule.action is Action.ALLOW:
        return f"{'notrack ' if untracked else ''}{marks.set(marks.accept)} return"
    if rule.action is Action.DENY:
        return "drop"
    if rule.action is Action.PASS:
        return f"{marks.set(marks.pass_)} return"
    prefix = "".join(c for c in (rule.log_prefix or log_prefix) if c not in '"\\\n')[:120]
    return f'log prefix "{prefix}: " {marks.set(marks.no_cache)}'


def _never_empty(set_id: str, fam: int) -> bool:
    return False


def render_rule(rule: Rule, verdict: str, empty: Callable[[str, int], bool] = _never_empty
                ) -> Rendered:
    """`empty(set_id, family)`: whether an IP set has no members of that family. A family
    whose rule would need an address in an empty set (a selector matching no endpoint with
    such an address) cannot match anything, so it is not rendered: in an IPv4-only cluster
    that halves the rules of every selector-based policy (the caller re-renders when a set
    gains its first member of a family)."""
    out = Rendered()
    fams: list[int | None] = [rule.ip_version] if rule.ip_version else [4, 6]
    if rule.protocol == 1:
        fams = [f for f in fams if f == 4]
    elif rule.protocol == 58:
        fams = [f for f in fams if f == 6]
    specific = bool(rule.ip_version or rule.protocol in (1, 58) or rule.src_nets
                    or rule.dst_nets or rule.not_src_nets or rule.not_dst_nets
                    or rule.ip_set_ids())
    if not specific:
        fams = [None]
    for fam in fams:
        if fam and any(empty(i, fam) for i in (*rule.src_ip_set_ids, *rule.dst_ip_set_ids)):
            continue
        _render_family(rule, fam, verdict, out)
    return out


class Direction(Enum):
    """Which end of the packet a match is about: its nft address and port keywords."""

    SRC = ("saddr", "sport")
    DST = ("daddr", "dport")

    def __init__(self, addr: str, port: str) -> None:
        self.addr, self.port = addr, port


SRC, DST = Direction.SRC, Direction.DST


@dataclass(slots=True)
class _OrGroup:
    """One OR-ed match: a packet matches if any alternative does. Each of `values` is a
    literal matched by `matcher` (a format string); `named` are alternatives that are sets
    already (named ports). `fold()` moves the literals into one named set of `spec`."""

    values: list[str]
    matcher: str
    spec: SetSpec
    named: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        """The factor this group multiplies a rule's expansion by."""
        return max(1, len(self.values) + len(self.named))

    def alternatives(self) -> list[str]:
        return [self.matcher.format(v) for v in self.values] + self.named

    def fold(self, fam: int | None, out: Rendered) -> None:
        if self.spec is PORT_SPEC:
            elems = _merge_ports(_range(v) for v in self.values)
            name = literal_set_name(0, tuple(elems)).replace("l0_", "lp_", 1)
        else:
            elems = collapse_nets(self.values)
            name = literal_set_name(fam or 4, tuple(elems))
        out.sets[name] = (self.spec, frozenset(elems))
        self.values = [f"@{name}"]


def _render_family(rule: Rule, fam: int | None, verdict: str, out: Rendered) -> None:
    """The rule's nft rules for one family (None: family-independent): the protocols times
    the cross product of the OR groups, each with the conjunctions and negated ports."""
    src = [canonical_net(n) for n in rule.src_nets if net_family(n) == fam]
    dst = [canonical_net(n) for n in rule.dst_nets if net_family(n) == fam]
    if (rule.src_nets and not src) or (rule.dst_nets and not dst):
        return  # this family cannot match
    l3 = _L3.get(fam or 0, "")
    protos = _protocols(rule)
    ands = _conjunctions(rule, fam, l3)
    tail = [f"th {d.port} != {_port(r)}"
            for d, ports in ((SRC, rule.not_src_ports), (DST, rule.not_dst_ports))
            for r in ports]
    groups = _or_groups(rule, fam, l3, src, dst)
    _fold_largest(groups, len(protos), fam, out)
    alternatives = [g.alternatives() for g in groups]
    for proto in protos:
        head = ([f"meta l4proto {proto}"] if proto is not None else []) + ands
        for combo in itertools.product(*alternatives):
            parts = [*head, *combo, *tail]
            parts.sort(key=_cost)
            if fam and not any(x.startswith((f"{l3} ", _ICMP[fam])) for x in parts):
                parts.insert(0, f"meta nfproto ipv{fam}")
            out.rules.append(" ".join([*parts, verdict]))


def _cost(match: str) -> int:
    """Sort key putting a rule's cheap matches first (the sort is stable): protocol, ICMP and
    port tests 0, literal addresses 1, set lookups 2."""
    if " @" in match or match.startswith("@") and not match.startswith("@th,"):
        return 2
    return 1 if match.startswith(("ip ", "ip6 ")) else 0


def _protocols(rule: Rule) -> list[int | None]:
    """The protocols to expand over: the rule's, or (ports without one) TCP, UDP and SCTP."""
    if rule.protocol is None and (rule.src_ports or rule.dst_ports or rule.not_src_ports
                                  or rule.not_dst_ports):
        return list(PORT_PROTOCOLS)
    return [rule.protocol]


def _conjunctions(rule: Rule, fam: int | None, l3: str) -> list[str]:
    """The AND-ed matches: protocol negation, ICMP, negated nets, IP sets (in or not in),
    negated named ports."""
    ands: list[str] = []
    if rule.not_protocol is not None:
        ands.append(f"meta l4proto != {rule.not_protocol}")
    if fam and rule.protocol in (1, 58):
        ands += _icmp(rule, _ICMP[fam])
    for d, nets in ((SRC, rule.not_src_nets), (DST, rule.not_dst_nets)):
        ands += [f"{l3} {d.addr} != {canonical_net(n)}" for n in nets if net_family(n) == fam]
    for d, ids, op in ((SRC, rule.src_ip_set_ids, ""), (SRC, rule.not_src_ip_set_ids, "!= "),
                       (DST, rule.dst_ip_set_ids, ""), (DST, rule.not_dst_ip_set_ids, "!= ")):
        ands += [f"{l3} {d.addr} {op}@{ip_set_name(i, fam, IPSetType.NET)}" for i in ids]
    for d, ids in ((SRC, rule.not_src_named_port_ip_set_ids),
                   (DST, rule.not_dst_named_port_ip_set_ids)):
        ands += [f"{l3} {d.addr} . meta l4proto . th {d.port} != "
                 f"@{ip_set_name(i, fam, IPSetType.NET_PORT)}" for i in ids]
    return ands


def _icmp(rule: Rule, icmp: str) -> list[str]:
    out: list[str] = []
    if rule.icmp_type is not None:
        out.append(f"{icmp} type {rule.icmp_type}")
        if rule.icmp_code is not None:
            out.append(f"{icmp} code {rule.icmp_code}")
    if rule.not_icmp_type is not None:
        if rule.not_icmp_code is not None:
            out.append(f"@th,0,16 != {rule.not_icmp_type * 256 + rule.not_icmp_code}")
        else:
            out.append(f"{icmp} type != {rule.not_icmp_type}")
    return out


def _or_groups(rule: Rule, fam: int | None, l3: str, src: list[str], dst: list[str]
               ) -> list[_OrGroup]:
    """Source nets, destination nets, source ports, destination ports: those the rule has.
    A port group's alternatives are its port ranges and its named-port sets."""
    groups = [_OrGroup(nets, f"{l3} {d.addr} {{}}", NET_SPEC.get(fam or 4))
              for d, nets in ((SRC, src), (DST, dst)) if nets]
    for d, ports, named in ((SRC, rule.src_ports, rule.src_named_port_ip_set_ids),
                            (DST, rule.dst_ports, rule.dst_named_port_ip_set_ids)):
        if ports or named:
            sets = [f"{l3} {d.addr} . meta l4proto . th {d.port} "
                    f"@{ip_set_name(i, fam, IPSetType.NET_PORT)}" for i in named]
            groups.append(_OrGroup([_port(r) for r in ports], f"th {d.port} {{}}", PORT_SPEC,
                                   sets))
    return groups


def _fold_largest(groups: list[_OrGroup], protos: int, fam: int | None, out: Rendered) -> None:
    """While the expansion exceeds MAX_EXPANSION rules, fold the longest literal list (the
    first of equals) into a named set."""
    while math.prod((g.width for g in groups), start=protos) > MAX_EXPANSION:
        g = max((g for g in groups if len(g.values) > 1), key=lambda g: len(g.values),
                default=None)
        if g is None:
            break
        g.fold(fam, out)


def _range(v: str) -> tuple[int, int]:
    lo, _, hi = v.partition("-")
    return int(lo), int(hi or lo)


def render_rules(rules, verdict_for, empty: Callable[[str, int], bool] = _never_empty
                 ) -> Rendered:
    """Render a rule list in order; `verdict_for(rule)` gives each rule's verdict text. When
    every rule needs the same protocol and there are two rules or more, a guard returning
    packets of other protocols goes first."""
    out = Rendered()
    for rule in rules:
        r = render_rule(rule, verdict_for(rule), empty)
        out.rules += r.rules
        out.sets.update(r.sets)
    protocols = {rule.protocol for rule in rules}
    if len(out.rules) > 1 and len(protocols) == 1 and None not in protocols:
        out.rules.insert(0, f"meta l4proto != {protocols.pop()} return")
    return out
