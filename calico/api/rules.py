"""Policy rules: the match criteria shared by (Global)NetworkPolicy, their staged forms and Profile.

A `Rule` is an action plus match criteria on the packet (`protocol`, `icmp`, `ipVersion`,
`http`) and on each end (`source`, `destination`: an `EntityRule` of nets, selectors, ports,
services and service accounts). Every positive criterion has a negated `notX` twin.

The checks follow Calico's v3 validator (libcalico-go/lib/validator/v3/validator.go:
validateRule, validateEntityRule, validatePort, validateProtocol, validateHTTPRule) together
with the CEL rules on the v3 types (api/pkg/apis/projectcalico/v3/policy_common.go), which
current Calico also enforces in etcd mode:

- ports: an integer 1-65535, a range "lo:hi" with lo <= hi, or a named port (a Kubernetes
  port name). A single port is stored as an integer ("80" and "80:80" both become 80).
  Numeric ports need the rule's protocol to be TCP, UDP or SCTP (by name or 6/17/132);
  named ports may also go with no protocol at all.
- protocol / notProtocol: TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite (case-sensitive, as Calico's
  v3 validator) or a number 1-255; a numeric string ("6") is stored as the number.
- icmp: needs protocol ICMP/ICMPv6 (or 1/58); type 0-254, code 0-255, no code without type.
  Protocol ICMP needs ipVersion 4 (if set), ICMPv6 needs 6 (for notProtocol too).
- nets / notNets: CIDRs with a prefix length and no host bits set (Calico's `net` tag plus
  net.ParseCIDR in validateRule: a bare address is rejected here, unlike in network sets);
  one IP version per rule, matching ipVersion; a catch-all (0.0.0.0/0, ::/0) cannot be negated.
- selectors must parse (`calico.selector`); `global()` only as a whole namespaceSelector.
- services exclude selectors, nets, serviceAccounts and namespaceSelector on the same side,
  and destination services exclude destination ports.
- http: only on Allow rules, protocol TCP (or 6) or unset; no duplicate methods; each path
  exactly one of exact/prefix, starting with "/" and without "?", "#" or spaces.

Where a rule sits (ingress vs egress, namespaced vs global) adds more rules; those live with
the policy kinds (`policy.py`).

Public helpers other packages use: `parse_port`, `parse_protocol`, `protocol_number`,
`protocol_supports_ports`, `check_selector`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import model_validator

from calico.selector import check as check_selector_syntax

from .base import Annotations, CalicoModel, FieldError, check_dns1123_subdomain, checked
from .nets import parse_cidr

ACTIONS = ("Allow", "Deny", "Log", "Pass")
PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")
_PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}
_PORT_PROTOCOLS = {6, 17, 132}

MAX_SELECTOR_LEN = 1024
MAX_NETS = 256
MAX_PORTS = 50
MAX_HTTP_ITEMS = 20
MAX_HTTP_PATH_LEN = 1024

_PORT_RANGE = re.compile(r"^(\d+):(\d+)$")
_PORT_NAME_CHARS = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
_K8S_PORT_NAME = re.compile(r"^[-a-z0-9]+$")


# ---- ports ---------------------------------------------------------------------------------

def _port_number(num: int, what: str = "port") -> int:
    if not 1 <= num <= 65535:
        raise ValueError(f"is not a valid {what} (1-65535)")
    return num


def check_port_name(name: str) -> str:
    """A Kubernetes port name (IsValidPortName): at most 15 lower-case alphanumerics or '-',
    at least one letter, no '--', not starting or ending with '-'."""
    if (not isinstance(name, str) or not 1 <= len(name) <= 15 or not _K8S_PORT_NAME.match(name)
            or not re.search(r"[a-z]", name) or "--" in name
            or name.startswith("-") or name.endswith("-")):
        raise ValueError(
            "is not a valid port name: at most 15 lower-case letters, digits or '-', "
            "with at least one letter, not starting or ending with '-' and no '--'")
    return name


def parse_port(value: Any) -> tuple[int, int] | str:
    """Parse one entry of a rule's `ports` / `notPorts` the way Calico reads it.

    Returns `(lo, hi)` for a number or a range (a single port gives `(p, p)`), or the name
    (a `str`) for a named port. Accepts an int (80), a numeric string ("80"), a range
    ("80:90") or a Kubernetes port name ("http"). Raises ValueError whose text reads after
    the value: "is not a valid port (1-65535)", ...
    """
    if isinstance(value, bool):
        raise ValueError("is not a valid port: a number 1-65535, a range \"lo:hi\" or a name")
    if isinstance(value, int):
        _port_number(value)
        return value, value
    if not isinstance(value, str) or not value:
        raise ValueError("is not a valid port: a number 1-65535, a range \"lo:hi\" or a name")
    if value.isdigit():
        num = _port_number(int(value))
        return num, num
    match = _PORT_RANGE.match(value)
    if match:
        lo, hi = int(match.group(1)), int(match.group(2))
        if not (1 <= lo <= 65535 and 1 <= hi <= 65535):
            raise ValueError("is not a valid port range: both ends must be 1-65535")
        if lo > hi:
            raise ValueError("is not a valid port range: the first port is greater than the last")
        return lo, hi
    if not _PORT_NAME_CHARS.match(value):
        raise ValueError("is not a valid port: a number 1-65535, a range \"lo:hi\" or a name")
    return check_port_name(value)


def check_port(value: Any) -> int | str:
    """Validator for one port entry: normalises to Calico's JSON form (int, "lo:hi" or name)."""
    parsed = parse_port(value)
    if isinstance(parsed, str):
        return parsed
    lo, hi = parsed
    return lo if lo == hi else f"{lo}:{hi}"


