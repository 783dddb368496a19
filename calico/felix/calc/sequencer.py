"""The event sequencer: coalesces calc-graph changes between flushes, emits them in order.

In: calls from the calculators (IP sets and members, active policies and profiles, endpoint
messages, host metadata, pools, config, in-sync). Nothing is emitted until `flush()`.
Out: `flush() -> list[Message]`, ordered so that the dataplane never sees a reference to
something it has not been told about, nor loses something still referenced:

1. ConfigUpdate, host metadata and IPAM pool updates/removes (they reference nothing), then
   VXLAN tunnel endpoint updates, route removes and updates, VXLAN tunnel endpoint removes
   (a route through the tunnel names its host's VTEP);
2. IPSetUpdate for sets new since the last flush (full membership) and IPSetDeltaUpdate
   for membership changes of sets already sent;
3. ActivePolicyUpdate / ActiveProfileUpdate;
4. endpoint updates, then endpoint removes;
5. ActivePolicyRemove / ActiveProfileRemove;
6. IPSetRemove;
7. InSync, once, at the first flush after the datastore reported in-sync.

Coalescing: a member added and removed again, an object updated several times, or created
and deleted, between two flushes costs nothing; an update equal to what was last sent is
dropped; a remove is only sent for something that was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from calico.felix import messages as m


class _Keyed:
    """Pending updates/removes of one kind of keyed object, with what was last sent."""

    def __init__(self, remove: Callable[[Any], m.Message]) -> None:
        self._remove = remove
        self.sent: dict[Hashable, m.Message] = {}
        self.updates: dict[Hashable, m.Message] = {}
        self.removes: set[Hashable] = set()

    def update(self, key: Hashable, msg: m.Message) -> None:
        self.removes.discard(key)
        if self.sent.get(key) == msg:
            self.updates.pop(key, None)
        else:
            self.updates[key] = msg

    def remove(self, key: Hashable) -> None:
        self.updates.pop(key, None)
        if key in self.sent:
            self.removes.add(key)

    def take_updates(self) -> list[m.Message]:
        out = list(self.updates.values())
        self.sent.update(self.updates)
        self.updates = {}
        return out

    def take_removes(self) -> list[m.Message]:
        out = [self._remove(key) for key in self.removes]
        for key in self.removes:
            del self.sent[key]
        self.removes = set()
        return out


class EventSequencer:
    """Buffers the calculators' changes and emits them from `flush()`, coalesced and in the
    dependency order above, so the dataplane never sees a dangling reference."""

    def __init__(self, members: Callable[[str], Iterable[str]]) -> None:
        self._members = members  # current members of a set, for full updates
        self._sent_sets: set[str] = set()
        self._new_sets: dict[str, m.IPSetType] = {}
        self._added: dict[str, set[str]] = {}
        self._removed: dict[str, set[str]] = {}
        self._removed_sets: set[str] = set()
        self._policies = _Keyed(m.ActivePolicyRemove)
        self._profiles = _Keyed(m.ActiveProfileRemove)
        self._endpoints = _Keyed(_endpoint_remove)
        self._hosts = _Keyed(m.HostMetadataRemove)
        self._pools = _Keyed(m.IPAMPoolRemove)
        self._vteps = _Keyed(m.VXLANTunnelEndpointRemove)
        self._routes = _Keyed(m.RouteRemove)
        self._config: m.ConfigUpdate | None = None
        self._config_sent: m.ConfigUpdate | None = None
        self._in_sync = False
        self._in_sync_sent = False

    # ---- IP sets ---------------------------------------------------------------------------

    def ipset_added(self, set_id: str, set_type: m.IPSetType) -> None:
        # New, or removed and re-added before a flush: either way send the full membership.
        self._removed_sets.discard(set_id)
        self._added.pop(set_id, None)
        self._removed.pop(set_id, None)
        self._new_sets[set_id] = set_type

    def ipset_removed(self, set_id: str) -> None:
        self._new_sets.pop(set_id, None)
        self._added.pop(set_id, None)
        self._removed.pop(set_id, None)
        if set_id in self._sent_sets:
            self._removed_sets.add(set_id)

    def member_added(self, set_id: str, member: str) -> None:
        if set_id in self._new_sets:
            return
        removed = self._removed.get(set_id)
        if removed and member in removed:
            removed.discard(member)
        else:
            self._added.setdefault(set_id, set()).add(member)

    def member_removed(self, set_id: str, member: str) -> None:
        if set_id in self._new_sets:
            return
        added = self._added.get(set_id)
        if added and member in added:
            added.discard(member)
        else:
            self._removed.setdefault(set_id, set()).add(member)

    # ---- policies, profiles, endpoints -----------------------------------------------------

    def policy_update(self, msg: m.ActivePolicyUpdate) -> None:
        self._policies.update(msg.id, msg)

    def policy_remove(self, policy_id: m.PolicyID) -> None:
        self._policies.remove(policy_id)

    def profile_update(self, msg: m.ActiveProfileUpdate) -> None:
        self._profiles.update(msg.id, msg)

    def profile_remove(self, profile_id: m.ProfileID) -> None:
        self._profiles.remove(profile_id)

    def endpoint_update(self, msg: m.WorkloadEndpointUpdate | m.HostEndpointUpdate) -> None:
        self._endpoints.update(msg.id, msg)

    def endpoint_remove(self, endpoint_id: m.WorkloadEndpointID | m.HostEndpointID) -> None:
        self._endpoints.remove(endpoint_id)

    # ---- hosts, pools, config, sync --------------------------------------------------------

    def host_update(self, msg: m.HostMetadataUpdate) -> None:
        self._hosts.update(msg.hostname, msg)

    def host_remove(self, hostname: str) -> None:
        self._hosts.remove(hostname)

    def pool_update(self, msg: m.IPAMPoolUpdate) -> None:
        self._pools.update(msg.id, msg)

    def pool_remove(self, pool_id: str) -> None:
        self._pools.remove(pool_id)

    def vtep_update(self, msg: m.VXLANTunnelEndpointUpdate) -> None:
        self._vteps.update(msg.node, msg)

    def vtep_remove(self, node: str) -> None:
        self._vteps.remove(node)

    def route_update(self, msg: m.RouteUpdate) -> None:
        self._routes.update(msg.dst, msg)

    def route_remove(self, dst: str) -> None:
        self._routes.remove(dst)

    def config_update(self, msg: m.ConfigUpdate) -> None:
        self._config = None if msg == self._config_sent else msg

    def in_sync(self) -> None:
        self._in_sync = True

    # ---- output ----------------------------------------------------------------------------

    def flush(self) -> list[m.Message]:
        out: list[m.Message] = []
        if self._config is not None:
            out.append(self._config)
            self._config_sent, self._config = self._config, None
        elif self._in_sync and not self._in_sync_sent and self._config_sent is None:
            out.append(m.ConfigUpdate({}))  # the dataplane waits for config before starting
            self._config_sent = out[-1]
        out += self._hosts.take_updates() + self._hosts.take_removes()
        out += self._pools.take_updates() + self._pools.take_removes()
        out += self._vteps.take_updates()
        out += self._routes.take_removes() + self._routes.take_updates()
        out += self._vteps.take_removes()
        out += self._ipset_updates()
        out += self._policies.take_updates() + self._profiles.take_updates()
        out += self._endpoints.take_updates() + self._endpoints.take_removes()
        out += self._policies.take_removes() + self._profiles.take_removes()
        out += [m.IPSetRemove(set_id) for set_id in sorted(self._removed_sets)]
        self._sent_sets -= self._removed_sets
        self._removed_sets = set()
        if self._in_sync and not self._in_sync_sent:
            out.append(m.InSync())
            self._in_sync_sent = True
        return out

    def _ipset_updates(self) -> list[m.Message]:
        out: list[m.Message] = []
        for set_id, set_type in self._new_sets.items():
            out.append(m.IPSetUpdate(set_id, set_type, frozenset(self._members(set_id))))
        self._sent_sets.update(self._new_sets)
        self._new_sets = {}
        for set_id in self._added.keys() | self._removed.keys():
            added = frozenset(self._added.get(set_id, ()))
            removed = frozenset(self._removed.get(set_id, ()))
            if added or removed:
                out.append(m.IPSetDeltaUpdate(set_id, added, removed))
        self._added, self._removed = {}, {}
        return out


def _endpoint_remove(endpoint_id: m.WorkloadEndpointID | m.HostEndpointID) -> m.Message:
    if isinstance(endpoint_id, m.HostEndpointID):
        return m.HostEndpointRemove(endpoint_id)
    return m.WorkloadEndpointRemove(endpoint_id)
