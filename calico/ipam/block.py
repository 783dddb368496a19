"""One IPAM allocation block: its stored JSON and the pure allocation logic on it.

A block is a small power-of-two slice of an IP pool (a /26 of an IPv4 pool, a /122 of an IPv6
one by default), stored whole under `/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26` so that
one compare-and-swap on its mod revision makes every change to it atomic. The JSON is Calico's
`model.AllocationBlock` (libcalico-go/lib/backend/model/block.go):

    {"cidr": "10.65.0.0/26", "affinity": "host:node-1", "affinity_claim_time": "...",
     "allocations": [0, null, 1, ...],       # one entry per address: index into attributes
     "unallocated": [1, 3, 4, ...],          # free ordinals, in the order they will be used
     "attributes": [{"handle_id": "wl-1", "secondary": {"node": "node-1", ...}}],
     "sequenceNumber": 1712..., "sequenceNumberForAllocation": {"0": 1712...},
     "deleted": false}

Addresses are handed out in `unallocated` order (ascending in a new block, released ones go to
the back, as Calico does), so a freshly released address is the last to be reused. Attributes
are shared by allocations with the same handle and attributes and are reference-counted:
the last release of an attribute removes it and renumbers the others.

`sequenceNumber` grows on every write (`bump()`); each allocation remembers the sequence
number at which it was made, so a release can insist it frees the very allocation it saw
(`release(..., expect=...)`), not a later one at the same address. Fields this code does not
know are kept as read and written back unchanged.

Everything here is pure: no datastore, no clock except `new()`'s initial sequence number.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import AddressInUseError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Attribute keys Calico's clients set (libcalico-go model.IPAMBlockAttribute*).
ATTR_NODE = "node"
ATTR_NAMESPACE = "namespace"
ATTR_POD = "pod"
ATTR_TYPE = "type"
ATTR_TIMESTAMP = "timestamp"

_KNOWN = {"cidr", "affinity", "affinity_claim_time", "allocations", "unallocated", "attributes",
          "sequenceNumber", "sequenceNumberForAllocation", "deleted", "hostAffinity"}


@dataclass
class Attribute:
    """Who holds an allocation: Calico's `AllocationAttribute` (`handle_id`, `secondary`)."""

    handle_id: str | None
    secondary: dict[str, str] = field(default_factory=dict)
    alternate: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.handle_id is not None:
            out["handle_id"] = self.handle_id
        if self.secondary:
            out["secondary"] = dict(self.secondary)
        if self.alternate:
            out["alternate"] = dict(self.alternate)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attribute:
        return cls(d.get("handle_id"), dict(d.get("secondary") or {}), d.get("alternate"))


@dataclass(frozen=True)
class Allocation:
    """One allocated address of a block, as `allocation()` and `allocations_list()` report it."""

    ip: str
    ordinal: int
    handle_id: str | None
    attrs: dict[str, str]
    sequence: int


@dataclass
class ReleaseResult:
    released: list[str] = field(default_factory=list)
    not_allocated: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # reallocated since the caller looked
    by_handle: dict[str, int] = field(default_factory=dict)