def _max_items(limit: int, what: str = "entries"):
    def check(value: Any) -> Any:
        if isinstance(value, list) and len(value) > limit:
            raise ValueError(f"has too many {what} ({len(value)}, at most {limit})")
        return value
    return check


# ---- protocols -----------------------------------------------------------------------------

def parse_protocol(value: Any) -> int | str:
    """A protocol as Calico stores it: one of PROTOCOL_NAMES (case-sensitive) or a number
    1-255 (a numeric string becomes the number). Raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(_PROTOCOL_REASON)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int):
        if not 1 <= value <= 255:
            raise ValueError(_PROTOCOL_REASON)
        return value
    if isinstance(value, str) and value in PROTOCOL_NAMES:
        return value
    raise ValueError(_PROTOCOL_REASON)


_PROTOCOL_REASON = "is not a valid protocol (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)"


def protocol_number(protocol: int | str) -> int:
    """The IP protocol number of a (parsed) protocol: "TCP" -> 6, 58 -> 58."""
    return protocol if isinstance(protocol, int) else _PROTOCOL_NUMBERS[protocol]


def protocol_supports_ports(protocol: int | str | None) -> bool:
    """True for TCP, UDP and SCTP, by name or number (Calico's Protocol.SupportsPorts)."""
    return protocol is not None and protocol_number(protocol) in _PORT_PROTOCOLS


# ---- scalar checkers -----------------------------------------------------------------------

def check_action(value: Any) -> str:
    if value not in ACTIONS:
        raise ValueError("is not a valid action (Allow, Deny, Log, Pass)")
    return value


def check_ip_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (4, 6):
        raise ValueError("is not a valid ipVersion (4 or 6)")
    return value


def _int_in(lo: int, hi: int, what: str):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"is not a valid {what} ({lo}-{hi})")
        return value
    return check


def check_rule_net(value: Any) -> str:
    """A rule CIDR: prefix length required, host bits zero. Kept as written."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError("is not a valid CIDR (rule nets need a prefix length, e.g. 10.0.0.1/32)")
    parse_cidr(value, strict=True)
    return value


def check_selector(value: Any, *, max_len: int | None = MAX_SELECTOR_LEN) -> str | None:
    """A selector expression in Calico's grammar (`calico.selector`), at most `max_len`
    characters (None: no limit). The empty selector means all() and is accepted."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("is not a string")
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"is too long for a selector (at most {max_len} characters)")
    try:
        check_selector_syntax(value)
    except ValueError as err:
        raise ValueError(f"is not a valid selector: {err}") from None
    return value


def check_name(value: Any) -> str:
    return check_dns1123_subdomain(value)


Action = checked(str, check_action)
IPVersion = checked(int | None, lambda v: None if v is None else check_ip_version(v))
Protocol = checked(int | str | None, lambda v: None if v is None else parse_protocol(v))
Selector = checked(str | None, check_selector)
Name = checked(str | None, lambda v: None if v is None else check_name(v))
Port = checked(int | str, check_port)
Ports = checked(list[Port] | None, _max_items(MAX_PORTS, "ports"))
RuleNet = checked(str, check_rule_net)
RuleNets = checked(list[RuleNet] | None, _max_items(MAX_NETS, "nets"))


