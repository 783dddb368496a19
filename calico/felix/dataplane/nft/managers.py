"""Managers: calc-graph messages in, desired nftables objects out (into a shared Table).

Each manager owns one concern and keeps its own desired-state cache; it writes the nft
objects it derives into the shared `Table`, which tracks what is dirty. None does I/O:
`NftDataplane` (dataplane.py) turns the Table's difference into one transaction. Each is a
`Manager` (calico/felix/dataplane/manager.py): it sees every message and ignores the others.

- IPSetsManager: IPSetUpdate / IPSetDeltaUpdate / IPSetRemove → named sets `s4-`/`s6-`
  (NET: ipv4_addr/ipv6_addr, flags interval, elements are the members not inside another
  member, so a set built whole equals the same set built by deltas) and `n4-`/`n6-`
  (NET_PORT: addr . inet_proto . inet_service).
  A delta of host addresses to a set without prefixes is applied as an element delta.
- PolicyManager: Active{Policy,Profile}{Update,Remove} → one chain per policy/profile and
  direction, plus the content-addressed literal sets its rules use (reference-counted);
  ConfigUpdate → the log prefix. Deferred: re-rendering chains whose IP sets flipped empty.
- EndpointManager: ConfigUpdate, {Workload,Host}Endpoint{Update,Remove} → the static
  skeleton (endpoints.py), the per-endpoint chains and the verdict-map elements.
- NatManager: IPAMPool{Update,Remove} → pool sets and the natOutgoing masquerade chain.
  (Floating IPs and the metadata redirect, the other NAT, are dnat.DNATManager's.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from calico.felix import messages as m
from calico.felix.cidrs import outermost_nets
from calico.felix.dataplane.nft.config import NftConfig
from calico.felix.dataplane.nft.names import (
    ip_set_name,
    policy_chain_name,
    profile_chain_name,
)
from calico.felix.dataplane.nft.rules import (
    ADDR_TYPE,
    NET_SPEC,
    Marks,
    action_verdict,
    canonical_net,
    collapse_nets,
    net_family,
    render_rules,
)
from calico.felix.dataplane.nft.table import BaseHook, Chain, SetSpec, Table
from calico.felix.heap import compact

NET_PORT_SPEC = {f: SetSpec((ADDR_TYPE[f], "inet_proto", "inet_service")) for f in (4, 6)}
_PROTO = {"tcp": 6, "udp": 17, "sctp": 132}


class IPSetsManager:
    """IP set messages in, named nft sets out. `on_emptiness(set_id)` is called when a set
    gains its first, or loses its last, member of a family (the policy manager re-renders)."""

    def __init__(self, table: Table,
                 on_emptiness: Callable[[str], None] = lambda set_id: None) -> None:
        self._table = table
        self._sets: dict[str, tuple[m.IPSetType, set[str]]] = {}
        self._counts: dict[str, list[int]] = {}  # set id -> members per family [v4, v6]
        self._on_emptiness = on_emptiness

    def empty(self, set_id: str, fam: int) -> bool:
        """No member of that family (also for a set not known here)."""
        counts = self._counts.get(set_id)
        return counts is None or counts[fam == 6] == 0

    def on_message(self, msg: m.Message) -> None:
        if isinstance(msg, m.IPSetUpdate):
            self._sets[msg.id] = (msg.type, set(msg.members))
            if msg.type is m.IPSetType.NET:
                self._set_counts(msg.id, _by_family(msg.members))
            for fam in (4, 6):
                self._put_family(msg.id, fam)
        elif isinstance(msg, m.IPSetDeltaUpdate):
            set_type, members = self._sets[msg.id]
            gone = msg.removed & members
            if msg.removed:
                members -= msg.removed
                compact(members)
            new = msg.added - members
            members |= msg.added
            changed = {_member_family(x) for x in msg.added | msg.removed}
            for fam in sorted(changed):
                self._apply_delta(msg, set_type, fam)
            if set_type is m.IPSetType.NET:
                old = self._counts.get(msg.id, [0, 0])
                (g4, g6), (n4, n6) = _by_family(gone), _by_family(new)
                self._set_counts(msg.id, [old[0] - g4 + n4, old[1] - g6 + n6])
        elif isinstance(msg, m.IPSetRemove):
            set_type, _ = self._sets.pop(msg.id, (m.IPSetType.NET, set()))
            self._counts.pop(msg.id, None)
            for fam in (4, 6):
                self._table.remove_set(ip_set_name(msg.id, fam, set_type))

    def complete_deferred_work(self) -> None:
        """Nothing deferred: sets are written as their messages arrive."""

    def _set_counts(self, set_id: str, counts: list[int]) -> None:
        """NET sets only: named-port sets are alternatives to ports, never left out."""
        old = self._counts.get(set_id, (0, 0))
        self._counts[set_id] = counts
        if [n > 0 for n in old] != [n > 0 for n in counts]:
            self._on_emptiness(set_id)

    def _put_family(self, set_id: str, fam: int) -> None:
        set_type, members = self._sets[set_id]
        name = ip_set_name(set_id, fam, set_type)
        mine = [x for x in members if _member_family(x) == fam]
        if set_type is m.IPSetType.NET:
            self._table.put_set(name, NET_SPEC[fam], outermost_nets(mine))
        else:
            self._table.put_set(name, NET_PORT_SPEC[fam], (_net_port(x) for x in mine))

    def _apply_delta(self, msg: m.IPSetDeltaUpdate, set_type: m.IPSetType, fam: int) -> None:
        name = ip_set_name(msg.id, fam, set_type)
        added = [x for x in msg.added if _member_family(x) == fam]
        removed = [x for x in msg.removed if _member_family(x) == fam]
        if set_type is m.IPSetType.NET_PORT:
            self._table.update_elements(name, map(_net_port, added), map(_net_port, removed))
            return
        elements = self._table.sets[name].elements
        if all(_is_host(x) for x in added + removed) and all("/" not in e for e in elements):
            self._table.update_elements(name, map(canonical_net, added),
                                        map(canonical_net, removed))
        else:  # prefixes involved: recompute the non-overlapping cover
            self._put_family(msg.id, fam)


def _by_family(members) -> list[int]:
    """[IPv4, IPv6] counts of NET members (addresses or CIDRs)."""
    v6 = sum(1 for x in members if ":" in x)
    return [len(members) - v6, v6]


def _member_family(member: str) -> int:
    return net_family(member.split(",")[0])


def _is_host(member: str) -> bool:
    return "/" not in member or member.endswith(("/32", "/128"))


def _net_port(member: str) -> str:
    addr, _, proto_port = member.partition(",")
    proto, _, port = proto_port.partition(":")
    return f"{canonical_net(addr)} . {_PROTO.get(proto, proto)} . {int(port)}"


class PolicyManager:
    """Active policies/profiles in, one chain per direction out; the log prefix from ConfigUpdate.
    `empty(set_id, family)` says whether an IP set has no member of a family; rules whose
    selector sets are empty in a family are not rendered for it (rules.render_rule), and the
    chains that use a set whose emptiness flipped (`ip_set_emptiness_changed`) are re-rendered
    once per apply, in `complete_deferred_work`."""

    def __init__(self, table: Table, marks: Marks, log_prefix: str = "calico-packet",
                 empty: Callable[[str, int], bool] = lambda set_id, fam: False) -> None:
        self._table, self._marks, self.log_prefix = table, marks, log_prefix
        self._empty = empty
        self._literal_refs: dict[str, set[str]] = defaultdict(set)  # set -> chains using it
        self._chain_literals: dict[str, set[str]] = {}
        self._chain_rules: dict[str, tuple[tuple[m.Rule, ...], bool]] = {}
        self._set_users: dict[str, set[str]] = defaultdict(set)  # IP set id -> chains
        self._stale: set[str] = set()  # chains to re-render before the next transaction

    def ip_set_emptiness_changed(self, set_id: str) -> None:
        self._stale |= self._set_users.get(set_id, set())

    def complete_deferred_work(self) -> None:
        """Re-render the chains whose sets flipped between empty and not (once each, however
        many flips in the batch)."""
        stale, self._stale = self._stale, set()
        for chain in sorted(stale):
            if chain in self._chain_rules:
                self._render(chain)

    def on_message(self, msg: m.Message) -> None:
        if isinstance(msg, m.ConfigUpdate):
            # Used by chains rendered from now on, as before (Felix restarts on a change).
            self.log_prefix = NftConfig.from_mapping(msg.config).log_prefix
        elif isinstance(msg, m.ActivePolicyUpdate):
            for inbound, rules in ((True, msg.inbound_rules), (False, msg.outbound_rules)):
                self._put(policy_chain_name(msg.id, inbound), rules, msg.untracked)
        elif isinstance(msg, m.ActiveProfileUpdate):
            for inbound, rules in ((True, msg.inbound_rules), (False, msg.outbound_rules)):
                self._put(profile_chain_name(msg.id, inbound), rules, False)
        elif isinstance(msg, m.ActivePolicyRemove):
            for inbound in (True, False):
                self._remove(policy_chain_name(msg.id, inbound))
        elif isinstance(msg, m.ActiveProfileRemove):
            for inbound in (True, False):
                self._remove(profile_chain_name(msg.id, inbound))

    def _put(self, chain: str, rules: tuple[m.Rule, ...], untracked: bool) -> None:
        self._set_uses(chain, rules)
        self._chain_rules[chain] = (rules, untracked)
        self._render(chain)

    def _render(self, chain: str) -> None:
        rules, untracked = self._chain_rules[chain]
        out = render_rules(rules, lambda r: action_verdict(r, self._marks, untracked,
                                                            self.log_prefix), self._empty)
        for name, (spec, elements) in out.sets.items():
            self._table.put_set(name, spec, sorted(elements))
        self._set_literals(chain, set(out.sets))
        self._table.put_chain(chain, Chain(tuple(out.rules)))

    def _remove(self, chain: str) -> None:
        self._table.remove_chain(chain)
        self._set_literals(chain, set())
        self._set_uses(chain, ())  # reads the chain's old rules: before they are dropped
        self._chain_rules.pop(chain, None)

    def _set_uses(self, chain: str, rules: tuple[m.Rule, ...]) -> None:
        old = self._chain_rules.get(chain, ((), False))[0]
        before = {i for r in old for i in (*r.src_ip_set_ids, *r.dst_ip_set_ids)}
        after = {i for r in rules for i in (*r.src_ip_set_ids, *r.dst_ip_set_ids)}
        for set_id in after - before:
            self._set_users[set_id].add(chain)
        for set_id in before - after:
            users = self._set_users[set_id]
            users.discard(chain)
            if not users:
                del self._set_users[set_id]

    def _set_literals(self, chain: str, names: set[str]) -> None:
        old = self._chain_literals.pop(chain, set())
        if names:
            self._chain_literals[chain] = names
        for name in names:
            self._literal_refs[name].add(chain)
        for name in old - names:
            self._literal_refs[name].discard(chain)
            if not self._literal_refs[name]:
                del self._literal_refs[name]
                self._table.remove_set(name)


class NatManager:
    """natOutgoing: masquerade from a masquerade pool to anywhere outside all pools."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._pools: dict[str, m.IPAMPoolUpdate] = {}
        rules = []
        for fam, l3 in ((4, "ip"), (6, "ip6")):
            rules.append(f"{l3} saddr @pools{fam}-masq {l3} daddr != @pools{fam}-all masquerade")
        table.put_chain("nat-postrouting", Chain(tuple(rules),
                                                 BaseHook("nat", "postrouting", 100)))
        self._sync()

    def on_message(self, msg: m.Message) -> None:
        if isinstance(msg, m.IPAMPoolUpdate):
            self._pools[msg.id] = msg
        elif isinstance(msg, m.IPAMPoolRemove):
            self._pools.pop(msg.id, None)
        else:
            return
        self._sync()

    def complete_deferred_work(self) -> None:
        """Nothing deferred: the pool sets are rewritten as pool messages arrive."""

    def _sync(self) -> None:
        for fam in (4, 6):
            pools = [p for p in self._pools.values() if net_family(p.cidr) == fam]
            self._table.put_set(f"pools{fam}-all", NET_SPEC[fam],
                                collapse_nets(p.cidr for p in pools))
            self._table.put_set(f"pools{fam}-masq", NET_SPEC[fam],
                                collapse_nets(p.cidr for p in pools if p.masquerade))