@dataclass
class AllocationBlock:
    """One block's allocations, read from and written back to Calico's JSON (fields it does not know
    kept as read). Pure and unlocked: changes are in memory until the caller writes the block
    back with compare-and-swap (store.py)."""

    cidr: IPNetwork
    affinity: str | None = None
    allocations: list[int | None] = field(default_factory=list)
    unallocated: list[int] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    sequence_number: int = 0
    sequence_for_allocation: dict[str, int] = field(default_factory=dict)
    deleted: bool = False
    affinity_claim_time: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- construction and JSON --------------------------------------------------------------

    @classmethod
    def new(cls, cidr: IPNetwork, host: str | None = None) -> AllocationBlock:
        """An empty block, affine to `host` when given. Its sequence number starts at the
        current time in nanoseconds, as Calico's does, so a deleted and re-created block never
        repeats the sequence numbers of its predecessor."""
        n = cidr.num_addresses
        block = cls(cidr=cidr, allocations=[None] * n, unallocated=list(range(n)),
                    sequence_number=time.time_ns())
        if host is not None:
            block.affinity = f"host:{host}"
            block.affinity_claim_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return block

    @classmethod
    def from_json(cls, text: str) -> AllocationBlock:
        d = json.loads(text)
        cidr = ipaddress.ip_network(d["cidr"])
        affinity = d.get("affinity")
        if affinity is None and d.get("hostAffinity"):
            affinity = f"host:{d['hostAffinity']}"  # pre-v3 blocks
        n = cidr.num_addresses
        allocations = list(d.get("allocations") or [None] * n)
        unallocated = d.get("unallocated")
        if unallocated is None:
            unallocated = [i for i, a in enumerate(allocations) if a is None]
        return cls(
            cidr=cidr, affinity=affinity, allocations=allocations, unallocated=list(unallocated),
            attributes=[Attribute.from_dict(a) for a in d.get("attributes") or []],
            sequence_number=int(d.get("sequenceNumber") or 0),
            sequence_for_allocation={k: int(v) for k, v in
                                     (d.get("sequenceNumberForAllocation") or {}).items()},
            deleted=bool(d.get("deleted", False)),
            affinity_claim_time=d.get("affinity_claim_time"),
            extra={k: v for k, v in d.items() if k not in _KNOWN},
        )

    def to_json(self) -> str:
        d: dict[str, Any] = {"cidr": str(self.cidr), "affinity": self.affinity}
        if self.affinity_claim_time:
            d["affinity_claim_time"] = self.affinity_claim_time
        d.update({
            "allocations": self.allocations,
            "unallocated": self.unallocated,
            "attributes": [a.to_dict() for a in self.attributes],
            "sequenceNumber": self.sequence_number,
            "sequenceNumberForAllocation": self.sequence_for_allocation,
            "deleted": self.deleted,
        })
        d.update(self.extra)
        return json.dumps(d, separators=(",", ":"))

    # ---- facts ------------------------------------------------------------------------------

    @property
    def host(self) -> str | None:
        """The host this block is affine to, or None."""
        if self.affinity and self.affinity.startswith("host:"):
            return self.affinity[len("host:"):]
        return None

    @property
    def size(self) -> int:
        return self.cidr.num_addresses

    @property
    def num_free(self) -> int:
        return len(self.unallocated)

    @property
    def num_allocated(self) -> int:
        return self.size - len(self.unallocated)

    def empty(self) -> bool:
        return all(a is None for a in self.allocations)

    def ordinal(self, ip: IPAddress | str) -> int:
        """The position of `ip` in the block. Raises ValueError if it is outside."""
        addr = ipaddress.ip_address(ip)
        if addr not in self.cidr:
            raise ValueError(f"{addr} is not in block {self.cidr}")
        return int(addr) - int(self.cidr.network_address)

    def ip_at(self, ordinal: int) -> str:
        return str(self.cidr.network_address + ordinal)

    def allocation(self, ip: IPAddress | str) -> Allocation | None:
        o = self.ordinal(ip)
        idx = self.allocations[o]
        if idx is None:
            return None
        return self._allocation_at(o, idx)

    def allocations_list(self) -> list[Allocation]:
        return [self._allocation_at(o, idx) for o, idx in enumerate(self.allocations)
                if idx is not None]

    def handle_counts(self) -> dict[str, int]:
        """How many addresses each handle holds in this block."""
        out: dict[str, int] = {}
        for idx in self.allocations:
            if idx is not None and idx < len(self.attributes):
                h = self.attributes[idx].handle_id
                if h is not None:
                    out[h] = out.get(h, 0) + 1
        return out

    def _allocation_at(self, o: int, idx: int) -> Allocation:
        attr = self.attributes[idx] if idx < len(self.attributes) else Attribute(None)
        return Allocation(self.ip_at(o), o, attr.handle_id, dict(attr.secondary),
                          self.sequence_for_allocation.get(str(o), 0))

    # ---- changes ----------------------------------------------------------------------------

    def bump(self) -> None:
        """Advance the sequence number; done on every write of the block."""
        self.sequence_number += 1

    def auto_assign(self, num: int, handle_id: str | None, attrs: dict[str, str]) -> list[str]:
        """Take up to `num` free addresses, in `unallocated` order."""
        take, self.unallocated = self.unallocated[:num], self.unallocated[num:]
        if not take:
            return []
        idx = self._find_or_add_attribute(handle_id, attrs)
        for o in take:
            self.allocations[o] = idx
            self.sequence_for_allocation[str(o)] = self.sequence_number
        return [self.ip_at(o) for o in take]

    def assign(self, ip: IPAddress | str, handle_id: str | None, attrs: dict[str, str]) -> None:
        """Take one given address. Raises AddressInUseError if it is allocated."""
        o = self.ordinal(ip)
        held = self.allocations[o]
        if held is not None:
            holder = self.attributes[held].handle_id if held < len(self.attributes) else None
            raise AddressInUseError(self.ip_at(o), holder)
        self.allocations[o] = self._find_or_add_attribute(handle_id, attrs)
        self.unallocated.remove(o)
        self.sequence_for_allocation[str(o)] = self.sequence_number

    def release(self, ips: list[str], expect: dict[str, tuple[str | None, int]] | None = None
                ) -> ReleaseResult:
        """Free the given addresses (each must lie in the block). With `expect`
        (ip -> (handle_id, sequence)), an address whose allocation no longer matches is left
        alone and reported in `changed`."""
        result = ReleaseResult()
        ordinals: list[int] = []
        for ip in dict.fromkeys(ips):
            o = self.ordinal(ip)
            idx = self.allocations[o]
            if idx is None:
                result.not_allocated.append(self.ip_at(o))
                continue
            alloc = self._allocation_at(o, idx)
            if expect is not None and ip in expect and expect[ip] != (alloc.handle_id,
                                                                      alloc.sequence):
                result.changed.append(alloc.ip)
                continue
            ordinals.append(o)
            result.released.append(alloc.ip)
            if alloc.handle_id is not None:
                result.by_handle[alloc.handle_id] = result.by_handle.get(alloc.handle_id, 0) + 1
        self._free(ordinals)
        return result

    def release_by_handle(self, handle_id: str) -> ReleaseResult:
        ips = [a.ip for a in self.allocations_list() if a.handle_id == handle_id]
        return self.release(ips)

    def _free(self, ordinals: list[int]) -> None:
        if not ordinals:
            return
        for o in ordinals:
            self.allocations[o] = None
            self.unallocated.append(o)
            self.sequence_for_allocation.pop(str(o), None)
        self._drop_unused_attributes()

    def _find_or_add_attribute(self, handle_id: str | None, attrs: dict[str, str]) -> int:
        for i, a in enumerate(self.attributes):
            if a.handle_id == handle_id and a.secondary == attrs:
                return i
        self.attributes.append(Attribute(handle_id, dict(attrs)))
        return len(self.attributes) - 1

    def _drop_unused_attributes(self) -> None:
        used = {idx for idx in self.allocations if idx is not None}
        if len(used) == len(self.attributes):
            return
        renumber: dict[int, int] = {}
        kept: list[Attribute] = []
        for i, a in enumerate(self.attributes):
            if i in used:
                renumber[i] = len(kept)
                kept.append(a)
        self.attributes = kept
        self.allocations = [None if idx is None else renumber[idx] for idx in self.allocations]
