"""Address spaces in the calculation graph (our extension; the model: calico/api/addressspace.py).

A workload endpoint of address space S (translation prefix P) with IPv4 address A is, outside
its own interface, the IPv6 address P::A: the translator at its interface turns its IPv4
packets into IPv6 ones and back (calico/felix/dataplane/xlat/). So, everywhere after the
interface, the calc graph describes the endpoint by P::A:

- its IP-set contribution is P::A/128, never A (an IP set can hold another space's A only in
  that space's translated form, so a selector can never match the wrong space's address);
- its dataplane message carries `ipv4_nets=()`, `ipv6_nets=(P::A/128,)` (so the route manager
  installs `P::A/128 dev <iface>` and the permanent neighbour for P::A, and no IPv4 route for
  A, which another space may use on this host) plus `address_space`, `translation_prefix` and
  `xlat_ipv4` = A for the translator manager;
- its policies and profiles are rendered for the space (`space_rule`): an IPv4 CIDR of a rule
  becomes its translated form P::N/(96+len), inside P, so it can only match the space's own
  traffic; IPv4-only matches (ip_version 4, ICMP types and codes as RFC 7915 translates them)
  become their IPv6 counterparts; a rule with IPv6 CIDRs, ip_version 6 or ICMPv6 matches
  nothing (the space's workloads have no IPv6 addresses: in Calico too such a rule never
  matches their traffic).

`SpaceIndex` knows each space's prefix and which endpoints name it; when a space appears,
changes or goes, the graph re-evaluates those endpoints. An endpoint whose space is unknown
(no AddressSpace of that name yet) is treated as having no addresses: it is neither programmed
nor in any IP set until its space exists (fail closed: nothing is routed in the wrong space).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from calico.api.addressspace import translated_net
from calico.felix import messages as m

# RFC 7915's ICMPv4 -> ICMPv6 type mapping, for rule matches (echo, unreachable, time exceeded).
ICMP_TYPES = {0: 129, 8: 128, 3: 1, 11: 3}
PROTO_ICMP, PROTO_ICMPV6 = 1, 58


class SpaceIndex:
    """Space name -> translation prefix; space name -> the endpoint keys that name it."""

    def __init__(self) -> None:
        self.prefixes: dict[str, ipaddress.IPv6Network] = {}
        self._members: dict[str, set[str]] = {}

    def update(self, name: str, prefix: str | None) -> set[str]:
        """A space's prefix (None: deleted); returns the endpoint keys to re-evaluate."""
        new = ipaddress.IPv6Network(prefix) if prefix else None
        if self.prefixes.get(name) == new:
            return set()
        if new is None:
            self.prefixes.pop(name, None)
        else:
            self.prefixes[name] = new
        return set(self._members.get(name, ()))

    def join(self, key: str, space: str | None) -> None:
        """Record that endpoint `key` names `space` (None: no space, or deleted)."""
        for members in self._members.values():
            members.discard(key)
        if space is not None:
            self._members.setdefault(space, set()).add(key)

    def translate_nets(self, space: str, nets: tuple[str, ...]) -> tuple[str, ...] | None:
        """The endpoint's nets as the rest of the network sees them; None: space unknown."""
        prefix = self.prefixes.get(space)
        if prefix is None:
            return None
        return tuple(str(translated_net(prefix, n)) for n in nets if ":" not in n)


def space_endpoint(update: m.WorkloadEndpointUpdate, space: str,
                   prefix: ipaddress.IPv6Network, ipv4_nets: tuple[str, ...]
                   ) -> m.WorkloadEndpointUpdate:
    """The local endpoint's message in its translated form (see above)."""
    ipv4 = str(ipaddress.IPv4Network(ipv4_nets[0]).network_address) if ipv4_nets else ""
    return replace(update, ipv4_nets=(),
                   ipv6_nets=tuple(str(translated_net(prefix, n)) for n in ipv4_nets),
                   ipv4_nat=(), ipv6_nat=(), allowed_spoofed_source_prefixes=(),
                   address_space=space, translation_prefix=str(prefix), xlat_ipv4=ipv4)


