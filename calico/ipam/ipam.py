"""`IPAM`: allocate and release workload addresses for one host.

Auto-assignment for a host, per IP version, in Calico's order (libcalico-go/lib/ipam/ipam.go):

1. **Affine blocks.** Addresses come from blocks affine to this host first (its affinities,
   `/calico/ipam/v2/host/<host>/...`, are a hint; the block's own `affinity` field decides).
2. **Claim.** When they are full, the host claims a new block of a usable pool (the first free
   block in its own walk of the pool, see pools.py) — unless `autoAllocateBlocks` is off or the
   host already holds `maxBlocksPerHost` blocks.
3. **Borrow.** When no block can be claimed, single addresses are borrowed from other hosts'
   blocks with free space — unless `strictAffinity` is set: then the request fails with
   `StrictAffinityError`.

A request is all or nothing: if it cannot be met in full, what was taken is released again and
`PoolExhaustedError` names the pools that were tried. Each allocation carries a handle id (the
workload's id) and attributes (Calico's `secondary` map: `node`, `namespace`, `pod`, ...); the
handle record counts its addresses per block, written in the same transaction as the block.

Every block write is compare-and-swap on the block's mod revision (and the handle's), retried
with jitter (store.py). The block text and revision last seen are cached per block: a stale
cache costs one failed CAS and a re-read, never a wrong answer.

Public API (all return data; nothing prints):

    ipam = IPAM(backend, "node-1")        # refresh_seconds=5.0: see context.py
    v4, v6 = ipam.auto_assign(1, 1, "wl-1", {"node": "node-1", "namespace": "ns", "pod": "p"})
    ipam.assign_ip("10.65.3.7", "port-1", attrs)      # a given address (fixed IPs)
    ipam.release_ips(["10.65.3.7"])                      # -> addresses that were not allocated
    ipam.release_by_handle("wl-1")                       # -> addresses released
    ipam.release_host_affinities("node-2")               # -> block CIDRs released
    ipam.get_assignment("10.65.0.1")                     # -> Assignment | None
    ipam.get_assignment_attributes(ip)                   # -> (attrs, handle id)
    ipam.get_config() / set_config(IPAMConfig(...))      # strictAffinity, maxBlocksPerHost
    ipam.usage(), ipam.blocks(), ipam.check(grace=60), ipam.fix(report)   (see report.py)

Errors (errors.py) are `IPAMError`s with one-line messages: NoPoolsError, PoolExhaustedError
(and StrictAffinityError) with `.pools`, AddressInUseError, NotInPoolError.

Address spaces (our extension): `IPAM(..., address_space=S)` allocates only from the pools of
space S and keeps its blocks, affinities and handles under S's keys (ipamkeys.SpaceKeys), so
an address is unique within its space and may repeat in another; the default (None) is
Calico's IPAM with Calico's keys, blind to every space's pools.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from calico.datastore.kv import Backend, Compare

from . import release as _release
from . import report as _report
from .block import AllocationBlock, IPNetwork
from .context import AllocationContext, ContextCache
from .errors import (
    AddressInUseError,
    ConflictRetriesExhausted,
    IPAMError,
    NoPoolsError,
    NotInPoolError,
    PoolExhaustedError,
    StrictAffinityError,
)
from .model import STATE_CONFIRMED, IPAMConfig, IPAMHandle, SpaceKeys
from .pools import Pool, pool_for, read_pools
from .store import CONFLICTS, MAX_RETRIES, BlockClaimConflict, HandleState, IPAMStore


class _ContextChanged(Exception):
    """A pool, the Node or the IPAM config changed under an allocation: start it again."""


Guard = Callable[[IPNetwork, bool, bool], "list[Compare] | None"]


@dataclass(frozen=True, slots=True)
class _Cached:
    """A block as this process last read or wrote it."""

    text: str
    rev: int
    host: str | None
    free: int


@dataclass(frozen=True)
class Assignment:
    """Who holds an address: `get_assignment(ip)`."""

    ip: str
    block: str
    block_affinity: str | None
    handle_id: str | None
    attrs: dict[str, str]
    sequence: int


class IPAM:
    """Allocates and releases addresses for one host (see above): every request is all or nothing
    and every write compare-and-swap, so instances in other threads, processes and hosts never
    hand out an address twice. One instance serves one thread at a time (unlocked caches)."""

    def __init__(self, backend: Backend, hostname: str, *, max_retries: int = MAX_RETRIES,
                 rng: random.Random | None = None, refresh_seconds: float = 5.0,
                 address_space: str | None = None) -> None:
        self.backend = backend
        self.hostname = hostname
        self.address_space = address_space  # None: the default space (Calico's keys)
        self.rng = rng or random.Random()
        self.store = IPAMStore(backend, max_retries=max_retries, rng=self.rng,
                               keys=SpaceKeys(address_space))
        self._cache: dict[IPNetwork, _Cached] = {}
        self._context = ContextCache(backend, hostname, refresh_seconds,
                                     space=address_space)

    def _of_space(self) -> str:
        return "" if self.address_space is None else f' of address space "{self.address_space}"'

    # ---- configuration and pools ------------------------------------------------------------

    def get_config(self) -> IPAMConfig:
        return self.store.get_config()

    def set_config(self, config: IPAMConfig) -> None:
        self.store.set_config(config)
        self._context.invalidate()

    def pools(self, version: int, names: Iterable[str] | None = None,
              use: str = "Workload") -> list[Pool]:
        """The pools this host may allocate from for `use`, in name order. With `names`
        (pool names or CIDRs), only those, and each must exist and be usable."""
        return self._context.get(fresh=True).usable_pools(version, names, use)

    # ---- assignment -------------------------------------------------------------------------

    def auto_assign(self, num_v4: int, num_v6: int, handle_id: str,
                    attrs: dict[str, str] | None = None, pools: Iterable[str] | None = None,
                    use: str = "Workload") -> tuple[list[str], list[str]]:
        """Allocate `num_v4` IPv4 and `num_v6` IPv6 addresses for `handle_id`; all or none."""
        attrs = dict(attrs or {})
        pools = list(pools) if pools is not None else None
        handle = HandleState(handle_id, IPAMHandle(), 0, known=False)
        for attempt in range(3):
            before = self._context.cached()
            ctx = self._context.get(fresh=attempt > 0)
            v4: list[str] = []
            try:
                if num_v4:
                    v4 = self._auto_assign(ctx, 4, num_v4, handle, attrs, pools, use)
                v6 = (self._auto_assign(ctx, 6, num_v6, handle, attrs, pools, use)
                      if num_v6 else [])
                return v4, v6
            except _ContextChanged:
                if v4:
                    self.release_ips(v4)
            except (NoPoolsError, PoolExhaustedError):
                if v4:
                    self.release_ips(v4)
                if ctx is not before:  # read just now: the answer stands
                    raise
            except IPAMError:
                if v4:
                    self.release_ips(v4)
                raise
        raise ConflictRetriesExhausted(f"assigning addresses to {handle_id}: the IP pools, "
                                       f"the Node or the IPAM config kept changing")

    def _auto_assign(self, ctx: AllocationContext, version: int, num: int,
                     handle: HandleState, attrs: dict[str, str], names: list[str] | None,
                     use: str) -> list[str]:
        pools = ctx.usable_pools(version, names, use)
        config = ctx.config
        chosen = {p.name for p in pools}

        def guard(cidr: IPNetwork, fresh: bool, borrowing: bool) -> list[Compare] | None:
            """Compares for a write to block `cidr`, or None if it may no longer be used."""
            c = self._context.get(fresh=True) if fresh else ctx
            pool = pool_for([p for p in c.pools if p.name in chosen], cidr.network_address)
            if pool is None or not pool.usable(c.labels, use) or (
                    borrowing and c.config.strict_affinity):
                if c is ctx:
                    return None
                raise _ContextChanged()  # start again from what the datastore says now
            return c.guards(pool)

        ips: list[str] = []
        # Blocks this process already knows to be ours and free: no need to list affinities.
        for cidr in [c for c, e in self._cache.items() if e.free and e.host == self.hostname
                     and c.version == version and pool_for(pools, c.network_address)]:
            ips += self._assign_from(cidr, num - len(ips), handle, attrs, guard,
                                     affine_only=True)
            if len(ips) == num:
                return ips
        affine = self._affine_blocks(version, pools)
        for cidr in affine:
            ips += self._assign_from(cidr, num - len(ips), handle, attrs, guard,
                                     affine_only=True)
            if len(ips) == num:
                return ips
        claims = len(affine)
        while len(ips) < num and config.auto_allocate_blocks and (
                not config.max_blocks_per_host or claims < config.max_blocks_per_host):
            cidr = self._claim_new_block(pools)
            if cidr is None:
                break
            claims += 1
            ips += self._assign_from(cidr, num - len(ips), handle, attrs, guard,
                                     affine_only=True)
        for _ in range(3):  # the free addresses a pass saw may be taken by the time it tries
            if len(ips) == num or config.strict_affinity:
                break
            got = self._borrow(version, pools, num - len(ips), handle, attrs, guard)
            if got is None:
                break
            ips += got
        if len(ips) < num:
            if ips:
                self.release_ips(ips)
            raise self._exhausted(version, num, len(ips), pools, config.strict_affinity)
        return ips

    def _exhausted(self, version: int, num: int, free: int, pools: list[Pool],
                   strict_affinity: bool) -> PoolExhaustedError:
        names_text = ", ".join(str(p) for p in pools)
        msg = (f"cannot assign {num} IPv{version} address(es) to host {self.hostname}: "
               f"only {free} free in IP pool(s) {names_text}")
        if strict_affinity:
            return StrictAffinityError(msg + " for this host's blocks, and strict affinity "
                                       "forbids borrowing from other hosts' blocks",
                                       [p.name for p in pools])
        return PoolExhaustedError(msg, [p.name for p in pools])

    def _affine_blocks(self, version: int, pools: list[Pool]) -> list[IPNetwork]:
        out = []
        for _host, cidr, aff, rev in self.store.list_affinities(self.hostname, version):
            if pool_for(pools, cidr.network_address) is None:
                continue
            if aff.state != STATE_CONFIRMED:
                # A claim that crashed (or is in flight in another process): adopt the block if
                # it is already ours, otherwise leave it to the claimer / check().
                got = self._block(cidr)
                if got is None or got[0].host != self.hostname:
                    continue
                try:
                    self.store.confirm_affinity(self.hostname, cidr, rev)
                except CONFLICTS:
                    continue
            out.append(cidr)
        return out

    def _block(self, cidr: IPNetwork, fresh: bool = False) -> tuple[AllocationBlock, int] | None:
        cached = None if fresh else self._cache.get(cidr)
        if cached is not None:
            return AllocationBlock.from_json(cached.text), cached.rev
        got = self.store.get_block(cidr)
        if got is None:
            self._cache.pop(cidr, None)
            return None
        self._remember(got[0], got[1])
        return got

    def _remember(self, block: AllocationBlock, rev: int, text: str | None = None) -> None:
        self._cache[block.cidr] = _Cached(text or block.to_json(), rev, block.host,
                                          block.num_free)

    def _assign_from(self, cidr: IPNetwork, num: int, handle: HandleState,
                     attrs: dict[str, str], guard: Guard, *, affine_only: bool) -> list[str]:
        """Up to `num` addresses from one block, CAS-retried; [] if it has none for us.
        The first attempt trusts the cache (block and handle); after a conflict both are
        re-read."""
        attempts = [0]

        def attempt() -> list[str]:
            fresh = attempts[0] > 0
            attempts[0] += 1
            cached = self._cache.get(cidr)
            if not fresh and cached is not None and (
                    not cached.free or (cached.host == self.hostname) != affine_only):
                return []  # known full, or not the kind of block we are looking for
            got = self._block(cidr, fresh=fresh)
            if got is None:
                return []
            block, rev = got
            if (block.host == self.hostname) != affine_only or not block.num_free:
                return []
            # The block and handle are the usual cause of a conflict; the context is re-read
            # (three requests) only when re-reading those did not help.
            guards = guard(cidr, attempts[0] > 2, not affine_only)
            if guards is None:
                return []
            if fresh and not handle.known:
                self._reload_handle(handle)
            ips = block.auto_assign(num, handle.handle_id, attrs)
            return self._commit_assignment(block, rev, handle, len(ips), ips, guards)

        return self.store.retry(attempt, f"assigning from block {cidr}")

    def _reload_handle(self, handle: HandleState) -> None:
        fresh = self.store.get_handle(handle.handle_id)
        handle.value, handle.rev, handle.known = fresh.value, fresh.rev, True

    def _commit_assignment(self, block: AllocationBlock, rev: int, handle: HandleState,
                           count: int, ips: list[str], guards: list[Compare]) -> list[str]:
        before = dict(handle.value.block)
        handle.value.add(str(block.cidr), count)
        try:
            new_rev = self.store.commit(block, rev, [handle], guards)
        except Exception:
            handle.value.block = before
            self._cache.pop(block.cidr, None)
            handle.known = False  # re-read it with the block on the next attempt
            raise
        handle.rev, handle.known = new_rev, True
        self._remember(block, new_rev, self.store.last_text)
        return ips

    def _claim_new_block(self, pools: list[Pool]) -> IPNetwork | None:
        """Claim a block no host holds yet; None when every block of the pools exists."""
        for _ in range(self.store.max_retries):
            existing = {b.cidr for b, _ in self.store.list_blocks(pools[0].version)}
            cidr = next((c for p in pools for c in _free_blocks(p, self.hostname, existing)),
                        None)
            if cidr is None:
                return None
            try:
                block, rev = self.store.claim_block(self.hostname, cidr)
            except (BlockClaimConflict, *CONFLICTS):
                continue
            self._remember(block, rev)
            return cidr
        return None

    def _borrow(self, version: int, pools: list[Pool], num: int, handle: HandleState,
                attrs: dict[str, str], guard: Guard) -> list[str] | None:
        """Up to `num` addresses from other hosts' blocks; None if none had any free."""
        candidates = [b.cidr for b, _ in self.store.list_blocks(version)
                      if b.num_free and b.host != self.hostname
                      and pool_for(pools, b.cidr.network_address) is not None]
        if not candidates:
            return None
        self.rng.shuffle(candidates)  # spread borrowers over the blocks
        ips: list[str] = []
        for cidr in candidates:
            self._cache.pop(cidr, None)
            ips += self._assign_from(cidr, num - len(ips), handle, attrs, guard,
                                     affine_only=False)
            if len(ips) == num:
                break
        return ips

    def assign_ip(self, ip: str, handle_id: str, attrs: dict[str, str] | None = None) -> None:
        """Allocate exactly `ip` (fixed IPs, explicit CNI addresses). Raises NotInPoolError if
        it is outside every enabled pool, AddressInUseError if it is taken."""
        addr = ipaddress.ip_address(ip)
        ctx = self._context.get(fresh=True)
        pool = pool_for([p for p in ctx.pools if not p.disabled], addr)
        if pool is None:
            raise NotInPoolError(f"address {addr} is not in any enabled IP pool"
                                 + self._of_space())
        cidr = _release.block_cidr(self.store, addr, pool)
        handle = HandleState(handle_id, IPAMHandle(), 0, known=False)
        attrs = dict(attrs or {})
        config = ctx.config

        def attempt() -> None:
            got = self.store.get_block(cidr)
            if got is None:
                if not config.auto_allocate_blocks:
                    raise NotInPoolError(f"address {addr}: block {cidr} does not exist and "
                                         "autoAllocateBlocks is off")
                try:
                    got = self.store.claim_block(self.hostname, cidr)
                except BlockClaimConflict:
                    got = self.store.get_block(cidr)
                    if got is None:
                        raise
            block, rev = got
            if config.strict_affinity and block.host != self.hostname:
                raise StrictAffinityError(
                    f"address {addr} is in block {cidr} of {block.affinity or 'no host'}: "
                    f"strict affinity forbids host {self.hostname} to use it", [pool.name])
            if not handle.known:
                self._reload_handle(handle)
            try:
                block.assign(addr, handle_id, attrs)
            except AddressInUseError as err:
                raise AddressInUseError(err.ip, err.handle_id, self.address_space) from None
            self._commit_assignment(block, rev, handle, 1, [str(addr)], ctx.guards(pool))

        self.store.retry(attempt, f"assigning {addr}")

    # ---- release ----------------------------------------------------------------------------

    def release_ips(self, ips: Iterable[str],
                    expect: dict[str, tuple[str | None, int]] | None = None) -> list[str]:
        """Release addresses; returns those that were not allocated. With `expect`
        (ip -> (handle_id, sequence)), an address reallocated since then is left alone and
        also returned."""
        return _release.release_ips(self.store, read_pools(self.backend, self.address_space),
                                    ips, expect,
                                    self._remember)

    def release_by_handle(self, handle_id: str) -> list[str]:
        """Release every address held by `handle_id` (and delete the handle)."""
        return _release.release_by_handle(self.store, handle_id, self._remember)

    def release_affinity(self, cidr: str | IPNetwork, host: str | None = None,
                         require_empty: bool = False) -> bool:
        """Release one block affinity of `host` (default: this host)."""
        net = ipaddress.ip_network(cidr)
        host = host or self.hostname
        self._cache.pop(net, None)
        return self.store.retry(
            lambda: self.store.release_affinity(host, net, require_empty=require_empty),
            f"releasing affinity of {host} for {net}")

    def release_host_affinities(self, host: str | None = None,
                                require_empty: bool = False) -> list[str]:
        """Release every block affinity of `host` (default: this host): empty blocks are
        deleted, the others lose their affinity (their addresses stay allocated). With
        `require_empty`, non-empty blocks are skipped. Returns the CIDRs released."""
        host = host or self.hostname
        released = []
        for _h, cidr, _aff, _rev in self.store.list_affinities(host):
            try:
                if self.release_affinity(cidr, host, require_empty):
                    released.append(str(cidr))
            except IPAMError:
                if not require_empty:
                    raise
        return released

    # ---- queries and maintenance ------------------------------------------------------------

    def get_assignment(self, ip: str) -> Assignment | None:
        addr = ipaddress.ip_address(ip)
        pool = pool_for(read_pools(self.backend, self.address_space), addr)
        try:
            got = self.store.get_block(_release.block_cidr(self.store, addr, pool))
        except NotInPoolError:
            return None
        if got is None:
            return None
        alloc = got[0].allocation(addr)
        if alloc is None:
            return None
        return Assignment(alloc.ip, str(got[0].cidr), got[0].affinity, alloc.handle_id,
                          alloc.attrs, alloc.sequence)

    def get_assignment_attributes(self, ip: str) -> tuple[dict[str, str], str | None]:
        """Calico's GetAssignmentAttributes: (attributes, handle id) of an allocated address.
        Raises IPAMError if it is not allocated."""
        a = self.get_assignment(ip)
        if a is None:
            raise IPAMError(f"address {ip} is not assigned")
        return a.attrs, a.handle_id

    def usage(self) -> list[_report.PoolUsage]:
        return _report.usage(self.backend)

    def blocks(self) -> list[_report.BlockInfo]:
        return _report.blocks(self.backend)

    def check(self, grace: float = 60.0) -> _report.CheckReport:
        """Leaks and inconsistencies (see report.py); allocations younger than `grace`
        seconds (by their `timestamp` attribute) are not reported as leaks."""
        return _report.check(self.backend, grace)

    def fix(self, report: _report.CheckReport) -> _report.FixResult:
        return _report.fix(self, report)


def _free_blocks(pool: Pool, host: str, existing: set[IPNetwork]) -> Iterator[IPNetwork]:
    return (c for c in pool.blocks_from(host) if c not in existing)