# ---- models --------------------------------------------------------------------------------

class ICMPFields(CalicoModel):
    """`icmp` / `notICMP`: an ICMP type (0-254) and optionally a code (0-255, needs a type)."""

    type: checked(int | None, lambda v: None if v is None else _int_in(0, 254, "ICMP type")(v)) = None
    code: checked(int | None, lambda v: None if v is None else _int_in(0, 255, "ICMP code")(v)) = None

    @model_validator(mode="after")
    def _code_needs_type(self) -> ICMPFields:
        if self.code is not None and self.type is None:
            raise FieldError("is not allowed without an ICMP type", field=("code",),
                             value=self.code)
        return self


class HTTPPath(CalicoModel):
    exact: str | None = None
    prefix: str | None = None

    @model_validator(mode="after")
    def _one_path(self) -> HTTPPath:
        if self.exact and self.prefix:
            raise FieldError("is not allowed together with exact: set exactly one of exact, prefix",
                             field=("prefix",), value=self.prefix)
        field = "exact" if self.exact else "prefix"
        path = self.exact or self.prefix
        if not path:
            raise FieldError("is not a valid path match: set exactly one of exact, prefix",
                             value=self.model_dump(exclude_none=True))
        if len(path) > MAX_HTTP_PATH_LEN:
            raise FieldError(f"is too long (at most {MAX_HTTP_PATH_LEN} characters)",
                             field=(field,), value=path)
        if not path.startswith("/") or any(c in path for c in "? #"):
            raise FieldError("is not a valid HTTP path: it must start with '/' and not contain "
                             "'?', '#' or spaces", field=(field,), value=path)
        return self


class HTTPMatch(CalicoModel):
    """`http`: request methods (OR'd) and paths (OR'd); the two are AND'ed."""

    methods: checked(list[str] | None, _max_items(MAX_HTTP_ITEMS, "methods")) = None
    paths: checked(list[HTTPPath] | None, _max_items(MAX_HTTP_ITEMS, "paths")) = None

    @model_validator(mode="after")
    def _no_duplicate_methods(self) -> HTTPMatch:
        seen: set[str] = set()
        for i, method in enumerate(self.methods or []):
            if method in seen:
                raise FieldError("is listed more than once", field=("methods", i), value=method)
            seen.add(method)
        return self


class ServiceAccountMatch(CalicoModel):
    """`serviceAccounts`: names (OR'd) AND a selector over service-account labels."""

    names: list[str] | None = None
    selector: Selector = None


class ServiceMatch(CalicoModel):
    """`services`: a Kubernetes Service by name (and namespace; the policy's by default)."""

    name: Name = None
    namespace: Name = None


class RuleMetadata(CalicoModel):
    annotations: Annotations = None


def _is_global_only(selector: str) -> bool:
    return "".join(selector.split()) == "global()"


class EntityRule(CalicoModel):
    """`source` / `destination` of a rule. All criteria must match (AND)."""

    nets: RuleNets = None
    selector: Selector = None
    namespaceSelector: Selector = None
    services: ServiceMatch | None = None
    ports: Ports = None
    notNets: RuleNets = None
    notSelector: Selector = None
    notPorts: Ports = None
    serviceAccounts: ServiceAccountMatch | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EntityRule:
        if self.selector and "global(" in self.selector:
            raise FieldError("is not allowed: global() can only be used in an EntityRule "
                             "namespaceSelector", field=("selector",), value=self.selector)
        ns = self.namespaceSelector
        if ns and "global(" in ns and not _is_global_only(ns):
            raise FieldError("is not allowed: global() cannot be combined with other selectors",
                             field=("namespaceSelector",), value=ns)
        for i, net in enumerate(self.notNets or []):
            if parse_cidr(net).prefixlen == 0:
                raise FieldError("is not allowed: a negated catch-all CIDR matches no traffic",
                                 field=("notNets", i), value=net)
        if self.services is not None:
            self._check_services()
        return self

    def _check_services(self) -> None:
        services = self.services
        assert services is not None
        if not services.name:
            raise FieldError("must specify a service name", field=("services",),
                             value=services.to_dict())
        for other in ("namespaceSelector", "selector", "notSelector", "serviceAccounts",
                      "nets", "notNets"):
            value = getattr(self, other)
            if value:
                value = value.to_dict() if isinstance(value, CalicoModel) else value
                raise FieldError("cannot be combined with services", field=(other,), value=value)


