"""Rule resolution: a policy's or profile's v3 rules → `messages.Rule`s plus the IP sets they use.

In: the `ingress`/`egress` rules (validated `calico.api.rules.Rule` models) of one policy or
profile and the namespace that scopes them.
Out: resolved rules (protocol numbers, port ranges, normalised nets, IP-set ids in place of
selectors and named ports) and the `IPSetSpec` of every IP set they reference.

Follows Calico's rule scanner (felix/calc/rule_scanner.go):
- a positive selector absorbs the negated one (`(sel) && !(notSel)`), so a rule has at most
  one positive and one negated selector set per side;
- named ports become NET_PORT sets of (positive selector or `all()`, port name, protocol);
  the protocol is TCP unless the rule says UDP or SCTP. Numeric and named ports of one list
  are alternatives (OR). When a side has named ports and no numeric ones, its plain selector
  set is left out: the named-port set is already filtered by it;
- IP families: a rule without `ipVersion` whose `nets` (or ICMP protocol) are all of one
  family is sent for that family only; one with nets of both families is split into a v4
  and a v6 rule, each with its own family's nets. A positive nets list with nothing left for
  a family drops the rule for that family (it could never match there).

IP-set ids are stable and derived from the selector's canonical form (which already holds the
namespace scoping): `s-` + a hash of the canonical selector, or `n-` + a hash of that, the
protocol and the port name for named ports: 32 characters of [a-z0-9-], so the nft dataplane
uses them verbatim after its own short prefix (well within nft's 63-character set names).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from calico.api.rules import EntityRule, ICMPFields, Rule
from calico.felix import messages as m
from calico.felix.cidrs import normalise_net
from calico.selector import Selector

from .selectors import ALL, entity_selectors

PROTOCOLS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}
NAMED_PORT_PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp"}
ACTIONS = {"Allow": m.Action.ALLOW, "Deny": m.Action.DENY, "Log": m.Action.LOG,
           "Pass": m.Action.PASS}


@dataclass(frozen=True, slots=True)
class IPSetSpec:
    """What one IP set holds: addresses of endpoints (and network-set CIDRs) matching
    `selector`, or, with `named_port`, `addr,proto:port` of their ports of that name."""

    id: str
    selector: Selector
    named_port: str = ""
    protocol: str = ""  # "tcp" | "udp" | "sctp" with named_port

    @property
    def type(self) -> m.IPSetType:
        return m.IPSetType.NET_PORT if self.named_port else m.IPSetType.NET


@functools.lru_cache(maxsize=1 << 16)
def _hash_id(prefix: str, text: str) -> str:
    digest = hashlib.sha224(f"{prefix}:{text}".encode()).digest()
    return prefix + "-" + base64.b32encode(digest).decode().lower()[:30]  # 150 bits


def selector_set(sel: Selector) -> IPSetSpec:
    return IPSetSpec(_hash_id("s", str(sel)), sel)


def named_port_set(sel: Selector, port: str, protocol: str) -> IPSetSpec:
    return IPSetSpec(_hash_id("n", f"{sel},{protocol},{port}"), sel, port, protocol)


def protocol_number(value: int | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return PROTOCOLS.get(value, PROTOCOLS.get(str(value).upper()))


def split_ports(ports: Iterable[int | str] | None) -> tuple[tuple[m.PortRange, ...], tuple[str, ...]]:
    """(numeric ranges, names) of a rule's ports list (ints, "lo:hi" strings, names)."""
    numeric: list[m.PortRange] = []
    named: list[str] = []
    for port in ports or ():
        if isinstance(port, int):
            numeric.append((port, port))
        elif isinstance(port, str) and port.isdigit():
            numeric.append((int(port), int(port)))
        elif isinstance(port, str) and ":" in port:
            lo, _, hi = port.partition(":")
            numeric.append((int(lo), int(hi)))
        else:
            named.append(str(port))
    return tuple(numeric), tuple(named)


