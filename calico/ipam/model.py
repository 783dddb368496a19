"""IPAM's keys and its small stored records: block affinities, handles and the IPAM config.

Keys and JSON are Calico's (libcalico-go/lib/backend/model/): the local backend and etcd hold
them at the same paths, so a datastore written by Calico's calicoctl reads the same here.

    /calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26     AllocationBlock (see block.py)
    /calico/ipam/v2/host/<node>/ipv4/block/10.65.0.0-26    {"state": "confirmed", "deleted": false}
    /calico/ipam/v2/handle/<handle id>                     {"block": {"10.65.0.0/26": 2}, "deleted": false}
    /calico/ipam/v2/config                                 {"strict_affinity": false,
                                                            "auto_allocate_blocks": true,
                                                            "maxBlocksPerHost": 0}

An affinity is created `pending` before its block is created and set `confirmed` after, so a
crash mid-claim leaves a pending affinity that the next claim of the same block picks up (or
`check()` reports); `pendingDeletion` marks an affinity being released.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

from .block import IPNetwork

PREFIX = "/calico/ipam/v2/"
BLOCKS_PREFIX = PREFIX + "assignment/"
HOSTS_PREFIX = PREFIX + "host/"
HANDLES_PREFIX = PREFIX + "handle/"
CONFIG_KEY = PREFIX + "config"

STATE_CONFIRMED = "confirmed"
STATE_PENDING = "pending"
STATE_PENDING_DELETION = "pendingDeletion"

_BLOCK_KEY = re.compile(r"^/calico/ipam/v2/assignment/ipv[46]/block/([^/]+)$")
_AFFINITY_KEY = re.compile(r"^/calico/ipam/v2/host/([^/]+)/ipv[46]/block/([^/]+)$")
_HANDLE_KEY = re.compile(r"^/calico/ipam/v2/handle/([^/]+)$")


def _cidr_part(cidr: IPNetwork) -> str:
    return str(cidr).replace("/", "-", 1)


def block_key(cidr: IPNetwork) -> str:
    return f"{BLOCKS_PREFIX}ipv{cidr.version}/block/{_cidr_part(cidr)}"


def blocks_prefix(version: int | None = None) -> str:
    return f"{BLOCKS_PREFIX}ipv{version}/block/" if version else BLOCKS_PREFIX


def affinity_key(host: str, cidr: IPNetwork) -> str:
    return f"{HOSTS_PREFIX}{host}/ipv{cidr.version}/block/{_cidr_part(cidr)}"


def affinities_prefix(host: str | None = None, version: int | None = None) -> str:
    if host is None:
        return HOSTS_PREFIX
    if version is None:
        return f"{HOSTS_PREFIX}{host}/"
    return f"{HOSTS_PREFIX}{host}/ipv{version}/block/"


def handle_key(handle_id: str) -> str:
    if not handle_id or "/" in handle_id:
        raise ValueError(f"handle id {handle_id!r} must be non-empty and contain no '/'")
    return HANDLES_PREFIX + handle_id


def _parse_cidr(part: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(part.replace("-", "/", 1))
    except ValueError:
        return None


def parse_block_key(key: str) -> IPNetwork | None:
    m = _BLOCK_KEY.match(key)
    return _parse_cidr(m.group(1)) if m else None


def parse_affinity_key(key: str) -> tuple[str, IPNetwork] | None:
    m = _AFFINITY_KEY.match(key)
    if not m:
        return None
    cidr = _parse_cidr(m.group(2))
    return (m.group(1), cidr) if cidr is not None else None


def parse_handle_key(key: str) -> str | None:
    m = _HANDLE_KEY.match(key)
    return m.group(1) if m else None


@dataclass
class BlockAffinity:
    state: str = STATE_CONFIRMED
    deleted: bool = False

    def to_json(self) -> str:
        return json.dumps({"state": self.state, "deleted": self.deleted})

    @classmethod
    def from_json(cls, text: str) -> BlockAffinity:
        d = json.loads(text) if text else {}
        # Affinities written before states existed are empty objects: confirmed.
        return cls(state=d.get("state") or STATE_CONFIRMED, deleted=bool(d.get("deleted")))


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


@dataclass
class IPAMConfig:
    """Cluster-wide IPAM settings. Absent from the datastore means these defaults."""

    strict_affinity: bool = False
    auto_allocate_blocks: bool = True
    max_blocks_per_host: int = 0  # 0: no limit

    def to_json(self) -> str:
        return json.dumps({"strict_affinity": self.strict_affinity,
                           "auto_allocate_blocks": self.auto_allocate_blocks,
                           "maxBlocksPerHost": self.max_blocks_per_host})

    @classmethod
    def from_json(cls, text: str) -> IPAMConfig:
        d = json.loads(text)
        # Calico writes these with omitempty: a stored config lacking a field means false / 0.
        return cls(strict_affinity=bool(d.get("strict_affinity", False)),
                   auto_allocate_blocks=bool(d.get("auto_allocate_blocks", False)),
                   max_blocks_per_host=int(d.get("maxBlocksPerHost") or 0))
