"""The KV backend contract: what every datastore backend (local SQLite, etcd v3) provides.

The model is etcd v3's: one store-wide revision that every write increments; each key carries
the revision of its last modification (`mod_revision`), which is its optimistic-concurrency
token; a watch replays every change after a given revision, in order, exactly once. Values are
text (resource JSON). Keys may be attached to a lease that expires unless kept alive.

All operations raise `DatastoreError` subclasses, never backend-specific exceptions:
`KeyExists`, `KeyNotFound`, `RevisionConflict` (CAS failed), `Compacted` (a watch or list
asked for history that is gone), `Unreachable` (the server did not answer in time).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass


class DatastoreError(Exception):
    """Base of every datastore failure."""


class KeyExists(DatastoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"{key} already exists")
        self.key = key


class KeyNotFound(DatastoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"{key} does not exist")
        self.key = key


class RevisionConflict(DatastoreError):
    def __init__(self, key: str, expected: int, actual: int | None) -> None:
        super().__init__(f"{key} was modified (expected revision {expected}, found {actual})")
        self.key, self.expected, self.actual = key, expected, actual


class Compacted(DatastoreError):
    def __init__(self, revision: int, compact_revision: int) -> None:
        super().__init__(f"revision {revision} is compacted (oldest {compact_revision})")
        self.revision, self.compact_revision = revision, compact_revision


class Unreachable(DatastoreError):
    """The datastore did not answer (server down, timeout, no quorum)."""


@dataclass(frozen=True, slots=True)
class KV:
    key: str
    value: str
    mod_revision: int
    create_revision: int = 0
    lease: int = 0


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    key: str
    value: str | None  # None for DELETE
    revision: int  # the revision of this change
    # The key's create revision after a PUT (== revision when the PUT created the key); 0 for
    # DELETE. Lets a watcher tell "added" from "modified" without keeping a cache.
    create_revision: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    """A transaction guard on one key: its mod_revision equals `mod_revision`
    (0 means "the key does not exist")."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: str
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


class Watcher(abc.ABC):
    """A stream of changes under a prefix, from a start revision, in revision order."""

    @abc.abstractmethod
    def events(self, timeout: float | None = None) -> list[WatchEvent]:
        """The next changes (at least one), waiting up to `timeout` seconds (None: forever);
        [] on timeout. Raises Compacted if the start revision is gone, Unreachable if the
        stream broke; after either, the watcher is closed and a new list+watch is needed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop watching; a blocked `events()` returns []. Idempotent."""

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(abc.ABC):
    """A KV store with etcd v3 semantics. Thread-safe; cheap to share within a process."""

    @abc.abstractmethod
    def get(self, key: str) -> KV | None: ...

    @abc.abstractmethod
    def list(self, prefix: str, revision: int | None = None) -> tuple[list[KV], int]:
        """Keys under `prefix` (sorted), at `revision` (None: now); also returns the store
        revision the answer reflects, from which a watch can continue (watch from rev + 1)."""

    @abc.abstractmethod
    def create(self, key: str, value: str, lease: int = 0) -> int:
        """Write a key that must not exist; returns the new revision. Raises KeyExists."""

    @abc.abstractmethod
    def update(self, key: str, value: str, mod_revision: int, lease: int = 0) -> int:
        """Compare-and-swap: write only if the key's mod_revision is still `mod_revision`.
        Raises KeyNotFound or RevisionConflict."""

    @abc.abstractmethod
    def put(self, key: str, value: str, lease: int = 0) -> int:
        """Unconditional write; returns the new revision."""

    @abc.abstractmethod
    def delete(self, key: str, mod_revision: int | None = None) -> int:
        """Delete (CAS when `mod_revision` is given). Raises KeyNotFound / RevisionConflict."""

    @abc.abstractmethod
    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> int | None:
        """Apply every op atomically if every compare holds: returns the new revision, or
        None if a compare failed (nothing written)."""

    @abc.abstractmethod
    def watch(self, prefix: str, start_revision: int) -> Watcher:
        """Every change under `prefix` with revision >= start_revision."""

    @abc.abstractmethod
    def revision(self) -> int:
        """The store's current revision."""

    @abc.abstractmethod
    def grant_lease(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; keys attached to it vanish when it expires."""

    @abc.abstractmethod
    def keepalive(self, lease: int) -> None:
        """Renew a lease. Raises KeyNotFound if it already expired."""

    @abc.abstractmethod
    def revoke(self, lease: int) -> None:
        """End a lease now, deleting its keys."""

    @abc.abstractmethod
    def compact(self, revision: int) -> None:
        """Forget history before `revision` (watches from before it raise Compacted)."""

    def close(self) -> None:  # noqa: B027  (optional for backends)
        """Release connections and files."""
