"""BGPFilter resources as BIRD 2 functions, the way Calico's confd writes them. Pure.

Each filter gives up to four functions, `'bgp_<name>_importFilterV4'`, `..._exportFilterV4`
and the V6 pair (only for the lists the filter has). A function holds one statement per rule,
in order: the rule's matches AND-ed together, then its operations and its action:

    cidr + matchOperator   In `net ~ C`, NotIn `net !~ C`, Equal `net = C`, NotEqual `net != C`;
                           with prefixLength, In/NotIn match `[ C{min,max} ]` (min defaults to
                           C's own length, max to 32 or 128)
    source: RemotePeers    the route was learned over BGP
    interface              the route's interface matches the pattern
    communities            the route carries the (standard or large) community
    asPathPrefix           the AS path starts with these AS numbers
    priority               the route's kernel metric (`krt_metric`) is this value
    operations             setPriority (`krt_metric = N`), addCommunity, prependASPath
    peerType               iBGP / eBGP: the function takes `bool is_same_as` and the rule only
                           applies on sessions of that kind

The first rule that matches ends the filter (accept or reject); when none does, the peer's
own filter carries on (import: accept; export: Calico's export rules). A peer's `filters` are
called in the order it lists them. Names longer than BIRD's symbols allow are cut and given a
hash suffix, as Calico does.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from .model import parse_asn, spec_of

_MAX_NAME = 64 - len("bgp__importFilterV4")  # BIRD's symbol limit, as Calico computes it
_HASH_CHARS = 10


def function_name(filter_name: str, direction: str, version: int) -> str:
    """`'bgp_<name>_<direction>FilterV<version>'` with Calico's truncation of long names."""
    name = filter_name
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest().upper()[:_HASH_CHARS]
        name = f"{name[:_MAX_NAME - _HASH_CHARS - 1]}_{digest}"
    return f"'bgp_{name}_{direction}FilterV{version}'"


def _cidr_match(rule: dict[str, Any], version: int) -> str | None:
    cidr, op = rule.get("cidr"), rule.get("matchOperator")
    if not cidr or not op:
        return None
    net = ipaddress.ip_network(cidr, strict=False)
    length = rule.get("prefixLength") or {}
    if op in ("In", "NotIn") and length:
        lo = length.get("min", net.prefixlen)
        hi = length.get("max", 32 if version == 4 else 128)
        target = f"[ {net}{{{lo},{hi}}} ]"
    else:
        target = str(net)
    return f"(net {({'In': '~', 'NotIn': '!~', 'Equal': '=', 'NotEqual': '!='})[op]} {target})"


def _community(value: str) -> tuple[str, str]:
    parts = value.split(":")
    attr = "bgp_community" if len(parts) == 2 else "bgp_large_community"
    return f"({', '.join(parts)})", attr


def _matches(rule: dict[str, Any], version: int) -> list[str]:
    out = []
    cidr = _cidr_match(rule, version)
    if cidr:
        out.append(cidr)
    if rule.get("source") == "RemotePeers":
        out.append("((defined(source))&&(source ~ [ RTS_BGP ]))")
    if rule.get("interface"):
        out.append(f'((defined(ifname))&&(ifname ~ "{rule["interface"]}"))')
    for value in (rule.get("communities") or {}).get("values") or []:
        literal, attr = _community(str(value))
        out.append(f"({literal} ~ {attr})")
    if rule.get("asPathPrefix"):
        path = " ".join(str(parse_asn(a)) for a in rule["asPathPrefix"])
        out.append(f"(bgp_path ~ [= {path} * =])")
    if rule.get("priority") is not None:
        out.append(f"(krt_metric = {int(rule['priority'])})")
    return out


def _operations(rule: dict[str, Any]) -> list[str]:
    out = []
    for op in rule.get("operations") or []:
        if "setPriority" in op:
            out.append(f"krt_metric = {int(op['setPriority']['value'])};")
        elif "addCommunity" in op:
            literal, attr = _community(str(op["addCommunity"]["value"]))
            out.append(f"{attr}.add({literal});")
        elif "prependASPath" in op:
            out += [f"bgp_path.prepend({parse_asn(a)});"
                    for a in reversed(op["prependASPath"]["prefix"])]
    return out


def rule_statement(rule: dict[str, Any], version: int) -> str:
    """One rule as one BIRD statement."""
    body = " ".join([*_operations(rule), f"{rule['action'].lower()};"])
    matches = _matches(rule, version)
    stmt = f"if ({'&&'.join(matches)}) then {{ {body} }}" if matches else body
    peer_type = rule.get("peerType")
    if peer_type:
        stmt = f"if ({'' if peer_type == 'iBGP' else '!'}is_same_as) then {{ {stmt} }}"
    return stmt


def _rules(resource: dict[str, Any], direction: str, version: int) -> list[dict[str, Any]]:
    key = f"{direction}V{version}"
    return list(spec_of(resource).get(key) or [])


def filter_functions(filters: dict[str, dict[str, Any]], version: int) -> list[str]:
    """The BIRD functions of every BGPFilter for one address family."""
    lines = []
    for name in sorted(filters):
        for direction in ("import", "export"):
            rules = _rules(filters[name], direction, version)
            if not rules:
                continue
            param = "bool is_same_as" if any(r.get("peerType") for r in rules) else ""
            lines.append(f"function {function_name(name, direction, version)}({param}) {{")
            lines += [f"  {rule_statement(r, version)}" for r in rules]
            lines.append("}")
    return lines


def filter_calls(filters: dict[str, dict[str, Any]], names: tuple[str, ...], direction: str,
                 version: int, ibgp: bool) -> list[str]:
    """The calls a peer's import or export filter makes, in the order of its `filters`.
    Names of BGPFilters that do not exist are skipped (`missing_filters` reports them)."""
    calls = []
    for name in names:
        rules = _rules(filters.get(name) or {}, direction, version)
        if not rules:
            continue
        arg = ("true" if ibgp else "false") if any(r.get("peerType") for r in rules) else ""
        calls.append(f"{function_name(name, direction, version)}({arg});")
    return calls
