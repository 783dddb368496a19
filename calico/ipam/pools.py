"""Which IP pools a host may allocate from, and how a pool divides into blocks.

IPPool resources are read from the datastore (`/calico/resources/v3/projectcalico.org/ippools/`)
and validated with `calico.api.validate`, which also fills Calico's defaults (blockSize 26 / 122,
nodeSelector `all()`, allowedUses [Workload, Tunnel]). A stored pool that fails validation is
skipped with a warning: a bad pool must not stop allocation from the good ones.

A pool is usable by a host for a use when it is not disabled, its `allowedUses` include the
use, and its `nodeSelector` matches the labels of the host's Node resource (a host with no Node
resource has no labels, so only `all()`-like selectors match it).

Block order: each host walks a pool's blocks from its own starting block (a hash of the host
name, as Calico seeds its random block generator with one), wrapping round, so hosts that claim
at the same moment mostly pick different blocks.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from calico.datastore.kv import Backend

from .block import IPAddress, IPNetwork

log = logging.getLogger(__name__)

POOLS_PREFIX = "/calico/resources/v3/projectcalico.org/ippools/"
NODES_PREFIX = "/calico/resources/v3/projectcalico.org/nodes/"


@dataclass(frozen=True)
class Pool:
    """One IPPool as IPAM uses it (validated, Calico's defaults filled in): which hosts and uses it
    serves, and how it divides into blocks of `block_size`. Immutable."""

    name: str
    cidr: IPNetwork
    block_size: int
    node_selector: str = "all()"
    disabled: bool = False
    allowed_uses: tuple[str, ...] = ("Workload", "Tunnel")
    address_space: str | None = None  # our extension: None is the default, global space

    def __str__(self) -> str:
        return f"{self.name} ({self.cidr})"

    @property
    def version(self) -> int:
        return self.cidr.version

    @property
    def num_blocks(self) -> int:
        return 1 << (self.block_size - self.cidr.prefixlen)

    @property
    def block_addresses(self) -> int:
        return 1 << (self.cidr.max_prefixlen - self.block_size)

    def selects(self, node_labels: dict[str, str]) -> bool:
        """True if this pool's nodeSelector matches a Node with these labels."""
        if self.node_selector.strip() in ("", "all()"):
            return True
        from calico.selector import parse

        return parse(self.node_selector).evaluate(node_labels)

    def usable(self, node_labels: dict[str, str], use: str) -> bool:
        return not self.disabled and use in self.allowed_uses and self.selects(node_labels)

    def block_at(self, index: int) -> IPNetwork:
        base = int(self.cidr.network_address) + index * self.block_addresses
        return ipaddress.ip_network((base, self.block_size))

    def block_for(self, ip: IPAddress) -> IPNetwork:
        """The block CIDR (of this pool's block size) that holds `ip`."""
        return ipaddress.ip_network((ip, self.block_size), strict=False)

    def blocks_from(self, host: str) -> Iterator[IPNetwork]:
        """Every block of the pool once, starting at `host`'s own starting block."""
        n = self.num_blocks
        if self.block_size == self.cidr.max_prefixlen:
            start = random.randrange(n)  # one-address blocks: no point in a per-host order
        else:
            start = zlib.crc32(host.encode()) % n
        for i in range(n):
            yield self.block_at((start + i) % n)

    @classmethod
    def from_resource(cls, doc: dict) -> Pool:
        """From an IPPool resource document. Raises ValueError (calico.api.ValidationError)."""
        from calico.api import validate

        res = validate(doc)
        spec = res.spec  # type: ignore[attr-defined]
        return cls(name=res.name, cidr=ipaddress.ip_network(spec.cidr),
                   block_size=int(spec.blockSize), node_selector=spec.nodeSelector or "all()",
                   disabled=bool(spec.disabled),
                   allowed_uses=tuple(spec.allowedUses or ("Workload", "Tunnel")),
                   address_space=spec.addressSpace)


# Validated pools by (key, value): validation costs far more than listing, and a stored pool
# only changes when its text does. Bounded: cleared when it grows past _PARSED_MAX entries.
_parsed: dict[tuple[str, str], Pool | None] = {}
_PARSED_MAX = 4096


def read_pools(backend: Backend, space: str | None = None) -> list[Pool]:
    """Every valid IPPool of address space `space` (enabled or not), by name."""
    return [pool for pool, _key, _rev in read_pool_revisions(backend, space)]


def read_pool_revisions(backend: Backend, space: str | None = None
                        ) -> list[tuple[Pool, str, int]]:
    """Every valid IPPool of address space `space` (None: the default space) with its key
    and mod revision, by name. Pools of other spaces are not seen: a space's addresses come
    only from its own pools."""
    kvs, _ = backend.list(POOLS_PREFIX)
    if len(_parsed) > _PARSED_MAX:
        _parsed.clear()
    pools = []
    for kv in kvs:
        cache_key = (kv.key, kv.value)
        if cache_key not in _parsed:
            try:
                _parsed[cache_key] = Pool.from_resource(json.loads(kv.value))
            except ValueError as err:
                log.warning("ignoring IP pool at %s: %s", kv.key, err)
                _parsed[cache_key] = None
        pool = _parsed[cache_key]
        if pool is not None and pool.address_space == space:
            pools.append((pool, kv.key, kv.mod_revision))
    return sorted(pools, key=lambda p: p[0].name)


def node_labels(backend: Backend, host: str) -> dict[str, str] | None:
    """The labels of the Node resource named `host`; None if there is no such Node."""
    kv = backend.get(NODES_PREFIX + host)
    if kv is None:
        return None
    try:
        return dict((json.loads(kv.value).get("metadata") or {}).get("labels") or {})
    except (ValueError, AttributeError):
        return {}


def node_exists(backend: Backend, host: str) -> bool:
    return backend.get(NODES_PREFIX + host) is not None


def pool_for(pools: list[Pool], ip: IPAddress) -> Pool | None:
    for p in pools:
        if ip in p.cidr:
            return p
    return None
