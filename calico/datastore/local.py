"""The embedded `local` backend: etcd v3 semantics in one SQLite file, shared by processes.

calicoctl, Felix, the CNI plugin and IPAM run at once on one machine and all open the same
file (default /var/lib/calico/calico.db, or $CALICO_DATASTORE_PATH). There is no server, so
everything etcd does on its own happens here as a side effect of someone using the store.

Tables:
  meta(name, value)   `revision` (the store-wide revision, starts at 1 like etcd) and
                      `compact_revision` (history before it is gone).
  kv                  the current value of each key with its create/mod revision and lease.
  history             one row per change (value NULL for a delete), in revision order. Watches
                      replay it; `list(prefix, revision)` reconstructs old states from it.
                      Compaction keeps rows at or after the compact revision plus the last
                      live row of every key before it, which is etcd's rule.
  leases(id, ttl, expires_at)  wall-clock expiry (time.time(): shared by every process).

Concurrency: WAL mode (readers never block the writer), every write is one `BEGIN IMMEDIATE`
transaction that reads the revision, applies the change and appends history, so writes from
all processes are serialised and revisions are gap-free. A busy timeout plus a retry loop
absorb "database is locked". Within a process one connection is shared under a lock.

Leases expire without a server: each operation first checks (one indexed query) whether a
lease is past its expiry and, if so, reaps it in a write transaction — deleting its keys with
history rows, so watchers see the deletions. The watch poller does the same.

Watches: one background thread per backend (started on the first watch, gone with the last)
checks `PRAGMA data_version` — a counter SQLite bumps when another connection commits, costing
no I/O — reads the new history rows once and fans them out to every watcher. It checks at once
after a write by this process, at once when inotify reports a change in the database's
directory (another process's commit writes the `-wal` file), and every 10 ms regardless (the
fallback where inotify is missing or silent, as on network filesystems).
A new watcher is caught up from history under the poller's lock, so no change is missed or
delivered twice.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from .kv import (
    KV,
    Backend,
    Compacted,
    Compare,
    DatastoreError,
    Delete,
    EventType,
    KeyExists,
    KeyNotFound,
    Put,
    RevisionConflict,
    Unreachable,
    Watcher,
    WatchEvent,
)
from .watchqueue import QueueWatcher

log = logging.getLogger(__name__)

DEFAULT_PATH = "/var/lib/calico/calico.db"
POLL_INTERVAL = 0.010
# Keep this many revisions of history; older ones are compacted every COMPACT_EVERY writes.
HISTORY_REVISIONS = 100_000
COMPACT_EVERY = 1_000
LOCK_RETRY_SECONDS = 30.0

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 1), ('compact_revision', 0);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY, revision INTEGER NOT NULL, key TEXT NOT NULL, value TEXT,
    create_revision INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS history_by_revision ON history (revision);
CREATE INDEX IF NOT EXISTS history_by_key ON history (key, revision);
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ttl INTEGER NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at);
"""


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """[start, end) covering every key that starts with `prefix` (end None: no bound).
    SQLite compares TEXT as UTF-8 bytes, which orders like code points."""
    if not prefix:
        return "", None
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _is_locked(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable at every commit in WAL mode but fsync
    return conn                                 # on checkpoints only (survives process crashes)


class LocalBackend(Backend):
    """The `kv.Backend` contract in one SQLite file shared by every process on the host: writes
    serialised across processes with gap-free revisions, leases reaped by whoever uses the store.
    Thread-safe (one connection under a lock); a forked child opens its own connection."""

    def __init__(self, path: str | None = None, *, clock: Callable[[], float] = time.time,
                 history_revisions: int = HISTORY_REVISIONS) -> None:
        self.path = path or os.environ.get("CALICO_DATASTORE_PATH") or DEFAULT_PATH
        self._clock = clock
        self._history_revisions = history_revisions
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = _connect(self.path)
            self._retry(self._init_schema)
        except sqlite3.Error as err:
            raise Unreachable(f"cannot open the local datastore {self.path}: {err}") from err
        self._poller: _Poller | None = None
        self._closed = False
        self._pid = os.getpid()

    def _init_schema(self) -> None:
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("BEGIN IMMEDIATE")
        for stmt in filter(str.strip, _SCHEMA.split(";")):
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
            result = self._retry(attempt)
            if self._poller is not None:
                self._poller.wake.set()  # watchers in this process need not wait for a tick
            return result

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            if self._lease_due():
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
            if not self._closed and self._retry(self._lease_due):
                self._run_write(lambda w: None)

    def _check_open(self) -> None:
        if self._closed:
            raise DatastoreError(f"local datastore {self.path} is closed")
        if self._pid != os.getpid():
            # Forked: a SQLite connection must not cross fork(); the child opens its own
            # (its parent's watchers and poller thread do not exist in the child).
            self._pid, self._poller = os.getpid(), None
            self._conn = _connect(self.path)

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
            current, compacted = _meta(conn)
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
        return self._run_read(lambda conn: _meta(conn)[0])

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
                self._poller = _Poller(self)
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


def _meta(conn: sqlite3.Connection) -> tuple[int, int]:
    rows = dict(conn.execute("SELECT name, value FROM meta").fetchall())
    return int(rows["revision"]), int(rows["compact_revision"])


class _Writer:
    """The body of one write transaction: every change made through it shares one new
    revision (as an etcd txn does), taken lazily on the first change."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.base, self.compact_revision = _meta(conn)
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


class _Poller:
    """The one thread per backend that turns new history rows into watch events."""

    def __init__(self, backend: LocalBackend) -> None:
        self._backend = backend
        self._conn = _connect(backend.path)
        self._lock = threading.Lock()
        self._watchers: list[QueueWatcher] = []
        self._stopping = threading.Event()
        self.wake = _Wakeup(os.path.dirname(os.path.abspath(backend.path)))
        self._seen, _ = _meta(self._conn)
        self._data_version = -1
        self._thread = threading.Thread(target=self._run, name="calico-local-watch", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def add(self, prefix: str, start_revision: int) -> Watcher:
        watcher = QueueWatcher(prefix, start_revision, on_close=self._remove)
        start, end = prefix_range(prefix)
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                _, compacted = _meta(self._conn)
                if start_revision < compacted:
                    watcher.fail(Compacted(start_revision, compacted))
                    return watcher
                rows = self._conn.execute(
                    "SELECT revision, key, value, create_revision FROM history "
                    "WHERE revision >= ? AND revision <= ? AND key >= ? "
                    + ("AND key < ? " if end is not None else "") + "ORDER BY id",
                    (start_revision, self._seen, start) + ((end,) if end else ())).fetchall()
            finally:
                self._conn.execute("COMMIT")
            watcher.push(_events(rows))
            self._watchers.append(watcher)
        return watcher

    def _remove(self, watcher: QueueWatcher) -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        with self._lock:
            for w in self._watchers:
                w.fail(Unreachable("the local datastore was closed"))
            self._conn.close()
        self.wake.close()

    def _run(self) -> None:
        last_reap = 0.0
        while not self._stopping.is_set():
            self.wake.wait(POLL_INTERVAL)
            try:
                self._poll()
                if time.monotonic() - last_reap > 0.1:
                    last_reap = time.monotonic()
                    self._backend.reap_expired_leases()
            except (sqlite3.Error, DatastoreError) as err:
                log.warning("local datastore watch poller: %s", err)

    def _poll(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return
            self._conn.execute("BEGIN")
            try:
                current, compacted = _meta(self._conn)
                rows = self._conn.execute(
                    "SELECT revision, key, value, create_revision FROM history "
                    "WHERE revision > ? AND revision <= ? ORDER BY id",
                    (self._seen, current)).fetchall()
            finally:
                self._conn.execute("COMMIT")
            self._data_version = version
            if compacted > self._seen + 1:
                # History we had not yet delivered may be gone: every watcher must re-list.
                for w in self._watchers:
                    w.fail(Compacted(self._seen + 1, compacted))
            elif rows:
                events = _events(rows)
                for w in self._watchers:
                    w.push(events)
            self._seen = current


class _Wakeup:
    """What the poller sleeps on: `set()` from this process (a pipe), or a change in the
    database's directory by any process (inotify; skipped where the C library lacks it)."""

    _IN_NONBLOCK_CLOEXEC = os.O_NONBLOCK | os.O_CLOEXEC  # inotify_init1's flags are these
    _IN_MODIFY, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x80, 0x100

    def __init__(self, directory: str) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._fds = [self._r]
        self._inotify = -1
        init = getattr(_libc(), "inotify_init1", None)
        if init is not None:
            fd = init(self._IN_NONBLOCK_CLOEXEC)
            mask = self._IN_MODIFY | self._IN_MOVED_TO | self._IN_CREATE
            if fd >= 0 and _libc().inotify_add_watch(fd, os.fsencode(directory), mask) >= 0:
                self._inotify = fd
                self._fds.append(fd)
            elif fd >= 0:
                os.close(fd)

    def set(self) -> None:
        try:
            os.write(self._w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or closed

    def wait(self, timeout: float) -> None:
        """Until set(), a change in the directory, or `timeout`; then drain both."""
        try:
            ready, _, _ = select.select(self._fds, [], [], timeout)
        except (OSError, ValueError):
            return  # closed under us by stop()
        for fd in ready:
            try:
                while os.read(fd, 4096):
                    pass
            except (BlockingIOError, OSError):
                pass

    def close(self) -> None:
        for fd in (*self._fds, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


_LIBC = None


def _events(rows: Sequence[tuple]) -> list[WatchEvent]:
    return [WatchEvent(EventType.DELETE, key, None, rev) if value is None
            else WatchEvent(EventType.PUT, key, value, rev, created)
            for rev, key, value, created in rows]
