"""IPAM's key layout under /calico/ipam/v2/ and the two stored records the datastore serves
as v3 kinds (BlockAffinity, IPAMConfiguration): the datastore owns them, IPAM builds on them.

Keys and JSON are Calico's (libcalico-go/lib/backend/model/): the local backend and etcd hold
them at the same paths, so a datastore written by Calico's calicoctl reads the same here.

    /calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26     AllocationBlock (calico/ipam/block.py)
    /calico/ipam/v2/host/<node>/ipv4/block/10.65.0.0-26    {"state": "confirmed", "deleted": false}
    /calico/ipam/v2/handle/<handle id>                     IPAMHandle (calico/ipam/model.py)
    /calico/ipam/v2/config                                 {"strict_affinity": false,
                                                            "auto_allocate_blocks": true,
                                                            "maxBlocksPerHost": 0}

Our extension, address spaces (calico/datastore/spaces.py): the blocks, affinities and handles
of a space other than the default live under `/calico/ipam/v2/spaces/<space>/` with the same
layout below it (`SpaceKeys(space)`); the default space keeps the keys above, so every
Calico key is unchanged. The IPAM config is one for all spaces.

An affinity is created `pending` before its block is created and set `confirmed` after, so a
crash mid-claim leaves a pending affinity that the next claim of the same block picks up (or
IPAM's `check()` reports); `pendingDeletion` marks an affinity being released.

A leaf module (standard library only), so the typed client (ipamkinds.py) can map these kinds
without loading IPAM.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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


SPACES_PREFIX = PREFIX + "spaces/"


@dataclass(frozen=True)
class SpaceKeys:
    """The IPAM keys of one address space (None: the default space, Calico's keys)."""

    space: str | None = None

    @property
    def root(self) -> str:
        return PREFIX if self.space is None else f"{SPACES_PREFIX}{self.space}/"

    def block_key(self, cidr: IPNetwork) -> str:
        return f"{self.root}assignment/ipv{cidr.version}/block/{_cidr_part(cidr)}"

    def blocks_prefix(self, version: int | None = None) -> str:
        return f"{self.root}assignment/" + (f"ipv{version}/block/" if version else "")

    def affinity_key(self, host: str, cidr: IPNetwork) -> str:
        return f"{self.root}host/{host}/ipv{cidr.version}/block/{_cidr_part(cidr)}"

    def affinities_prefix(self, host: str | None = None, version: int | None = None) -> str:
        if host is None:
            return f"{self.root}host/"
        return f"{self.root}host/{host}/" + (f"ipv{version}/block/" if version else "")

    @property
    def handles_prefix(self) -> str:
        return f"{self.root}handle/"

    def handle_key(self, handle_id: str) -> str:
        handle_key(handle_id)  # the same checks
        return self.handles_prefix + handle_id

    def _rel(self, key: str) -> str | None:
        if self.space is None:
            return key if not key.startswith(SPACES_PREFIX) else None
        return PREFIX + key[len(self.root):] if key.startswith(self.root) else None

    def parse_block_key(self, key: str) -> IPNetwork | None:
        rel = self._rel(key)
        return parse_block_key(rel) if rel else None

    def parse_affinity_key(self, key: str) -> tuple[str, IPNetwork] | None:
        rel = self._rel(key)
        return parse_affinity_key(rel) if rel else None

    def parse_handle_key(self, key: str) -> str | None:
        rel = self._rel(key)
        return parse_handle_key(rel) if rel else None


DEFAULT_KEYS = SpaceKeys()
