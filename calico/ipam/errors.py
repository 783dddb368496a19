"""What IPAM reports to its callers when a request cannot be met.

Every error a user can cause is an `IPAMError` with a one-line message naming the pool, block,
address, host or handle involved, so calicoctl and the CNI plugin can print it as it is.
Datastore failures (`calico.datastore.kv.DatastoreError`) pass through unchanged.
"""

from __future__ import annotations


class IPAMError(Exception):
    """Base of every IPAM failure a caller can act on."""


class NoPoolsError(IPAMError):
    """No enabled IP pool of the requested IP version may be used by this host."""


class PoolExhaustedError(IPAMError):
    """The usable pools have no free address left (for this host)."""

    def __init__(self, message: str, pools: list[str]) -> None:
        super().__init__(message)
        self.pools = pools


class StrictAffinityError(PoolExhaustedError):
    """The host has no free address in its own blocks, cannot claim a new block, and strict
    affinity forbids borrowing from other hosts' blocks."""


class AddressInUseError(IPAMError):
    """`assign_ip` asked for an address that is already allocated."""

    def __init__(self, ip: str, handle_id: str | None, space: str | None = None) -> None:
        owner = f" (handle {handle_id})" if handle_id else ""
        where = f' in address space "{space}"' if space else ""
        super().__init__(f"address {ip} is already assigned{where}{owner}")
        self.ip, self.handle_id = ip, handle_id


class NotInPoolError(IPAMError):
    """The address lies outside every enabled IP pool this host may use."""


class BlockNotEmptyError(IPAMError):
    """An affinity release that requires an empty block found allocations in it."""


class ConflictRetriesExhausted(IPAMError):
    """Too many compare-and-swap conflicts in a row on one IPAM object."""
