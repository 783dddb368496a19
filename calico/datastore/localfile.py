"""Opening the local store's file: where it is, who chose that, and whether we may write it.

The local backend (local.py) asks three questions before it touches SQLite, and this module
answers them so that a user's mistake reads as one line naming the path and its origin:

- **Which file?** `resolve_path(path, source)`: an explicit path (from a CalicoAPIConfig's
  `datastorePath`, the CNI config's `datastore_path`, or a caller), else
  `$CALICO_DATASTORE_PATH`, else `/var/lib/calico/calico.db`. The answer carries the name of
  the setting that chose it, for messages.
- **Does it exist?** Only writers create a store (`create=True`: calico-node, calicoctl
  create/apply/replace, the CNI plugin, IPAM). A reader of a missing store gets `StoreMissing`
  ("local datastore /x/calico.db does not exist (path from CALICO_DATASTORE_PATH) ..."),
  never a new empty store that hides a mistyped path.
- **May we write it?** When the file or its directory is not writable (permissions, a
  read-only mount), the store is opened read-only: reads work, and every write raises
  `ReadOnlyStore` with that reason instead of SQLite's "attempt to write a readonly database"
  surfacing as "unreachable". A read-only directory cannot hold SQLite's WAL index (`-shm`),
  so there the file is opened `immutable` (nobody can be writing it through this mount).

    path, source = resolve_path(None, None)
    reason = check_store(path, source, create=False)   # None: writable; else why not
    conn = localdb.connect(path)                       # read-only when it must be
"""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import quote

from .kv import DatastoreError

DEFAULT_PATH = "/var/lib/calico/calico.db"
ENV_VAR = "CALICO_DATASTORE_PATH"


class StoreMissing(DatastoreError):
    """A reader asked for a local store that does not exist."""

    def __init__(self, path: str, source: str) -> None:
        super().__init__(f"local datastore {path} does not exist (path from {source}); check "
                         "the path, or create the store first (calico-node, or calicoctl "
                         "create/apply)")
        self.path, self.source = path, source


class ReadOnlyStore(DatastoreError):
    """A write to a local store that this process may only read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"local datastore {path} is read-only ({reason}): nothing was "
                         "written")
        self.path, self.reason = path, reason


def resolve_path(path: str | None, source: str | None,
                 env: dict[str, str] | None = None) -> tuple[str, str]:
    """The store's file and the name of the setting that chose it."""
    if path:
        return path, source or "the caller"
    env = dict(os.environ) if env is None else env
    if env.get(ENV_VAR):
        return env[ENV_VAR], ENV_VAR
    return DEFAULT_PATH, f"the default; {ENV_VAR} is not set"


def read_only_reason(path: str) -> str | None:
    """Why this process may not write the store at `path` (None: it may)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "the file is not writable"
    if os.path.isdir(directory) and not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is not writable"
    return None


def check_store(path: str, source: str, create: bool) -> str | None:
    """Raise StoreMissing when a reader finds no store; else return the read-only reason.
    A writer's missing directory is created here (a read-only one stays an error)."""
    if not os.path.exists(path):
        if not create:
            raise StoreMissing(path, source)
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as err:
            raise ReadOnlyStore(path, f"cannot create {directory}: {err.strerror}") from None
    elif os.path.isdir(path):
        raise DatastoreError(f"local datastore {path} (path from {source}) is a directory, "
                             "not a file")
    return read_only_reason(path)


def connect_read_only(path: str) -> sqlite3.Connection:
    """Read-only; `immutable` where SQLite cannot keep its WAL index beside the file (a
    read-only directory: nobody can be writing the file through this mount)."""
    base = "file:" + quote(os.path.abspath(path))
    conn = sqlite3.connect(base + "?mode=ro", uri=True, timeout=10.0,
                           isolation_level=None, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()  # no -shm and no way to create one: read the file as it stands
    return sqlite3.connect(base + "?mode=ro&immutable=1", uri=True, timeout=10.0,
                           isolation_level=None, check_same_thread=False)
