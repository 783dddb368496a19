"""Felix and the migration lock: ClusterInformation `default`'s `spec.datastoreReady`.

`calicoctl datastore migrate lock` sets it to false so that resources written during a
migration do not take effect; `unlock` sets it back to true. Felix does what Calico's does:

- at start, before it reads anything else, it waits while the datastore is locked
  (`wait_until_ready`: one warning, then a check every second), leaving the dataplane as the
  previous Felix programmed it, so traffic keeps flowing;
- while running, `LockWatcher` (one thread watching that one key) calls `on_locked` when the
  flag turns false; Felix then exits with its restart code, and the next Felix waits.

A missing ClusterInformation, or one without the field, counts as ready (a store that was
never locked). A datastore that cannot be read counts as ready too: the syncer reports and
retries that on its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from calico.datastore.client import kind_prefix
from calico.datastore.kv import Backend, DatastoreError

log = logging.getLogger(__name__)

KEY = kind_prefix("ClusterInformation") + "default"
CHECK_INTERVAL = 1.0


def _ready(value: str | None) -> bool:
    if value is None:
        return True
    try:
        spec = json.loads(value).get("spec") or {}
    except (ValueError, AttributeError):
        return True
    return spec.get("datastoreReady") is not False


def datastore_ready(backend: Backend) -> bool:
    try:
        kv = backend.get(KEY)
    except DatastoreError:
        return True
    return _ready(kv.value if kv else None)


def wait_until_ready(backend: Backend, should_stop: Callable[[], bool],
                     sleep: Callable[[float], None] = time.sleep) -> bool:
    """Block while the datastore is locked; False if `should_stop()` said so first."""
    waited = False
    while not datastore_ready(backend):
        if not waited:
            log.warning("Datastore %s is locked for migration (datastoreReady is false): "
                        "waiting for `calicoctl datastore migrate unlock`; the dataplane stays "
                        "as programmed", KEY)
            waited = True
        if should_stop():
            return False
        sleep(CHECK_INTERVAL)
    if waited:
        log.info("Datastore %s unlocked: starting", KEY)
    return True


class LockWatcher:
    """Calls `on_locked()` once when ClusterInformation default's datastoreReady turns
    false. Runs on its own daemon thread until `stop()`."""

    def __init__(self, backend: Backend, on_locked: Callable[[], None]) -> None:
        self._backend = backend
        self._on_locked = on_locked
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="felix-lock-watch", daemon=True)

    def start(self) -> LockWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._watch_once():
                    log.warning("Datastore %s was locked for migration (datastoreReady is "
                                "false): restarting to wait for the unlock", KEY)
                    self._on_locked()
                    return
            except DatastoreError as err:
                log.info("Watch of %s broke (%s); watching again", KEY, err)
                self._stopping.wait(CHECK_INTERVAL)

    def _watch_once(self) -> bool:
        """Watch the key until it says locked (True) or we are stopped (False)."""
        items, revision = self._backend.list(KEY)
        if any(kv.key == KEY and not _ready(kv.value) for kv in items):
            return True
        with self._backend.watch(KEY, revision + 1) as watcher:
            while not self._stopping.is_set():
                for event in watcher.events(timeout=CHECK_INTERVAL):
                    if event.key == KEY and event.value is not None and not _ready(
                            event.value):
                        return True
        return False
