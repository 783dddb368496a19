"""What an allocation depends on besides its block: the pools, the host's Node labels and the
IPAM config — read together, with their mod revisions, and reused for a few seconds.

Reading them costs three requests per allocation, three times the cost of the allocation's
own write on etcd. Instead, `ContextCache` keeps them for `refresh_seconds`, and every block
write made from a cached context carries compares on the revisions it used: the IPAMConfig
key, the Node key, and the IPPool the block belongs to (`AllocationContext.guards(pool)`).
If any of them changed — a pool disabled or deleted, its nodeSelector or the Node's labels
edited, strict affinity switched on — the write fails like any CAS conflict, the context is
re-read, and the decision is taken again. A cached context can only be late in noticing a
*new* pool (a key it holds no compare on); that is what the periodic refresh, and a refresh
before reporting exhaustion, are for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from calico.datastore.kv import Backend, Compare

from . import model
from .errors import NoPoolsError
from .model import IPAMConfig
from .pools import NODES_PREFIX, Pool, read_pool_revisions


@dataclass(frozen=True)
class AllocationContext:
    read_at: float
    pools: list[Pool]  # every valid pool, by name
    pool_keys: dict[str, tuple[str, int]]  # pool name -> (key, mod revision)
    labels: dict[str, str]  # the host's Node labels ({} without a Node)
    node_rev: int  # 0: no Node
    config: IPAMConfig
    config_rev: int  # 0: no stored config (defaults)
    host: str

    def guards(self, pool: Pool | None) -> list[Compare]:
        """Compares that hold as long as the decisions taken from this context hold."""
        out = [Compare(model.CONFIG_KEY, self.config_rev),
               Compare(NODES_PREFIX + self.host, self.node_rev)]
        if pool is not None:
            key, rev = self.pool_keys[pool.name]
            out.append(Compare(key, rev))
        return out

    def usable_pools(self, version: int, names: Iterable[str] | None,
                     use: str) -> list[Pool]:
        """The pools the host may allocate from for `use`, in name order. With `names`
        (pool names or CIDRs), only those, and each must exist and be usable."""
        pools = [p for p in self.pools if p.version == version]
        if names is None:
            usable = [p for p in pools if p.usable(self.labels, use)]
            if not usable:
                raise NoPoolsError(f"no enabled IPv{version} IP pool may be used by host "
                                   f"{self.host} for {use} addresses")
            return usable
        names = list(names)
        chosen = []
        for name in names:
            match = [p for p in self.pools if name in (p.name, str(p.cidr))]
            if not match:
                if _version_of(name) not in (None, version):
                    continue
                raise NoPoolsError(f"IP pool {name} does not exist")
            pool = match[0]
            if pool.version != version:
                continue
            if pool.disabled:
                raise NoPoolsError(f"IP pool {pool} is disabled")
            if use not in pool.allowed_uses:
                raise NoPoolsError(f"IP pool {pool} does not allow {use} addresses")
            if not pool.selects(self.labels):
                raise NoPoolsError(f"IP pool {pool} nodeSelector {pool.node_selector!r} "
                                   f"does not select host {self.host}")
            chosen.append(pool)
        if not chosen:
            raise NoPoolsError(f"none of the IP pools {', '.join(names)} is IPv{version}")
        return chosen


def read_context(backend: Backend, host: str, clock: Callable[[], float] = time.monotonic,
                 space: str | None = None) -> AllocationContext:
    pools = read_pool_revisions(backend, space)
    node = backend.get(NODES_PREFIX + host)
    labels: dict[str, str] = {}
    if node is not None:
        try:
            labels = dict((json.loads(node.value).get("metadata") or {}).get("labels") or {})
        except (ValueError, AttributeError):
            labels = {}
    cfg = backend.get(model.CONFIG_KEY)
    return AllocationContext(
        read_at=clock(), pools=[p for p, _, _ in pools],
        pool_keys={p.name: (key, rev) for p, key, rev in pools}, labels=labels,
        node_rev=node.mod_revision if node else 0,
        config=IPAMConfig.from_json(cfg.value) if cfg else IPAMConfig(),
        config_rev=cfg.mod_revision if cfg else 0, host=host)


class ContextCache:
    """The host's AllocationContext, re-read when older than `refresh_seconds`, when asked `fresh`
    or after `invalidate()`; a stale one is safe because every write carries its guards.
    Unlocked: one per IPAM instance."""

    def __init__(self, backend: Backend, host: str, refresh_seconds: float,
                 clock: Callable[[], float] = time.monotonic, space: str | None = None) -> None:
        self.backend, self.host, self.space = backend, host, space
        self.refresh_seconds, self.clock = refresh_seconds, clock
        self._ctx: AllocationContext | None = None

    def get(self, fresh: bool = False) -> AllocationContext:
        ctx = self._ctx
        if fresh or ctx is None or self.clock() - ctx.read_at >= self.refresh_seconds:
            ctx = self._ctx = read_context(self.backend, self.host, self.clock,
                                                   self.space)
        return ctx

    def cached(self) -> AllocationContext | None:
        """The context `get()` would return without reading, if any."""
        ctx = self._ctx
        if ctx is None or self.clock() - ctx.read_at >= self.refresh_seconds:
            return None
        return ctx

    def invalidate(self) -> None:
        self._ctx = None


def _version_of(text: str) -> int | None:
    import ipaddress

    try:
        return ipaddress.ip_network(text, strict=False).version
    except ValueError:
        return None
