"""Neutron security group -> Calico NetworkPolicy: a pure mapping.

In: a security group id and its rules as Neutron reports them (`direction` ingress|egress,
`ethertype` IPv4|IPv6, `protocol` (name, number as text or int, or None/"any"),
`port_range_min` / `port_range_max`, `remote_ip_prefix`, `remote_group_id`,
`remote_address_group_id`). Out: the NetworkPolicy `ossg.default.<sg-id>` in namespace
`openstack` selecting `has(sg.projectcalico.org/openstack-<sg-id>)`, one Allow rule per
Neutron rule (a security group only ever allows; what no group allows is denied by Calico's
default for an endpoint that has policies).

Rule mapping (networking-calico's, checked against Calico's v3 validator):
- ethertype -> ipVersion 4 / 6;
- protocol: None, "any", "0" -> no protocol; "icmp" -> ICMP (ICMPv6 for IPv6), "ipv6-icmp" /
  "icmpv6" -> ICMPv6, tcp/udp/sctp/udplite -> their names; other names (gre, vrrp, esp, ...)
  and numbers -> the IANA number (Calico accepts 1-255); the numbers of a named protocol
  become its name (6 -> TCP);
- ICMP: port_range_min is the ICMP type, port_range_max the code (None / -1: any);
- other protocols: port_range_min..max -> `destination.ports` [p] or ["lo:hi"] — the port of
  the VM (ingress) or of the peer it talks to (egress), i.e. the destination either way; a
  port range on a protocol without ports (or on "any") has no Calico equivalent: that rule
  is left out and logged (fail closed), the rest of the group is written;
- remote_ip_prefix -> `nets` on the far side (source for ingress, destination for egress);
  remote_group_id -> a `selector` `has(sg.projectcalico.org/openstack-<remote>)` there.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from . import names

log = logging.getLogger(__name__)

# Neutron's protocol names (neutron_lib.constants.IP_PROTOCOL_MAP) -> IANA numbers.
NEUTRON_PROTOCOLS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "icmp": 1, "icmpv6": 58, "igmp": 2,
    "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "ipv6-nonxt": 59,
    "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132,
    "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
# Numbers Calico spells by name.
CALICO_NAMES = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLite"}
_PORT_PROTOCOLS = {6, 17, 132, 136}


class RuleError(ValueError):
    """A Neutron rule that has no Calico equivalent (the message names the rule)."""


def protocol_number(protocol: Any) -> int | None:
    """Neutron's protocol field as an IANA number; None for any protocol."""
    if protocol is None:
        return None
    text = str(protocol).strip().lower()
    if text in ("", "any", "0", "-1"):
        return None
    if text.isdigit():
        num = int(text)
        if not 1 <= num <= 255:
            raise RuleError(f"protocol {protocol!r} is not 0-255")
        return num
    if text not in NEUTRON_PROTOCOLS:
        raise RuleError(f"protocol {protocol!r} is not a protocol Neutron knows")
    return NEUTRON_PROTOCOLS[text]


def _calico_protocol(num: int, ip_version: int) -> int | str:
    if num in (1, 58):  # Neutron lets "icmp" mean ICMPv6 in an IPv6 rule
        return "ICMP" if ip_version == 4 else "ICMPv6"
    return CALICO_NAMES.get(num, num)


def _is_set(value: Any) -> bool:
    return value is not None and value != -1


def rule_to_calico(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One Neutron security-group rule as a Calico Allow rule (a dict)."""
    ip_version = {"IPv4": 4, "IPv6": 6}.get(rule.get("ethertype") or "IPv4")
    if ip_version is None:
        raise RuleError(f"rule {rule.get('id')}: ethertype {rule.get('ethertype')!r} is not "
                        "IPv4 or IPv6")
    out: dict[str, Any] = {"action": "Allow", "ipVersion": ip_version}
    num = protocol_number(rule.get("protocol"))
    lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
    far: dict[str, Any] = {}
    destination_ports: list[int | str] | None = None
    if (_is_set(lo) or _is_set(hi)) and (num is None or num not in (1, 58, *_PORT_PROTOCOLS)):
        # Calico has no ports without a port protocol: ignoring the range would allow more
        # than the rule says, so the rule is left out (fail closed).
        raise RuleError(f"rule {rule.get('id')}: protocol {rule.get('protocol')!r} with a "
                        f"port range {lo}-{hi} (Calico matches ports only for TCP, UDP, "
                        "SCTP and UDPLite)")
    if num is not None:
        out["protocol"] = _calico_protocol(num, ip_version)
        if num in (1, 58):
            icmp: dict[str, int] = {}
            if _is_set(lo):
                icmp["type"] = int(lo)
                if _is_set(hi):
                    icmp["code"] = int(hi)
            if icmp:
                out["icmp"] = icmp
        elif num in _PORT_PROTOCOLS and _is_set(lo):
            lo = int(lo)
            hi = int(hi) if _is_set(hi) else lo
            destination_ports = [lo] if lo == hi else [f"{lo}:{hi}"]
    if rule.get("remote_ip_prefix"):
        net = ipaddress.ip_network(rule["remote_ip_prefix"], strict=False)
        if net.version != ip_version:
            raise RuleError(f"rule {rule.get('id')}: remote_ip_prefix {net} is not "
                            f"{rule.get('ethertype')}")
        far["nets"] = [str(net)]
    if rule.get("remote_group_id"):
        far["selector"] = f"has({names.sg_label(rule['remote_group_id'])})"
    ingress = rule.get("direction") == "ingress"
    if ingress:
        if far:
            out["source"] = far
        if destination_ports:
            out["destination"] = {"ports": destination_ports}
    else:
        if destination_ports:
            far["ports"] = destination_ports
        if far:
            out["destination"] = far
    return out


def policy_resource(sg_id: str, rules: Iterable[Mapping[str, Any]],
                    namespace: str = names.NAMESPACE) -> dict[str, Any]:
    """The NetworkPolicy for security group `sg_id` and its rules (rules of other groups in
    `rules` are ignored). Rules are ordered by id so a resync writes the same text. A rule
    with no Calico equivalent is logged and left out: a security group only allows, so
    leaving one out fails closed."""
    ingress, egress = [], []
    for rule in sorted((r for r in rules if r.get("security_group_id", sg_id) == sg_id),
                       key=lambda r: str(r.get("id", ""))):
        try:
            calico_rule = rule_to_calico(rule)
        except (RuleError, ValueError, TypeError) as err:  # fail closed: allows nothing
            log.error("security group %s: rule %s left out: %s", sg_id, rule.get("id"), err)
            continue
        (ingress if rule.get("direction") == "ingress" else egress).append(calico_rule)
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "NetworkPolicy",
        "metadata": {"name": names.sg_policy_name(sg_id), "namespace": namespace},
        "spec": {"selector": f"has({names.sg_label(sg_id)})", "ingress": ingress,
                 "egress": egress, "types": ["Ingress", "Egress"]},
    }
