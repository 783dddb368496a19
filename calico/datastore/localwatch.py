"""Watches on the `local` backend: one poller thread per backend tails the history table.

The thread (started on the first watch, gone with the last) checks `PRAGMA data_version` — a
counter SQLite bumps when another connection commits, costing no I/O — reads the new history
rows once and fans them out to every watcher. It checks at once after a write by this process
(`wake.set()`), at once when inotify reports a change in the database's directory (another
process's commit writes the `-wal` file), and every 10 ms regardless (the fallback where
inotify is missing or silent, as on network filesystems). It also reaps expired leases (every
100 ms), so watchers see a lease's keys go without anyone writing.

A new watcher is caught up from history under the poller's lock, so no change is missed or
delivered twice. When compaction removed history the poller had not delivered yet, every
watcher fails with `Compacted` and must re-list.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence

from .kv import Compacted, DatastoreError, EventType, Unreachable, Watcher, WatchEvent
from .localdb import connect, prefix_range, read_meta
from .watchqueue import QueueWatcher

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.010


class Poller:
    """The one thread per backend that turns new history rows into watch events: `add()` a
    watcher (caught up from history), `wake.set()` after a write, `stop()` to fail them all."""

    def __init__(self, path: str, reap_expired_leases: Callable[[], None]) -> None:
        self._reap_expired_leases = reap_expired_leases
        self._conn = connect(path)
        self._lock = threading.Lock()
        self._watchers: list[QueueWatcher] = []
        self._stopping = threading.Event()
        self.wake = Wakeup(os.path.dirname(os.path.abspath(path)))
        self._seen, _ = read_meta(self._conn)
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
                _, compacted = read_meta(self._conn)
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
                    self._reap_expired_leases()
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
                current, compacted = read_meta(self._conn)
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


class Wakeup:
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
