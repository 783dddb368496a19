"""IPAM's keys and its small stored records: block affinities, handles and the IPAM config.

The key layout, BlockAffinity and IPAMConfig are the datastore's (calico/datastore/ipamkeys.py:
the typed client serves them as the BlockAffinity and IPAMConfiguration kinds) and are
re-exported here; the handle record is IPAM's own:

    /calico/ipam/v2/handle/<handle id>    {"block": {"10.65.0.0/26": 2}, "deleted": false}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from calico.datastore.ipamkeys import (
    BLOCKS_PREFIX,
    CONFIG_KEY,
    DEFAULT_KEYS,
    HANDLES_PREFIX,
    HOSTS_PREFIX,
    PREFIX,
    STATE_CONFIRMED,
    STATE_PENDING,
    STATE_PENDING_DELETION,
    BlockAffinity,
    IPAMConfig,
    SpaceKeys,
    affinities_prefix,
    affinity_key,
    block_key,
    blocks_prefix,
    handle_key,
    parse_affinity_key,
    parse_block_key,
    parse_handle_key,
)

__all__ = [
    "BLOCKS_PREFIX", "CONFIG_KEY", "DEFAULT_KEYS", "SpaceKeys", "HANDLES_PREFIX", "HOSTS_PREFIX", "PREFIX", "STATE_CONFIRMED",
    "STATE_PENDING", "STATE_PENDING_DELETION", "BlockAffinity", "IPAMConfig", "IPAMHandle",
    "affinities_prefix", "affinity_key", "block_key", "blocks_prefix", "handle_key",
    "parse_affinity_key", "parse_block_key", "parse_handle_key",
]


@dataclass
class IPAMHandle:
    """How many addresses a handle holds in each block, keyed by block CIDR."""

    block: dict[str, int] = field(default_factory=dict)
    deleted: bool = False

    def to_json(self) -> str:
        return json.dumps({"block": self.block, "deleted": self.deleted},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> IPAMHandle:
        d = json.loads(text)
        return cls(block={k: int(v) for k, v in (d.get("block") or {}).items()},
                   deleted=bool(d.get("deleted")))

    def add(self, cidr: str, n: int) -> None:
        count = self.block.get(cidr, 0) + n
        if count > 0:
            self.block[cidr] = count
        else:
            self.block.pop(cidr, None)

    @property
    def empty(self) -> bool:
        return not self.block