def normalise_nets(nets: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(map(normalise_net, nets or ()))


def _family(net: str) -> int:
    return 6 if ":" in net else 4


class _Side:
    """One resolved side (source or destination) of a rule."""

    def __init__(self, entity: EntityRule | None, namespace: str, np_protocol: str,
                 sets: dict[str, IPSetSpec]) -> None:
        positive, negated = entity_selectors(entity, namespace)
        if entity is None:
            self.nets = self.not_nets = ()
            self.ports = self.not_ports = named = not_named = ()
        else:
            self.nets = normalise_nets(entity.nets)
            self.not_nets = normalise_nets(entity.notNets)
            self.ports, named = split_ports(entity.ports)
            self.not_ports, not_named = split_ports(entity.notPorts)
        port_sel = positive or ALL
        self.named_sets = tuple(_use(sets, named_port_set(port_sel, p, np_protocol))
                                for p in named)
        self.not_named_sets = tuple(_use(sets, named_port_set(port_sel, p, np_protocol))
                                    for p in not_named)
        self.sets: tuple[str, ...] = ()
        if positive is not None and (self.ports or not named):
            self.sets = (_use(sets, selector_set(positive)),)
        self.not_sets = (_use(sets, selector_set(negated)),) if negated is not None else ()


def _use(sets: dict[str, IPSetSpec], spec: IPSetSpec) -> str:
    sets.setdefault(spec.id, spec)
    return spec.id


def _icmp(value: ICMPFields | None) -> tuple[int | None, int | None]:
    return (None, None) if value is None else (value.type, value.code)


def resolve_rule(rule: Rule, namespace: str, sets: dict[str, IPSetSpec]) -> list[m.Rule]:
    """One v3 rule → zero, one or two `messages.Rule`s (see the module docstring); the IP
    sets it uses are added to `sets`. `rule_id` is left for the caller to fill."""
    protocol = protocol_number(rule.protocol)
    np_protocol = NAMED_PORT_PROTOCOLS.get(protocol or 6, "tcp")
    src = _Side(rule.source, namespace, np_protocol, sets)
    dst = _Side(rule.destination, namespace, np_protocol, sets)
    icmp_type, icmp_code = _icmp(rule.icmp)
    not_icmp_type, not_icmp_code = _icmp(rule.notICMP)
    base = m.Rule(
        action=ACTIONS.get(rule.action, m.Action.ALLOW),
        ip_version=rule.ipVersion,
        protocol=protocol, not_protocol=protocol_number(rule.notProtocol),
        icmp_type=icmp_type, icmp_code=icmp_code,
        not_icmp_type=not_icmp_type, not_icmp_code=not_icmp_code,
        src_nets=src.nets, not_src_nets=src.not_nets,
        src_ports=src.ports, not_src_ports=src.not_ports,
        src_named_port_ip_set_ids=src.named_sets, not_src_named_port_ip_set_ids=src.not_named_sets,
        src_ip_set_ids=src.sets, not_src_ip_set_ids=src.not_sets,
        dst_nets=dst.nets, not_dst_nets=dst.not_nets,
        dst_ports=dst.ports, not_dst_ports=dst.not_ports,
        dst_named_port_ip_set_ids=dst.named_sets, not_dst_named_port_ip_set_ids=dst.not_named_sets,
        dst_ip_set_ids=dst.sets, not_dst_ip_set_ids=dst.not_sets,
    )
    return _per_family(base)


def _per_family(rule: m.Rule) -> list[m.Rule]:
    lists = (rule.src_nets, rule.dst_nets, rule.not_src_nets, rule.not_dst_nets)
    families = {_family(n) for nets in lists for n in nets}
    if rule.protocol == 1:
        families.add(4)
    elif rule.protocol == 58:
        families.add(6)
    if rule.ip_version is not None:
        wanted = [rule.ip_version]
    elif len(families) == 1:
        wanted = list(families)
    elif not families:
        return [rule]
    else:
        wanted = [4, 6]
    out = []
    for version in wanted:
        if rule.protocol == (58 if version == 4 else 1):
            continue  # ICMP of the other family never matches
        src, dst, not_src, not_dst = ([n for n in nets if _family(n) == version]
                                      for nets in lists)
        if (rule.src_nets and not src) or (rule.dst_nets and not dst):
            continue
        out.append(replace(rule, ip_version=version, src_nets=tuple(src), dst_nets=tuple(dst),
                           not_src_nets=tuple(not_src), not_dst_nets=tuple(not_dst)))
    return out


def rule_id(owner: str, direction: str, index: int, rule: m.Rule) -> str:
    """A stable 16-character id: same owner, position and content give the same id."""
    digest = hashlib.sha224(f"{owner}|{direction}|{index}|{rule!r}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:16]


def resolve_rules(owner: str, inbound: Sequence[Rule] | None,
                  outbound: Sequence[Rule] | None, namespace: str
                  ) -> tuple[tuple[m.Rule, ...], tuple[m.Rule, ...], dict[str, IPSetSpec]]:
    """All rules of one policy/profile: (inbound, outbound, IP sets used by id)."""
    sets: dict[str, IPSetSpec] = {}
    resolved = []
    for direction, rules in (("in", inbound), ("out", outbound)):
        out: list[m.Rule] = []
        for index, rule in enumerate(rules or ()):
            for resolved_rule in resolve_rule(rule, namespace, sets):
                out.append(replace(resolved_rule,
                                   rule_id=rule_id(owner, direction, index, resolved_rule)))
        resolved.append(tuple(out))
    return resolved[0], resolved[1], sets
