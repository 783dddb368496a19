"""The syncer: a consistent snapshot of some datastore prefixes, then every change to them.

Felix and the BGP renderer consume it. What flows in: a backend and a list of sources — a
kind name ("IPPool"), a key prefix ("/calico/ipam/v2/assignment/"), or a `SyncSource` with a
parser of its own. What flows out, on the syncer's own thread, to a `SyncerCallbacks`:

- `on_status(SyncStatus)`: `wait-for-datastore` at start, `resync` once the datastore has
  answered the first list, `in-sync` once that snapshot has been delivered. Each is sent once
  and in that order (as Calico's syncers do); later recoveries do not repeat them.
- `on_updates([SyncUpdate(key, value, revision)])`: `value` is the parsed value — a validated
  `Resource` (with resourceVersion) for resource keys, the decoded JSON for other keys — or
  None when the key was deleted. A stored value the parser rejects is logged with its key and
  treated as a deletion: the syncer never stops on bad data.

How: list every source at one revision R, then watch each from R + 1. On `Compacted`,
`Unreachable` or any other datastore error it waits `retry_delay`, lists again and emits only
real differences against what it has already emitted (by key and mod revision): unchanged
keys are not re-sent, vanished ones are deleted. Updates for one key are in revision order;
sources are watched separately, so updates of different sources may interleave.
"""

from __future__ import annotations

import enum
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .builtins import with_builtins
from .client import RESOURCE_PREFIX, decode, kind_prefix
from .kv import Backend, DatastoreError, EventType, Watcher, WatchEvent

log = logging.getLogger(__name__)

# (key, stored text, mod revision) -> parsed value; raises ValueError / DatastoreError if invalid.
Parser = Callable[[str, str, int], Any]


class SyncStatus(enum.Enum):
    WAIT_FOR_DATASTORE = "wait-for-datastore"
    RESYNC = "resync"
    IN_SYNC = "in-sync"


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    key: str
    value: Any  # None: deleted
    revision: int


class SyncerCallbacks(Protocol):
    def on_status(self, status: SyncStatus) -> None: ...

    def on_updates(self, updates: list[SyncUpdate]) -> None: ...


def parse_value(key: str, value: str, mod_revision: int) -> Any:
    """Resources under /calico/resources/v3/ validated; anything else as JSON."""
    if key.startswith(RESOURCE_PREFIX):
        return decode(key, value, mod_revision)
    return json.loads(value)


@dataclass(frozen=True)
class SyncSource:
    prefix: str
    parse: Parser = parse_value

    @classmethod
    def of(cls, item: str | SyncSource) -> SyncSource:
        """A kind name, a key prefix (starting with "/"), or a SyncSource."""
        if isinstance(item, SyncSource):
            return item
        if item.startswith("/"):
            return cls(item)
        return cls(kind_prefix(item))


