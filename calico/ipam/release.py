"""Returning addresses to their blocks: by address (`release_ips`) or by handle
(`release_by_handle`), for `IPAM`.

Each block touched is one compare-and-swap write (store.commit) of the block and of the
handles whose per-block counts it changes, retried on conflict (store.retry); the written
block is handed to `remember` (IPAM's block cache). A block that is left empty and has no
affinity is deleted by that write; a handle left with no addresses is deleted with it.
`block_cidr` finds the block holding an address (assignment uses it too).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from .block import AllocationBlock, IPAddress, IPNetwork
from .errors import NotInPoolError
from .pools import Pool, pool_for
from .store import IPAMStore

Remember = Callable[[AllocationBlock, int], None]
Expect = dict[str, tuple[str | None, int]]  # ip -> (handle id, sequence) when it was read


def block_cidr(store: IPAMStore, addr: IPAddress, pool: Pool | None = None) -> IPNetwork:
    """The block that holds (or would hold) `addr`: by its pool's block size if that block
    exists, else by searching the stored blocks (pools can change; blocks stay)."""
    if pool is not None:
        cidr = pool.block_for(addr)
        if store.get_block(cidr) is not None:
            return cidr
    for block, _ in store.list_blocks(addr.version):
        if addr in block.cidr:
            return block.cidr
    if pool is None:
        raise NotInPoolError(f"address {addr} is not in any IPAM block")
    return pool.block_for(addr)


def release_ips(store: IPAMStore, pools: list[Pool], ips: Iterable[str],
                expect: Expect | None, remember: Remember) -> list[str]:
    """Release addresses; returns those that were not allocated. With `expect`
    (ip -> (handle_id, sequence)), an address reallocated since then is left alone and
    also returned."""
    by_block: dict[IPNetwork, list[str]] = {}
    skipped: list[str] = []
    for ip in ips:
        addr = ipaddress.ip_address(ip)
        try:
            cidr = block_cidr(store, addr, pool_for(pools, addr))
        except NotInPoolError:
            skipped.append(str(addr))
            continue
        by_block.setdefault(cidr, []).append(str(addr))
    for cidr, members in by_block.items():
        skipped += _release_from(store, cidr, members, expect, remember)
    return skipped


def _release_from(store: IPAMStore, cidr: IPNetwork, ips: list[str], expect: Expect | None,
                  remember: Remember) -> list[str]:
    def attempt() -> list[str]:
        got = store.get_block(cidr)
        if got is None:
            return list(ips)
        block, rev = got
        result = block.release(ips, expect)
        if result.released:
            handles = [store.get_handle(h) for h in result.by_handle]
            for h in handles:
                h.value.add(str(cidr), -result.by_handle[h.handle_id])
            new_rev = store.commit(block, rev, handles)
            remember(block, new_rev)
        return result.not_allocated + result.changed

    return store.retry(attempt, f"releasing from block {cidr}")


def release_by_handle(store: IPAMStore, handle_id: str, remember: Remember) -> list[str]:
    """Release every address held by `handle_id` (and delete the handle)."""
    handle = store.get_handle(handle_id)
    released: list[str] = []
    for cidr_text in list(handle.value.block):
        cidr = ipaddress.ip_network(cidr_text)

        def attempt(cidr: IPNetwork = cidr) -> list[str]:
            got = store.get_block(cidr)
            h = store.get_handle(handle_id)
            if got is None:  # the handle outlived its block: forget the block
                if h.value.block.pop(str(cidr), None) is not None:
                    store.write_handle(h)
                return []
            block, rev = got
            result = block.release_by_handle(handle_id)
            h.value.add(str(cidr), -result.by_handle.get(handle_id, 0))
            h.value.block.pop(str(cidr), None)  # whatever the count said, none are left
            new_rev = store.commit(block, rev, [h] if h.rev else [])
            remember(block, new_rev)
            return result.released

        released += store.retry(attempt, f"releasing handle {handle_id}")
    return released