class Rule(CalicoModel):
    """One ingress or egress rule: an action and match criteria (all AND'ed)."""

    action: Action
    ipVersion: IPVersion = None
    protocol: Protocol = None
    icmp: ICMPFields | None = None
    notProtocol: Protocol = None
    notICMP: ICMPFields | None = None
    source: EntityRule | None = None
    destination: EntityRule | None = None
    http: HTTPMatch | None = None
    metadata: RuleMetadata | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        for end in ("source", "destination"):
            entity = getattr(self, end)
            if entity is not None:
                self._check_ports(end, entity)
            if entity is not None and not entity.to_dict():
                setattr(self, end, None)  # Calico omits an empty entity rule (omitzero)
        self._check_http()
        self._check_icmp()
        self._check_nets()
        return self

    def _check_ports(self, end: str, entity: EntityRule) -> None:
        for field in ("ports", "notPorts"):
            for i, port in enumerate(getattr(entity, field) or []):
                named = isinstance(port, str) and not _PORT_RANGE.match(port)
                if self.protocol is None and not named:
                    raise FieldError("needs the rule's protocol set to TCP, UDP or SCTP",
                                     field=(end, field, i), value=port)
                if self.protocol is not None and not protocol_supports_ports(self.protocol):
                    raise FieldError(
                        f"is not allowed with protocol {self.protocol}: ports need "
                        "protocol TCP, UDP or SCTP", field=(end, field, i), value=port)
        if end == "destination" and entity.services is not None:
            for field in ("ports", "notPorts"):
                if getattr(entity, field):
                    raise FieldError("cannot be combined with destination services (service "
                                     "rules use the endpoints' ports)", field=(end, field),
                                     value=getattr(entity, field))

    def _check_http(self) -> None:
        if self.http is None:
            return
        if self.protocol is not None and protocol_number(self.protocol) != 6:
            raise FieldError("is not allowed with an http match: protocol must be TCP or unset",
                             field=("protocol",), value=self.protocol)
        if self.action != "Allow":
            raise FieldError("is not allowed: an http match is only valid on Allow rules",
                             field=("http",), value=self.http.to_dict())

    def _check_icmp(self) -> None:
        proto = None if self.protocol is None else protocol_number(self.protocol)
        if self.icmp is not None and proto not in (1, 58):
            raise FieldError("needs the rule's protocol set to ICMP or ICMPv6", field=("icmp",),
                             value=self.icmp.to_dict())
        if self.ipVersion is None:
            return
        for field in ("protocol", "notProtocol"):
            value = getattr(self, field)
            num = None if value is None else protocol_number(value)
            needed = {1: 4, 58: 6}.get(num) if num is not None else None
            if needed is not None and self.ipVersion != needed:
                raise FieldError(f"does not match {field} {value} (which needs ipVersion "
                                 f"{needed})", field=("ipVersion",), value=self.ipVersion)

    def _check_nets(self) -> None:
        seen: int | None = None
        for end in ("source", "destination"):
            entity = getattr(self, end)
            for field in ("nets", "notNets"):
                nets = getattr(entity, field, None) or []
                for i, net in enumerate(nets):
                    version = parse_cidr(net).version
                    if self.ipVersion is not None and version != self.ipVersion:
                        raise FieldError(f"is an IPv{version} CIDR but the rule has ipVersion "
                                         f"{self.ipVersion}", field=(end, field, i), value=net)
                    if seen is not None and version != seen:
                        raise FieldError(f"is an IPv{version} CIDR but the rule also has IPv{seen}"
                                         " CIDRs (one IP version per rule)",
                                         field=(end, field, i), value=net)
                    seen = version

    def uses_services(self, end: str) -> bool:
        entity = getattr(self, end)
        return entity is not None and entity.services is not None


def check_rules(rules: Any, limit: int | None = None) -> Any:
    """Validator for an `ingress` / `egress` list: an optional length limit."""
    if limit is not None:
        _max_items(limit, "rules")(rules)
    return rules


__all__ = [
    "ACTIONS", "PROTOCOL_NAMES", "EntityRule", "HTTPMatch", "HTTPPath", "ICMPFields", "Rule",
    "RuleMetadata", "ServiceAccountMatch", "ServiceMatch", "check_port", "check_port_name",
    "check_selector", "parse_port", "parse_protocol", "protocol_number",
    "protocol_supports_ports",
]