class Syncer:
    """Delivers to `callbacks`, on its own thread between `start()` and `stop()`, one snapshot of
    the sources and then every change to them (see above), riding out bad data and datastore
    errors. A callback that raises stops the syncer."""

    def __init__(self, backend: Backend, sources: Iterable[str | SyncSource],
                 callbacks: SyncerCallbacks, *, retry_delay: float = 1.0,
                 batch_size: int = 1000) -> None:
        self.backend = backend
        self.sources = [SyncSource.of(s) for s in sources]
        self.callbacks = callbacks
        self.retry_delay = retry_delay
        self.batch_size = batch_size
        self.status: SyncStatus | None = None
        self._cache: dict[str, int] = {}  # key -> mod revision of what we emitted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="calico-syncer", daemon=True)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> Syncer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        self._set_status(SyncStatus.WAIT_FOR_DATASTORE)
        try:
            while not self._stop.is_set():
                try:
                    revision = self._resync()
                    self._watch(revision)
                except DatastoreError as err:
                    if self._stop.is_set():
                        break
                    log.warning("syncer: %s; listing again in %gs", err, self.retry_delay)
                    self._stop.wait(self.retry_delay)
        except Exception:
            log.exception("syncer stopped: a callback failed")
            raise

    def _set_status(self, status: SyncStatus) -> None:
        self.status = status
        self.callbacks.on_status(status)

    def _emit(self, updates: list[SyncUpdate]) -> None:
        for i in range(0, len(updates), self.batch_size):
            self.callbacks.on_updates(updates[i:i + self.batch_size])

    # ---- snapshot ------------------------------------------------------------------------

    def _resync(self) -> int:
        revision: int | None = None
        listed: dict[str, tuple[SyncSource, str, int]] = {}
        for source in self.sources:
            items, revision = self.backend.list(source.prefix, revision)
            for kv in with_builtins(source.prefix, items):
                listed.setdefault(kv.key, (source, kv.value, kv.mod_revision))
        assert revision is not None
        if self.status is SyncStatus.WAIT_FOR_DATASTORE:
            self._set_status(SyncStatus.RESYNC)
        updates = []
        for key, (source, value, mod_revision) in sorted(listed.items()):
            if self._cache.get(key) != mod_revision:
                update = self._put(source, key, value, mod_revision)
                if update is not None:
                    updates.append(update)
                    if len(updates) == self.batch_size:  # consumers start while we parse
                        self._emit(updates)
                        updates = []
        for key in sorted(set(self._cache) - set(listed)):
            del self._cache[key]
            updates.append(SyncUpdate(key, None, revision))
        self._emit(updates)
        if self.status is SyncStatus.RESYNC:
            self._set_status(SyncStatus.IN_SYNC)
        return revision

    def _put(self, source: SyncSource, key: str, value: str, mod_revision: int
             ) -> SyncUpdate | None:
        """The update for a new value of `key` (a deletion if it does not parse)."""
        try:
            parsed = source.parse(key, value, mod_revision)
        except (ValueError, DatastoreError, RecursionError) as err:
            log.warning("syncer: %s: invalid value treated as deleted: %s", key, err)
            if self._cache.pop(key, None) is None:
                return None
            return SyncUpdate(key, None, mod_revision)
        self._cache[key] = mod_revision
        return SyncUpdate(key, parsed, mod_revision)

    # ---- changes -------------------------------------------------------------------------

    def _watch(self, revision: int) -> None:
        """Deliver changes after `revision` until a datastore error (raised) or stop."""
        events: queue.Queue[tuple[SyncSource, list[WatchEvent]] | DatastoreError] = queue.Queue()
        done = threading.Event()
        watchers: list[Watcher] = []
        pumps = []
        try:
            for source in self.sources:
                watcher = self.backend.watch(source.prefix, revision + 1)
                watchers.append(watcher)
                pump = threading.Thread(target=_pump, args=(watcher, source, events, done),
                                        name=f"calico-syncer-watch {source.prefix}", daemon=True)
                pump.start()
                pumps.append(pump)
            while not self._stop.is_set():
                try:
                    item = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(item, DatastoreError):
                    raise item
                self._emit(self._changes(*item))
        finally:
            done.set()
            for watcher in watchers:
                watcher.close()
            for pump in pumps:
                pump.join(timeout=2)

    def _changes(self, source: SyncSource, events: Sequence[WatchEvent]) -> list[SyncUpdate]:
        updates = []
        for e in events:
            if e.type is EventType.DELETE:
                if self._cache.pop(e.key, None) is not None:
                    updates.append(SyncUpdate(e.key, None, e.revision))
            elif self._cache.get(e.key) != e.revision:
                update = self._put(source, e.key, e.value or "", e.revision)
                if update is not None:
                    updates.append(update)
        return updates


def _pump(watcher: Watcher, source: SyncSource,
          out: queue.Queue[tuple[SyncSource, list[WatchEvent]] | DatastoreError],
          done: threading.Event) -> None:
    try:
        while not done.is_set():
            events = watcher.events(timeout=0.5)
            if events:
                out.put((source, events))
    except DatastoreError as err:
        out.put(err)