def space_rule(rule: m.Rule, prefix: ipaddress.IPv6Network) -> list[m.Rule]:
    """`rule` as it must match the space's translated traffic: no rule when it can match
    nothing there, several when one ICMP match becomes several ICMPv6 ones."""
    nets = {f: getattr(rule, f) for f in ("src_nets", "not_src_nets", "dst_nets", "not_dst_nets")}
    if any(":" in n for v in nets.values() for n in v) or rule.ip_version == 6 \
            or PROTO_ICMPV6 in (rule.protocol, rule.not_protocol):
        return []  # an IPv6 match: never the space's (IPv4) traffic, as in Calico
    fields: dict[str, object] = {f: tuple(str(translated_net(prefix, n)) for n in v)
                                 for f, v in nets.items()}
    fields["ip_version"] = 6
    if rule.not_protocol == PROTO_ICMP:
        fields["not_protocol"] = PROTO_ICMPV6
    negated = [(None, None)]
    if rule.not_icmp_type is not None:
        negated = icmp6_matches(rule.not_icmp_type, rule.not_icmp_code)
        if len(negated) > 1:
            return []  # "not one of several ICMPv6 types": not expressible in one rule
    fields["not_icmp_type"], fields["not_icmp_code"] = negated[0] if negated else (None, None)
    if rule.protocol != PROTO_ICMP:
        return [replace(rule, **fields)]
    fields["protocol"] = PROTO_ICMPV6
    return [replace(rule, **fields, icmp_type=t, icmp_code=c)
            for t, c in icmp6_matches(rule.icmp_type, rule.icmp_code)]


# RFC 7915 4.2: how the translator turns an ICMPv4 destination unreachable code into ICMPv6.
UNREACH_CODES = {0: (1, 0), 1: (1, 0), 2: (4, 1), 3: (1, 4), 4: (2, 0), 5: (1, 0), 6: (1, 0),
                 7: (1, 0), 8: (1, 0), 9: (1, 1), 10: (1, 1), 11: (1, 0), 12: (1, 0),
                 13: (1, 1), 15: (1, 1)}


def icmp6_matches(icmp_type: int | None, icmp_code: int | None
                  ) -> list[tuple[int | None, int | None]]:
    """The ICMPv6 (type, code) matches of an ICMP (type, code) match, as RFC 7915 translates
    those messages; [] when the translator never produces such a message."""
    if icmp_type is None:
        return [(None, None)]
    if icmp_type in (0, 8):
        return [(ICMP_TYPES[icmp_type], icmp_code)]
    if icmp_type == 11:
        return [(3, icmp_code)]
    if icmp_type == 12:
        return [(4, 0)] if icmp_code in (None, 0, 2) else []
    if icmp_type == 3:
        if icmp_code is None:
            return sorted(set(UNREACH_CODES.values()))
        return [UNREACH_CODES[icmp_code]] if icmp_code in UNREACH_CODES else []
    return []


def space_policy_id(pid: m.PolicyID, space: str) -> m.PolicyID:
    """The id of `pid` rendered for `space` (its own chains; the policy's name is kept)."""
    return replace(pid, name=f"{pid.name}@{space}")


def space_profile_id(pid: m.ProfileID, space: str) -> m.ProfileID:
    return m.ProfileID(f"{pid.name}@{space}")


def space_rules(rules: tuple[m.Rule, ...], prefix: ipaddress.IPv6Network) -> tuple[m.Rule, ...]:
    return tuple(r for rule in rules for r in space_rule(rule, prefix))


