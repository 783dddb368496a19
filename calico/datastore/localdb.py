"""The `local` backend's SQLite file: its tables, how a connection to it is opened, and the
key ranges its queries use. local.py writes and reads it; localwatch.py tails its history.

Tables:
  meta(name, value)   `revision` (the store-wide revision, starts at 1 like etcd) and
                      `compact_revision` (history before it is gone).
  kv                  the current value of each key with its create/mod revision and lease.
  history             one row per change (value NULL for a delete), in revision order. Watches
                      replay it; `list(prefix, revision)` reconstructs old states from it.
                      Compaction keeps rows at or after the compact revision plus the last
                      live row of every key before it, which is etcd's rule.
  leases(id, ttl, expires_at)  wall-clock expiry (time.time(): shared by every process).
"""

from __future__ import annotations

import sqlite3

from . import localfile

SCHEMA = """
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


def connect(path: str) -> sqlite3.Connection:
    """A connection to the store: read-write when this process may write the file and its
    directory, else read-only (localfile.connect_read_only says how)."""
    if localfile.read_only_reason(path) is None:
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None,
                               check_same_thread=False)
    else:
        conn = localfile.connect_read_only(path)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable at every commit in WAL mode but fsync
    return conn                                 # on checkpoints only (survives process crashes)


def read_meta(conn: sqlite3.Connection) -> tuple[int, int]:
    """(current revision, compact revision)."""
    rows = dict(conn.execute("SELECT name, value FROM meta").fetchall())
    return int(rows["revision"]), int(rows["compact_revision"])
