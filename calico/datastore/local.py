"""The embedded `local` backend: etcd v3 semantics in one SQLite file, shared by processes.

calicoctl, Felix, the CNI plugin and IPAM run at once on one machine and all open the same
file (default /var/lib/calico/calico.db, or $CALICO_DATASTORE_PATH). There is no server, so
everything etcd does on its own happens here as a side effect of someone using the store.

The SQLite file's tables are localdb.py's; watches are localwatch.py's (one poller thread per
backend tailing the history table, woken by this process's writes and by inotify).

Concurrency: WAL mode (readers never block the writer), every write is one `BEGIN IMMEDIATE`
transaction that reads the revision, applies the change and appends history, so writes from
all processes are serialised and revisions are gap-free. A busy timeout plus a retry loop
absorb "database is locked". Within a process one connection is shared under a lock.

Leases expire without a server: each operation first checks (one indexed query) whether a
lease is past its expiry and, if so, reaps it in a write transaction — deleting its keys with
history rows, so watchers see the deletions. The watch poller does the same.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from . import localfile
from .kv import (
    KV,
    Backend,
    Compacted,
    Compare,
    DatastoreError,
    Delete,
    KeyExists,
    KeyNotFound,
    Put,
    RevisionConflict,
    Unreachable,
    Watcher,
)
from .localdb import SCHEMA, connect, prefix_range, read_meta
from .localwatch import Poller

log = logging.getLogger(__name__)

DEFAULT_PATH = localfile.DEFAULT_PATH
# Keep this many revisions of history; older ones are compacted every COMPACT_EVERY writes.
HISTORY_REVISIONS = 100_000
COMPACT_EVERY = 1_000
LOCK_RETRY_SECONDS = 30.0

T = TypeVar("T")

def _is_locked(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text


class LocalBackend(Backend):
    """The `kv.Backend` contract in one SQLite file shared by every process on the host: writes
    serialised across processes with gap-free revisions, leases reaped by whoever uses the store.
    Thread-safe (one connection under a lock); a forked child opens its own connection."""

    def __init__(self, path: str | None = None, *, clock: Callable[[], float] = time.time,
                 history_revisions: int = HISTORY_REVISIONS, create: bool = True,
                 path_source: str | None = None) -> None:
        """`create=False` (readers): a missing store is `localfile.StoreMissing`, naming the
        path and `path_source` (the setting that chose it), instead of a new empty store."""
        self.path, self.path_source = localfile.resolve_path(path, path_source)
        self._clock = clock
        self._history_revisions = history_revisions
        self.read_only = localfile.check_store(self.path, self.path_source, create)
        self._lock = threading.RLock()
        try:
            self._conn = connect(self.path)  # read-only when this process may not write it
            if self.read_only is None:
                self._retry(self._init_schema)
            else:
                self._retry(lambda: read_meta(self._conn))
        except sqlite3.Error as err:
            raise Unreachable(f"cannot open the local datastore {self.path}: {err}") from err
        self._poller: Poller | None = None
        self._closed = False
        self._pid = os.getpid()

    def _init_schema(self) -> None:
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("BEGIN IMMEDIATE")
        for stmt in filter(str.strip, SCHEMA.split(";")):
            self._conn.execute(stmt)
        self._conn.execute("COMMIT")

    # ---- transactions --------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        delay = 0.001
        while True:
            try:
                return fn()
            except sqlite3.Error as err:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if not isinstance(err, sqlite3.OperationalError):
                    raise DatastoreError(f"local datastore {self.path}: {err}") from err
                if "readonly" in str(err).lower():
                    raise localfile.ReadOnlyStore(self.path, self.read_only or str(err)) from err
                if not _is_locked(err) or time.monotonic() > deadline:
                    raise Unreachable(f"local datastore {self.path}: {err}") from err
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.05)

    @contextmanager
    def _write(self) -> Iterator[_Writer]:
        """One serialised write transaction; reaps expired leases first."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            writer = _Writer(conn, self._clock())
            writer.reap_expired_leases()
            yield writer
            writer.finish(self._history_revisions)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _run_write(self, fn: Callable[[_Writer], T]) -> T:
        def attempt() -> T:
            with self._write() as w:
                return fn(w)
        with self._lock:
            self._check_open()
            if self.read_only is not None:
                raise localfile.ReadOnlyStore(self.path, self.read_only)
            result = self._retry(attempt)
            if self._poller is not None:
                self._poller.wake.set()  # watchers in this process need not wait for a tick
            return result

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            if self.read_only is None and self._lease_due():
                with self._write():
                    pass
            self._conn.execute("BEGIN")
            try:
                return fn(self._conn)
            finally:
                self._conn.execute("COMMIT")
        with self._lock:
            self._check_open()
            return self._retry(attempt)

    def _lease_due(self) -> bool:
        row = self._conn.execute("SELECT 1 FROM leases WHERE expires_at <= ? LIMIT 1",
                                 (self._clock(),)).fetchone()
        return row is not None

    def reap_expired_leases(self) -> None:
        """Delete the keys of every expired lease now (the poller calls this)."""
        with self._lock:
            if not self._closed and self.read_only is None and self._retry(self._lease_due):
                self._run_write(lambda w: None)

    def _check_open(self) -> None:
        if self._closed:
            raise DatastoreError(f"local datastore {self.path} is closed")
        if self._pid != os.getpid():
            # Forked: a SQLite connection must not cross fork(); the child opens its own
            # (its parent's watchers and poller thread do not exist in the child).
            self._pid, self._poller = os.getpid(), None
            self._conn = connect(self.path)

    # ---- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> KV | None:
        def read(conn: sqlite3.Connection) -> KV | None:
            row = conn.execute("SELECT key, value, mod_revision, create_revision, lease FROM kv "
                               "WHERE key = ?", (key,)).fetchone()
            return KV(*row) if row else None
        return self._run_read(read)

    def list(self, prefix: str, revision: int | None = None) -> tuple[list[KV], int]:
        start, end = prefix_range(prefix)
        bound = "AND key < ?" if end is not None else ""
        args: tuple = (start, end) if end is not None else (start,)

        def read(conn: sqlite3.Connection) -> tuple[list[KV], int]:
            current, compacted = read_meta(conn)
            if revision is None or revision == current:
                rows = conn.execute(
                    "SELECT key, value, mod_revision, create_revision, lease FROM kv "
                    f"WHERE key >= ? {bound} ORDER BY key", args).fetchall()
                return [KV(*r) for r in rows], current
            if revision > current:
                raise DatastoreError(f"revision {revision} is in the future "
                                     f"(current {current})")
            if revision < compacted:
                raise Compacted(revision, compacted)
            rows = conn.execute(
                "SELECT h.key, h.value, h.revision, h.create_revision, h.lease FROM history h "
                "JOIN (SELECT max(id) AS id FROM history "
                f"      WHERE key >= ? {bound} AND revision <= ? GROUP BY key) last "
                "ON h.id = last.id WHERE h.value IS NOT NULL ORDER BY h.key",
                args + (revision,)).fetchall()
            return [KV(*r) for r in rows], revision
        return self._run_read(read)

    def revision(self) -> int:
        return self._run_read(lambda conn: read_meta(conn)[0])

    # ---- writes --------------------------------------------------------------------------

    def create(self, key: str, value: str, lease: int = 0) -> int:
        def op(w: _Writer) -> int:
            if w.current(key) is not None:
                raise KeyExists(key)
            return w.put(key, value, lease)
        return self._run_write(op)

    def update(self, key: str, value: str, mod_revision: int, lease: int = 0) -> int:
        def op(w: _Writer) -> int:
            cur = w.current(key)
            if cur is None:
                raise KeyNotFound(key)
            if cur.mod_revision != mod_revision:
                raise RevisionConflict(key, mod_revision, cur.mod_revision)
            return w.put(key, value, lease)
        return self._run_write(op)

    def put(self, key: str, value: str, lease: int = 0) -> int:
        return self._run_write(lambda w: w.put(key, value, lease))

    def delete(self, key: str, mod_revision: int | None = None) -> int:
        def op(w: _Writer) -> int:
            cur = w.current(key)
            if cur is None:
                raise KeyNotFound(key)
            if mod_revision is not None and cur.mod_revision != mod_revision:
                raise RevisionConflict(key, mod_revision, cur.mod_revision)
            return w.delete(key)
        return self._run_write(op)

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> int | None:
        keys = [op.key for op in ops]
        if len(set(keys)) != len(keys):
            raise DatastoreError("a transaction may not write the same key twice")

        def op(w: _Writer) -> int | None:
            for c in compares:
                cur = w.current(c.key)
                if (cur.mod_revision if cur else 0) != c.mod_revision:
                    return None
            for o in ops:
                if isinstance(o, Put):
                    w.put(o.key, o.value, o.lease)
                elif w.current(o.key) is not None:
                    w.delete(o.key)
            return w.revision
        return self._run_write(op)

    # ---- leases --------------------------------------------------------------------------

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise DatastoreError(f"lease TTL must be positive, not {ttl}")

        def op(w: _Writer) -> int:
            cur = w.conn.execute("INSERT INTO leases (ttl, expires_at) VALUES (?, ?)",
                                 (ttl, w.now + ttl))
            return int(cur.lastrowid or 0)
        return self._run_write(op)

    def keepalive(self, lease: int) -> None:
        def op(w: _Writer) -> None:
            cur = w.conn.execute("UPDATE leases SET expires_at = ? + ttl WHERE id = ?",
                                 (w.now, lease))
            if cur.rowcount == 0:
                raise KeyNotFound(f"lease {lease}")
        self._run_write(op)

    def revoke(self, lease: int) -> None:
        def op(w: _Writer) -> None:
            if not w.revoke(lease):
                raise KeyNotFound(f"lease {lease}")
        self._run_write(op)

    def compact(self, revision: int) -> None:
        self._run_write(lambda w: w.compact(revision))

    # ---- watches -------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> Watcher:
        with self._lock:
            self._check_open()
            if self._poller is None or not self._poller.is_alive():
                self._poller = Poller(self.path, self.reap_expired_leases)
            poller = self._poller
        return poller.add(prefix, start_revision)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop()
        with self._lock:
            self._conn.close()


