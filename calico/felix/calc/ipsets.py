"""IP-set members: the addresses of everything a rule selector matches, reference-counted.

In: every endpoint in the cluster and every network set (`update_item`: labels, profile
parents, CIDRs, named ports), profile labels (`update_parent`), and the IP sets active rules
use (`add_ipset` / `remove_ipset`, from `IPSetRefs`).
Out, to the sequencer: `ipset_added(id, type)`, `member_added(id, member)`,
`member_removed(id, member)`, `ipset_removed(id)`.

Members are reference-counted per set: an address shared by two endpoints (or a CIDR listed
by two network sets) is added when the first appears and removed when the last goes. Only
selectors of active sets are in the label index, so inactive rules cost nothing.
NET members are CIDRs ("10.0.0.1/32", "fd00::1/128", "10.1.0.0/16"); NET_PORT members are
"addr,proto:port" ("10.0.0.1,tcp:8080") from endpoints' named ports (network sets have none).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Protocol

from calico.felix import messages as m
from calico.felix.heap import compact

from .labelindex import LabelIndex
from .rules import IPSetSpec

NamedPort = tuple[str, str, int]  # (name, "tcp"|"udp"|"sctp", port)


class IPSetListener(Protocol):
    """Where IP-set changes go (the sequencer): a set is added before its members and its
    members are gone from it before it is removed."""

    def ipset_added(self, set_id: str, set_type: m.IPSetType) -> None: ...
    def ipset_removed(self, set_id: str) -> None: ...
    def member_added(self, set_id: str, member: str) -> None: ...
    def member_removed(self, set_id: str, member: str) -> None: ...


class _Contribution:
    __slots__ = ("nets", "ports")

    def __init__(self, nets: tuple[str, ...], ports: tuple[NamedPort, ...]) -> None:
        self.nets = nets
        self.ports = ports


class IPSetCalculator:
    """The members of every active IP set (`add_ipset`), kept current as items and profile
    labels change; reports each set and each member change to its listener exactly once."""

    def __init__(self, listener: IPSetListener) -> None:
        self._listener = listener
        self._index = LabelIndex(self._on_match, self._on_unmatch)
        self._specs: dict[str, IPSetSpec] = {}
        self._members: dict[str, dict[str, int]] = {}
        self._items: dict[Hashable, _Contribution] = {}

    def members(self, set_id: str) -> Iterable[str]:
        return self._members.get(set_id, {}).keys()

    # ---- sets ------------------------------------------------------------------------------

    def add_ipset(self, spec: IPSetSpec) -> None:
        self._specs[spec.id] = spec
        self._members[spec.id] = {}
        self._listener.ipset_added(spec.id, spec.type)
        self._index.update_selector(spec.id, spec.selector)

    def remove_ipset(self, set_id: str) -> None:
        self._index.remove_selector(set_id, notify=False)
        del self._specs[set_id], self._members[set_id]
        self._listener.ipset_removed(set_id)

    # ---- items -----------------------------------------------------------------------------

    def update_item(self, item_id: Hashable, labels: dict[str, str], parents: tuple[str, ...],
                    nets: tuple[str, ...], ports: tuple[NamedPort, ...] = ()) -> None:
        new = _Contribution(nets, ports)
        old = self._items.get(item_id)
        if old is not None and (old.nets != nets or old.ports != ports):
            for set_id in self._index.item_matches(item_id):
                spec = self._specs[set_id]
                before, after = _members(spec, old), _members(spec, new)
                for member in before - after:
                    self._decref(set_id, member)
                for member in after - before:
                    self._incref(set_id, member)
        self._items[item_id] = new
        self._index.update_item(item_id, labels, parents)

    def remove_item(self, item_id: Hashable) -> None:
        if item_id in self._items:
            self._index.remove_item(item_id)
            del self._items[item_id]

    def update_parent(self, parent_id: str, labels: dict[str, str] | None) -> None:
        self._index.update_parent(parent_id, labels)

    # ---- membership ------------------------------------------------------------------------

    def _on_match(self, set_id: str, item_id: Hashable) -> None:
        for member in _members(self._specs[set_id], self._items[item_id]):
            self._incref(set_id, member)

    def _on_unmatch(self, set_id: str, item_id: Hashable) -> None:
        for member in _members(self._specs[set_id], self._items[item_id]):
            self._decref(set_id, member)

    def _incref(self, set_id: str, member: str) -> None:
        counts = self._members[set_id]
        count = counts.get(member, 0)
        counts[member] = count + 1
        if not count:
            self._listener.member_added(set_id, member)

    def _decref(self, set_id: str, member: str) -> None:
        counts = self._members[set_id]
        count = counts[member] - 1
        if count:
            counts[member] = count
        else:
            del counts[member]
            compact(counts)
            self._listener.member_removed(set_id, member)


def _members(spec: IPSetSpec, item: _Contribution) -> set[str]:
    if not spec.named_port:
        return set(item.nets)
    return {f"{net.partition('/')[0]},{proto}:{port}"
            for name, proto, port in item.ports
            if name == spec.named_port and proto == spec.protocol
            for net in item.nets}


class IPSetRefs:
    """Reference counts of IP sets across active policies and profiles: a set is added to the
    calculator when its first user appears and removed after its last user goes."""

    def __init__(self, calc: IPSetCalculator) -> None:
        self._calc = calc
        self._users: dict[str, set[Hashable]] = {}

    def set_uses(self, owner: Hashable, old: dict[str, IPSetSpec],
                 new: dict[str, IPSetSpec]) -> None:
        """`owner` now uses the sets in `new` instead of those in `old` (adds before removes,
        so a set both use stays)."""
        for set_id, spec in new.items():
            users = self._users.get(set_id)
            if users is None:
                users = self._users[set_id] = set()
                self._calc.add_ipset(spec)
            users.add(owner)
        for set_id in old.keys() - new.keys():
            users = self._users[set_id]
            users.discard(owner)
            if not users:
                del self._users[set_id]
                self._calc.remove_ipset(set_id)
