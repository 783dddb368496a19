"""IPAM's reads and writes: every change is compare-and-swap on the mod revisions it read.

`IPAMStore` turns the KV contract (`calico.datastore.kv.Backend`) into IPAM operations:

- `commit(block, rev, handles)` writes a block and the handles whose counts changed with it in
  *one* transaction guarded by all their revisions, so the blocks' bitmaps and the handles
  always agree, even if the writer dies. (Calico writes the handle first and the block second;
  one transaction gives the same guarantee without the window.) A block left empty and with no
  affinity is deleted in the same transaction, as Calico does for borrowed blocks.
- `claim_block(host, cidr)` follows Calico's claim protocol (ipam_block_reader_writer.go):
  affinity `pending` -> block created with `affinity: host:<host>` -> affinity `confirmed`.
  A crash after any step is recoverable: a pending affinity for an existing block of ours is
  confirmed by the next claim (or the next allocation); one for a block another host won is
  deleted; one with no block is reused by the next claim of that CIDR.
- `release_affinity(host, cidr)`: affinity `pendingDeletion` -> block deleted if empty, else its
  affinity removed -> affinity deleted.

`retry(fn)` runs a read-modify-CAS step until it stops conflicting: at most `max_retries`
times, sleeping a random, growing jitter between attempts so that writers racing for the same
block spread out instead of colliding again in lockstep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from calico.datastore.kv import (
    Backend,
    Compare,
    Delete,
    KeyExists,
    KeyNotFound,
    Put,
    RevisionConflict,
)

from . import model
from .block import AllocationBlock, IPNetwork
from .errors import BlockNotEmptyError, ConflictRetriesExhausted, IPAMError
from .model import BlockAffinity, IPAMConfig, IPAMHandle

T = TypeVar("T")

MAX_RETRIES = 100  # Calico's datastoreRetries


class Conflict(Exception):
    """A compare-and-swap lost a race: re-read and try again."""


CONFLICTS = (Conflict, RevisionConflict, KeyExists, KeyNotFound)  # what `retry` retries


class BlockClaimConflict(IPAMError):
    """Another host created the block this host was claiming."""


@dataclass
class HandleState:
    """A handle as last read (or assumed absent: rev 0), plus the change to write with it."""

    handle_id: str
    value: IPAMHandle
    rev: int
    known: bool = True  # False: not read yet, assumed absent


class IPAMStore:
    """IPAM's reads and writes on one backend (see above): every write is guarded by the revisions
    it read and raises a conflict rather than overwrite; `retry` re-runs a step until it stops
    conflicting. Unlocked (`last_text`, `conflicts`): one per IPAM instance."""

    def __init__(self, backend: Backend, *, max_retries: int = MAX_RETRIES,
                 rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep,
                 keys: model.SpaceKeys = model.DEFAULT_KEYS) -> None:
        self.backend = backend
        self.keys = keys  # the address space's key layout (the default space: Calico's)
        self.max_retries = max_retries
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.conflicts = 0  # CAS conflicts seen (for benchmarks and tests)
        self.last_text: str | None = None  # the block JSON the last commit wrote

    def retry(self, fn: Callable[[], T], what: str) -> T:
        for attempt in range(self.max_retries):
            try:
                return fn()
            except CONFLICTS:
                self.conflicts += 1
                self.sleep(self.rng.uniform(0, 0.001 * min(attempt + 1, 20)))
        raise ConflictRetriesExhausted(
            f"{what}: gave up after {self.max_retries} compare-and-swap conflicts")

    # ---- reads ------------------------------------------------------------------------------

    def get_block(self, cidr: IPNetwork) -> tuple[AllocationBlock, int] | None:
        kv = self.backend.get(self.keys.block_key(cidr))
        return (AllocationBlock.from_json(kv.value), kv.mod_revision) if kv else None

    def list_blocks(self, version: int | None = None) -> list[tuple[AllocationBlock, int]]:
        kvs, _ = self.backend.list(self.keys.blocks_prefix(version))
        return [(AllocationBlock.from_json(kv.value), kv.mod_revision) for kv in kvs
                if self.keys.parse_block_key(kv.key) is not None]

    def get_handle(self, handle_id: str) -> HandleState:
        kv = self.backend.get(self.keys.handle_key(handle_id))
        if kv is None:
            return HandleState(handle_id, IPAMHandle(), 0)
        return HandleState(handle_id, IPAMHandle.from_json(kv.value), kv.mod_revision)

    def list_handles(self) -> dict[str, tuple[IPAMHandle, int]]:
        kvs, _ = self.backend.list(self.keys.handles_prefix)
        out = {}
        for kv in kvs:
            hid = self.keys.parse_handle_key(kv.key)
            if hid is not None:
                out[hid] = (IPAMHandle.from_json(kv.value), kv.mod_revision)
        return out

    def list_affinities(self, host: str | None = None, version: int | None = None
                        ) -> list[tuple[str, IPNetwork, BlockAffinity, int]]:
        """(host, block CIDR, affinity, mod revision) for every affinity under the prefix."""
        kvs, _ = self.backend.list(self.keys.affinities_prefix(host, version))
        out = []
        for kv in kvs:
            parsed = self.keys.parse_affinity_key(kv.key)
            if parsed is not None and (version is None or parsed[1].version == version):
                out.append((parsed[0], parsed[1], BlockAffinity.from_json(kv.value),
                            kv.mod_revision))
        return out

    def get_config(self) -> IPAMConfig:
        kv = self.backend.get(model.CONFIG_KEY)
        return IPAMConfig.from_json(kv.value) if kv else IPAMConfig()

    def set_config(self, config: IPAMConfig) -> None:
        self.backend.put(model.CONFIG_KEY, config.to_json())

    # ---- block + handles, atomically --------------------------------------------------------

    def commit(self, block: AllocationBlock, rev: int, handles: list[HandleState],
               guards: Sequence[Compare] = ()) -> int:
        """Write `block` (bumping its sequence number; deleting it if it is empty and has no
        affinity) and `handles` (deleting empty ones), if none of them changed since read and
        every guard holds. Returns the new store revision; raises Conflict otherwise."""
        key = self.keys.block_key(block.cidr)
        compares = [Compare(key, rev), *guards]
        ops: list[Put | Delete] = []
        self.last_text = None
        if block.affinity is None and block.empty():
            ops.append(Delete(key))
        else:
            block.bump()
            self.last_text = block.to_json()
            ops.append(Put(key, self.last_text))
        for h in handles:
            hkey = self.keys.handle_key(h.handle_id)
            compares.append(Compare(hkey, h.rev))
            if not h.value.empty:
                ops.append(Put(hkey, h.value.to_json()))
            elif h.rev:
                ops.append(Delete(hkey))
        new_rev = self.backend.txn(compares, ops)
        if new_rev is None:
            new_rev = self._applied_unseen(ops)
        if new_rev is None:
            raise Conflict(key)
        return new_rev

    def _applied_unseen(self, ops: Sequence[Put | Delete]) -> int | None:
        """After a failed compare: the revision at which exactly these ops were applied, if
        they were, else None. An etcd write retried after a timeout fails its compare when the
        first attempt was applied unseen; re-running the allocation would then take a second
        address (or report the first as in use). Only a block write is recognised: its JSON
        carries the bumped sequence number, so identical block and handle values at one
        revision can only come from a writer that made this very change from the same read."""
        if not ops or not isinstance(ops[0], Put):
            return None
        revs = set()
        for op in ops:
            kv = self.backend.get(op.key)
            if isinstance(op, Delete):
                if kv is not None:
                    return None
                continue
            if kv is None or kv.value != op.value:
                return None
            revs.add(kv.mod_revision)
        return revs.pop() if len(revs) == 1 else None

    def write_handle(self, h: HandleState) -> None:
        """CAS-write one handle on its own (deleting it when empty). Raises Conflict."""
        hkey = self.keys.handle_key(h.handle_id)
        op = Put(hkey, h.value.to_json()) if not h.value.empty else Delete(hkey)
        if self.backend.txn([Compare(hkey, h.rev)], [op]) is None:
            raise Conflict(hkey)

    # ---- affinities -------------------------------------------------------------------------

    def claim_block(self, host: str, cidr: IPNetwork) -> tuple[AllocationBlock, int]:
        """Claim the block `cidr` for `host`: returns the block (new, or already ours) and its
        revision. Raises BlockClaimConflict if another host owns it."""
        aff_key = self.keys.affinity_key(host, cidr)
        aff_rev = self._pending_affinity(aff_key)
        block = AllocationBlock.new(cidr, host)
        try:
            rev = self.backend.create(self.keys.block_key(cidr), block.to_json())
        except KeyExists:
            got = self.get_block(cidr)
            if got is not None and got[0].host == host:
                self._confirm_affinity(aff_key, aff_rev)
                return got
            self._delete_quietly(aff_key, aff_rev)
            owner = got[0].affinity if got else "unknown"
            raise BlockClaimConflict(f"block {cidr} was claimed by {owner}") from None
        self._confirm_affinity(aff_key, aff_rev)
        return block, rev

    def _pending_affinity(self, key: str) -> int:
        pending = BlockAffinity(model.STATE_PENDING).to_json()
        try:
            return self.backend.create(key, pending)
        except KeyExists:
            kv = self.backend.get(key)
            if kv is None:
                raise Conflict(key) from None
            if BlockAffinity.from_json(kv.value).state == model.STATE_CONFIRMED:
                return kv.mod_revision
            return self.backend.update(key, pending, kv.mod_revision)

    def _confirm_affinity(self, key: str, rev: int) -> None:
        """Set a pending affinity (whose block is ours) confirmed. Another process of the same
        host may be claiming the same block and re-mark it pending meanwhile: keep trying
        while the affinity exists and is not confirmed yet."""
        confirmed = BlockAffinity(model.STATE_CONFIRMED).to_json()
        for _ in range(self.max_retries):
            try:
                self.backend.update(key, confirmed, rev)
                return
            except (RevisionConflict, KeyNotFound):
                kv = self.backend.get(key)
                if kv is None:
                    raise Conflict(key) from None
                if BlockAffinity.from_json(kv.value).state == model.STATE_CONFIRMED:
                    return
                rev = kv.mod_revision
        raise Conflict(key)

    def confirm_affinity(self, host: str, cidr: IPNetwork, rev: int) -> None:
        """Confirm a pending affinity whose block turned out to be ours (crash recovery)."""
        self._confirm_affinity(self.keys.affinity_key(host, cidr), rev)

    def delete_affinity(self, host: str, cidr: IPNetwork, rev: int) -> None:
        self._delete_quietly(self.keys.affinity_key(host, cidr), rev)

    def _delete_quietly(self, key: str, rev: int) -> None:
        try:
            self.backend.delete(key, rev)
        except (KeyNotFound, RevisionConflict):
            pass

    def release_affinity(self, host: str, cidr: IPNetwork, *, require_empty: bool = False
                         ) -> bool:
        """Release `host`'s affinity for `cidr` (Calico's releaseBlockAffinity). Returns False
        if there was no affinity. Raises BlockNotEmptyError (with `require_empty`) or Conflict
        (a CAS lost: call it through `retry`)."""
        aff_key = self.keys.affinity_key(host, cidr)
        kv = self.backend.get(aff_key)
        if kv is None:
            return False
        got = self.get_block(cidr)
        if got is not None:
            block, rev = got
            if block.host != host and block.affinity is not None:
                # Stale affinity: the block belongs to someone else.
                self._delete_quietly(aff_key, kv.mod_revision)
                return True
            if require_empty and not block.empty():
                raise BlockNotEmptyError(f"block {cidr} of host {host} still has "
                                         f"{block.num_allocated} allocated addresses")
        state = BlockAffinity(model.STATE_PENDING_DELETION).to_json()
        aff_rev = self.backend.update(aff_key, state, kv.mod_revision)
        if got is not None:
            block, rev = got
            if block.empty():
                if not self.backend.txn([Compare(self.keys.block_key(cidr), rev)],
                                        [Delete(self.keys.block_key(cidr))]):
                    raise Conflict(str(cidr))
            elif block.host == host:
                block.affinity = None
                block.affinity_claim_time = None
                self.commit(block, rev, [])
        self.backend.delete(aff_key, aff_rev)
        return True
