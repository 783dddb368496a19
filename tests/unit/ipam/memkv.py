"""A tiny in-memory `kv.Backend` for IPAM unit tests: get/list/create/update/put/delete/txn
with etcd revisions. No history, watches or leases. `fail_next_txns` makes the next N
transactions fail their compares, to exercise CAS retries; `lose_next_txn_answers` makes the
next N transactions apply but answer "compare failed", as etcd's answer to a write retried
after its first attempt was applied unseen (a timeout) does."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from calico.datastore.kv import (
    KV,
    Backend,
    Compare,
    Delete,
    KeyExists,
    KeyNotFound,
    Put,
    RevisionConflict,
    Watcher,
)


class MemoryBackend(Backend):
    def __init__(self) -> None:
        self.data: dict[str, KV] = {}
        self.rev = 1
        self.lock = threading.Lock()
        self.fail_next_txns = 0
        self.lose_next_txn_answers = 0
        self.txns = 0

    def get(self, key: str) -> KV | None:
        return self.data.get(key)

    def list(self, prefix: str, revision: int | None = None) -> tuple[list[KV], int]:
        with self.lock:
            return sorted((kv for k, kv in self.data.items() if k.startswith(prefix)),
                          key=lambda kv: kv.key), self.rev

    def _put(self, key: str, value: str) -> int:
        self.rev += 1
        old = self.data.get(key)
        self.data[key] = KV(key, value, self.rev, old.create_revision if old else self.rev)
        return self.rev

    def create(self, key: str, value: str, lease: int = 0) -> int:
        with self.lock:
            if key in self.data:
                raise KeyExists(key)
            return self._put(key, value)

    def update(self, key: str, value: str, mod_revision: int, lease: int = 0) -> int:
        with self.lock:
            old = self.data.get(key)
            if old is None:
                raise KeyNotFound(key)
            if old.mod_revision != mod_revision:
                raise RevisionConflict(key, mod_revision, old.mod_revision)
            return self._put(key, value)

    def put(self, key: str, value: str, lease: int = 0) -> int:
        with self.lock:
            return self._put(key, value)

    def delete(self, key: str, mod_revision: int | None = None) -> int:
        with self.lock:
            old = self.data.get(key)
            if old is None:
                raise KeyNotFound(key)
            if mod_revision is not None and old.mod_revision != mod_revision:
                raise RevisionConflict(key, mod_revision, old.mod_revision)
            del self.data[key]
            self.rev += 1
            return self.rev

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> int | None:
        with self.lock:
            self.txns += 1
            if self.fail_next_txns:
                self.fail_next_txns -= 1
                return None
            for c in compares:
                kv = self.data.get(c.key)
                if (kv.mod_revision if kv else 0) != c.mod_revision:
                    return None
            self.rev += 1
            for op in ops:
                if isinstance(op, Put):
                    old = self.data.get(op.key)
                    self.data[op.key] = KV(op.key, op.value, self.rev,
                                           old.create_revision if old else self.rev)
                else:
                    self.data.pop(op.key, None)
            if self.lose_next_txn_answers:
                self.lose_next_txn_answers -= 1
                return None
            return self.rev

    def watch(self, prefix: str, start_revision: int) -> Watcher:
        raise NotImplementedError

    def revision(self) -> int:
        return self.rev

    def grant_lease(self, ttl: int) -> int:
        raise NotImplementedError

    def keepalive(self, lease: int) -> None:
        raise NotImplementedError

    def revoke(self, lease: int) -> None:
        raise NotImplementedError

    def compact(self, revision: int) -> None:
        pass
