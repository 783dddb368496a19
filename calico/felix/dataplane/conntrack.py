"""ConntrackManager: forget the connections of a floating IP that moved or went away.

A DNAT is decided once per connection: conntrack remembers it, so the packets of a flow that
began before a floating IP moved keep going to the old instance — a continuous stream from
outside (a ping, a UDP feed, a retrying client on a fixed port) would never follow the move.
When a floating IP's internal address changes, or the floating IP is no longer programmed,
this manager deletes the conntrack entries whose original destination is that address, right
after the nftables transaction that changed the mapping (`waits_for_nftables`): the flow's
next packet is a new connection and meets the new mapping. (Calico's Felix cleans up conntrack
only for workload addresses that go away; moving traffic "within seconds" needs this too.)

`clear_mark_bits(mask)` serves the nftables verdict cache (nft/verdict_cache.py): it clears
the cache's generation bits on every entry when a new epoch starts.

In: ConfigUpdate (FloatingIPs) and WorkloadEndpointUpdate/Remove (their ipNATs), computed
into the same external -> internal map as the nftables DNAT (floating.py). Out: calls of the
injected `delete_entries(address)`; pyroute2's conntrack netlink in the current namespace in
production, a recorder in unit tests.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable

from calico.felix import messages as m
from calico.felix.dataplane.floating import active_nats, floating_ips_enabled, nat_maps
from calico.felix.dataplane.netlink import Link

log = logging.getLogger(__name__)


def delete_entries(address: str) -> int:
    """Delete the conntrack entries whose original destination is `address`; their count."""
    from pyroute2 import Conntrack
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with Conntrack() as ct:
        entries = list(ct.dump_entries(tuple_orig=NFCTAttrTuple(family=family, daddr=address)))
        for entry in entries:
            ct.delete(entry)
    return len(entries)


def clear_mark_bits(mask: int) -> int:
    """Clear `mask`'s bits in the mark of every conntrack entry (IPv4 and IPv6) that has any
    of them set; their count. Each update is masked in the kernel (CTA_MARK_MASK), so the
    other bits of a mark are never rewritten from a stale dump. Netlink errors are raised as
    OSError (an entry that went away meanwhile is not one)."""
    from pyroute2 import Conntrack
    from pyroute2.netlink.exceptions import NetlinkError

    count = 0
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            with Conntrack(nfgen_family=family) as ct:
                marked = [e for e in ct.dump_entries() if (e.mark or 0) & mask]
                for entry in marked:
                    try:
                        ct.entry("set", tuple_orig=entry.tuple_orig, mark=0, mark_mask=mask)
                    except NetlinkError as err:
                        if err.code != errno.ENOENT:  # gone meanwhile: nothing to clear
                            raise
                    count += 1
    except NetlinkError as err:
        raise OSError(err.code, f"conntrack: {err}") from err
    return count


class ConntrackManager:
    """Floating-IP mappings in; conntrack deletions for the ones that changed out (a netlink
    manager of the host network, hostnet.py)."""

    waits_for_nftables = True  # delete only once the new mapping is in the kernel

    def __init__(self, delete: Callable[[str], int] = delete_entries) -> None:
        self._delete = delete
        self._enabled = False
        self._endpoints: dict[m.WorkloadEndpointID, m.WorkloadEndpointUpdate] = {}
        self._programmed: dict[str, str] = {}  # external -> internal, as last applied
        self._stale: set[str] = set()  # external addresses whose flows must be forgotten
        self._dirty = False

    def on_message(self, msg: m.Message) -> None:
        if isinstance(msg, m.ConfigUpdate):
            self._enabled = floating_ips_enabled(msg.config)
            self._dirty = True
        elif isinstance(msg, m.WorkloadEndpointUpdate | m.WorkloadEndpointRemove):
            old = self._endpoints.pop(msg.id, None)
            if isinstance(msg, m.WorkloadEndpointUpdate) and (msg.ipv4_nat or msg.ipv6_nat):
                self._endpoints[msg.id] = msg
            self._dirty |= old is not None or msg.id in self._endpoints

    def complete_deferred_work(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        pairs = [p for ep in self._endpoints.values() for p in active_nats(ep, self._enabled)]
        dnat, _ = nat_maps(pairs)
        self._stale |= {ext for ext, internal in self._programmed.items()
                        if dnat.get(ext) != internal}
        self._programmed = dnat

    def on_link_change(self, name: str, old: Link | None, new: Link | None) -> None:
        """Links do not matter here."""

    def resync(self) -> None:
        """Nothing to read back: entries of a mapping that changed while Felix was down
        expire on their own (conntrack timeouts)."""

    def apply(self) -> None:
        for address in sorted(self._stale):
            try:
                count = self._delete(address)
            except OSError as err:
                log.warning("Cannot delete the conntrack entries of %s: %s", address, err)
                continue
            if count:
                log.info("Floating IP %s changed: %d conntrack entries deleted", address,
                         count)
        self._stale.clear()