class SpaceRenderer:
    """Between the policy calculator and the sequencer: forwards every call, and renders each
    active policy and profile once per address space whose local endpoints use it (ids
    `name@space`), rewriting those endpoints' tiers and profiles to the space's renderings.
    A rendering is sent while a local endpoint of the space references it (ref-counted per
    endpoint), so the sequencer's ordering guarantees carry over."""

    def __init__(self, seq, spaces: SpaceIndex) -> None:
        self._seq = seq
        self._spaces = spaces
        self._policies: dict[m.PolicyID, m.ActivePolicyUpdate] = {}
        self._profiles: dict[m.ProfileID, m.ActiveProfileUpdate] = {}
        self._uses: dict[object, tuple[str, frozenset]] = {}  # endpoint -> (space, base ids)
        self._refs: dict[tuple[object, str], int] = {}  # (base id, space) -> endpoints

    def __getattr__(self, name: str):
        return getattr(self._seq, name)

    def policy_update(self, msg: m.ActivePolicyUpdate) -> None:
        self._policies[msg.id] = msg
        self._seq.policy_update(msg)
        self._resend(msg.id)

    def policy_remove(self, pid: m.PolicyID) -> None:
        self._policies.pop(pid, None)
        self._seq.policy_remove(pid)

    def profile_update(self, msg: m.ActiveProfileUpdate) -> None:
        self._profiles[msg.id] = msg
        self._seq.profile_update(msg)
        self._resend(msg.id)

    def profile_remove(self, pid: m.ProfileID) -> None:
        self._profiles.pop(pid, None)
        self._seq.profile_remove(pid)

    def resend_space(self, space: str) -> None:
        """The space's prefix changed: render again what its endpoints use."""
        for base, s in list(self._refs):
            if s == space:
                self._send(base, s)

    def endpoint_update(self, msg) -> None:
        if not isinstance(msg, m.WorkloadEndpointUpdate) or not msg.address_space:
            self._set_uses(msg.id, None, frozenset())
            self._seq.endpoint_update(msg)
            return
        space = msg.address_space
        bases = frozenset([*(p for t in msg.tiers for p in (*t.ingress_policies,
                                                           *t.egress_policies)),
                           *msg.profile_ids])
        self._set_uses(msg.id, space, bases)
        tiers = tuple(replace(t, ingress_policies=tuple(space_policy_id(p, space)
                                                        for p in t.ingress_policies),
                              egress_policies=tuple(space_policy_id(p, space)
                                                    for p in t.egress_policies))
                      for t in msg.tiers)
        self._seq.endpoint_update(replace(
            msg, tiers=tiers,
            profile_ids=tuple(space_profile_id(p, space) for p in msg.profile_ids)))

    def endpoint_remove(self, ep) -> None:
        self._set_uses(ep, None, frozenset())
        self._seq.endpoint_remove(ep)

    def _set_uses(self, ep, space: str | None, bases: frozenset) -> None:
        old_space, old = self._uses.pop(ep, ("", frozenset()))
        if space is not None:
            self._uses[ep] = (space, bases)
        new = {(b, space) for b in bases} if space is not None else set()
        for key in {(b, old_space) for b in old} - new:
            self._refs[key] -= 1
            if not self._refs[key]:
                del self._refs[key]
                self._unsend(*key)
        for key in new - {(b, old_space) for b in old}:
            self._refs[key] = self._refs.get(key, 0) + 1
            if self._refs[key] == 1:
                self._send(*key)

    def _resend(self, base) -> None:
        for b, space in list(self._refs):
            if b == base:
                self._send(b, space)

    def _send(self, base, space: str) -> None:
        prefix = self._spaces.prefixes.get(space)
        if isinstance(base, m.PolicyID):
            msg = self._policies.get(base)
            if msg is not None and prefix is not None:
                self._seq.policy_update(replace(
                    msg, id=space_policy_id(base, space),
                    inbound_rules=space_rules(msg.inbound_rules, prefix),
                    outbound_rules=space_rules(msg.outbound_rules, prefix)))
        else:
            prof = self._profiles.get(base)
            if prof is not None and prefix is not None:
                self._seq.profile_update(replace(
                    prof, id=space_profile_id(base, space),
                    inbound_rules=space_rules(prof.inbound_rules, prefix),
                    outbound_rules=space_rules(prof.outbound_rules, prefix)))

    def _unsend(self, base, space: str) -> None:
        if isinstance(base, m.PolicyID):
            self._seq.policy_remove(space_policy_id(base, space))
        else:
            self._seq.profile_remove(space_profile_id(base, space))