class _Writer:
    """The body of one write transaction: every change made through it shares one new
    revision (as an etcd txn does), taken lazily on the first change."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.base, self.compact_revision = read_meta(conn)
        self.revision = self.base
        self.changed = False

    def current(self, key: str) -> KV | None:
        row = self.conn.execute("SELECT key, value, mod_revision, create_revision, lease "
                                "FROM kv WHERE key = ?", (key,)).fetchone()
        return KV(*row) if row else None

    def _bump(self) -> int:
        if not self.changed:
            self.changed = True
            self.revision = self.base + 1
        return self.revision

    def put(self, key: str, value: str, lease: int = 0) -> int:
        if lease and self.conn.execute("SELECT 1 FROM leases WHERE id = ?",
                                       (lease,)).fetchone() is None:
            raise KeyNotFound(f"lease {lease}")
        rev = self._bump()
        row = self.conn.execute("SELECT create_revision FROM kv WHERE key = ?",
                                (key,)).fetchone()
        created = row[0] if row else rev
        self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?)",
                          (key, value, created, rev, lease))
        self.conn.execute("INSERT INTO history (revision, key, value, create_revision, lease) "
                          "VALUES (?, ?, ?, ?, ?)", (rev, key, value, created, lease))
        return rev

    def delete(self, key: str) -> int:
        rev = self._bump()
        self.conn.execute("DELETE FROM kv WHERE key = ?", (key,))
        self.conn.execute("INSERT INTO history (revision, key, value, create_revision, lease) "
                          "VALUES (?, ?, NULL, 0, 0)", (rev, key))
        return rev

    def revoke(self, lease: int) -> bool:
        if self.conn.execute("DELETE FROM leases WHERE id = ?", (lease,)).rowcount == 0:
            return False
        keys = [r[0] for r in self.conn.execute("SELECT key FROM kv WHERE lease = ? ORDER BY key",
                                                (lease,))]
        for key in keys:
            self.delete(key)
        return True

    def reap_expired_leases(self) -> None:
        expired = [r[0] for r in self.conn.execute(
            "SELECT id FROM leases WHERE expires_at <= ? ORDER BY id", (self.now,))]
        for lease in expired:
            log.debug("lease %d expired", lease)
            self.revoke(lease)

    def compact(self, revision: int) -> None:
        current = self.revision
        if revision > current:
            raise DatastoreError(f"cannot compact at revision {revision}: it is in the future "
                                 f"(current {current})")
        if revision <= self.compact_revision:
            return
        self.conn.execute(
            "DELETE FROM history WHERE revision < ?1 AND id NOT IN "
            "(SELECT max(id) FROM history WHERE revision < ?1 GROUP BY key)", (revision,))
        self.conn.execute("DELETE FROM history WHERE revision < ? AND value IS NULL",
                          (revision,))
        self.conn.execute("UPDATE meta SET value = ? WHERE name = 'compact_revision'",
                          (revision,))
        self.compact_revision = revision

    def finish(self, history_revisions: int) -> None:
        if not self.changed:
            return
        self.conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (self.revision,))
        if history_revisions and self.revision % COMPACT_EVERY == 0:
            target = self.revision - history_revisions
            if target > self.compact_revision:
                self.compact(target)
