"""A `Watcher` fed by a producer thread: the hand-off both backends use.

The producer (the local backend's history poller, the etcd backend's stream reader) calls
`push(events)` for each batch in revision order and `fail(error)` once when the stream can no
longer continue (Compacted, Unreachable); the consumer calls `events(timeout)`. After a failure
the events already queued are delivered first, then the error is raised once and the watcher
is closed, as the `Watcher` contract says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from .kv import DatastoreError, Watcher, WatchEvent


class QueueWatcher(Watcher):
    """A `kv.Watcher` one producer thread `push`es into and one consumer reads with
    `events(timeout)`: events at or below `last_revision` or outside `prefix` are dropped, so a
    producer resuming from an earlier revision never delivers one twice."""

    def __init__(self, prefix: str, start_revision: int,
                 on_close: Callable[[QueueWatcher], None] | None = None) -> None:
        self.prefix = prefix
        self.start_revision = start_revision
        # The revision of the last event handed to this watcher (producers use it to resume).
        self.last_revision = start_revision - 1
        self._on_close = on_close
        self._cond = threading.Condition()
        self._queue: list[WatchEvent] = []
        self._error: DatastoreError | None = None
        self._closed = False

    # ---- producer side -------------------------------------------------------------------

    def push(self, events: Iterable[WatchEvent]) -> None:
        batch = [e for e in events
                 if e.revision > self.last_revision and e.key.startswith(self.prefix)]
        if not batch:
            return
        with self._cond:
            if self._closed or self._error is not None:
                return
            self._queue.extend(batch)
            self.last_revision = batch[-1].revision
            self._cond.notify_all()

    def fail(self, error: DatastoreError) -> None:
        with self._cond:
            if not self._closed and self._error is None:
                self._error = error
                self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- consumer side -------------------------------------------------------------------

    def events(self, timeout: float | None = None) -> list[WatchEvent]:
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._error is not None or self._closed,
                                timeout)
            if self._queue:
                out, self._queue = self._queue, []
                return out
            if self._error is not None and not self._closed:
                error = self._error
            else:
                return []
        self.close()
        raise error

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue = []
            self._cond.notify_all()
        if self._on_close is not None:
            self._on_close(self)
