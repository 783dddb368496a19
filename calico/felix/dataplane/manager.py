"""The dataplane manager interface: what every manager implements, what the driver guarantees.

A manager owns one concern of the dataplane (IP sets, policy chains, endpoint chains, NAT,
routes, sysctls, the IP-in-IP device, the VXLAN overlay) and keeps a desired-state cache of it. As in Go Felix
(`OnUpdate` / `CompleteDeferredWork`), it has two entry points:

- `on_message(msg)`: called with EVERY calc-graph message (calico.felix.messages); the manager
  takes what concerns it and ignores the rest. No manager claims a message from another: a
  ConfigUpdate reaches every manager, each reads its own settings from it. Cheap work only:
  record the message, mark what is now dirty.
- `complete_deferred_work()`: called once per apply, after the batch's messages and before any
  kernel write: work that is cheaper once per batch than once per message (re-rendering the
  chains whose IP sets flipped between empty and not). Idempotent: a second call with no
  message in between finds nothing to do.

What the driver guarantees (calico.felix.dataplane.driver), per batch:
1. every message of the batch reaches every manager, in batch order, and for each message the
   managers in their list order (`ManagerGroup.managers`);
2. then `complete_deferred_work()` on every manager, in list order;
3. then one ordered apply: the nftables transaction first, the host network (sysctls, routes,
   IP-in-IP) after it, and routes only after a transaction that succeeded.
Nothing is applied before `InSync`. A manager writes only to its own desired state (the shared
nftables `Table` for the nftables managers); the kernel is written by the apply step alone.

A new manager (address-space translation, say) plugs in by being listed in the group whose
apply writes its state: `NftDataplane` for nftables objects (it writes them into the shared
Table; e.g. nft/dnat.py's floating IPs), `HostNetworkManager` for netlink ones (it then also
implements hostnet.NetlinkManager: link changes, resync and its own apply; e.g. vxlan.py,
conntrack.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from calico.felix import messages as m


@runtime_checkable
class Manager(Protocol):
    """One dataplane concern: every message in, deferred work once per apply (see module doc)."""

    def on_message(self, msg: m.Message) -> None: ...

    def complete_deferred_work(self) -> None: ...


class ManagerGroup:
    """Managers in a fixed order, seen as one manager: each call goes to every member in turn."""

    def __init__(self, managers: Iterable[Manager]) -> None:
        self.managers: tuple[Manager, ...] = tuple(managers)

    def on_message(self, msg: m.Message) -> None:
        for manager in self.managers:
            manager.on_message(msg)

    def complete_deferred_work(self) -> None:
        for manager in self.managers:
            manager.complete_deferred_work()
