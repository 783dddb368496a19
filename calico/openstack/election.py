"""Electing the one Neutron server that resyncs and reports status, through a datastore lease.

Several Neutron servers can run the Calico driver at once. All of them write what their own
API calls change, but only one — the master — runs the periodic resync and turns Felix's
status reports into Neutron port and agent status (two masters would not corrupt anything,
thanks to compare-and-swap, but would do the work twice).

The election key (`/calico/openstack/v2/no-region/neutron_election`) holds the master's id,
`<server>:<pid>`, attached to a lease of `ttl` seconds. Every `interval` seconds:
- the master renews the lease and checks that the key still holds its id (else it has lost);
- anyone else reads the key and, if it is gone, creates it on a fresh lease (create fails if
  another server got there first: one winner).
A master that dies stops renewing: its key vanishes with the lease within `ttl` seconds and
the next server to look takes over, so a dead master is replaced within ttl + interval
(30 + 5 s by default). A master that cannot reach the datastore stops believing it is master
once its lease would have run out (`is_master` checks the time of the last renewal), so two
servers never both act for long. `stop()` deletes the key (and lease) so a clean shutdown
hands over at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from calico.datastore.kv import Backend, DatastoreError, KeyExists, KeyNotFound

from . import names

log = logging.getLogger(__name__)


class Elector:
    """This server's side of the election, on its own thread between `start()` and `stop()`:
    `is_master` holds only while its lease is known to be alive, `on_change(master)` is called on
    each change, and `stop()` steps down by revoking the lease."""

    def __init__(self, backend: Backend, server_id: str | None = None, *,
                 key: str = names.ELECTION_KEY, ttl: int = 30, interval: float | None = None,
                 on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 2:
            raise ValueError(f"election TTL must be at least 2 seconds, not {ttl}")
        self.backend, self.key, self.ttl = backend, key, int(ttl)
        self.interval = interval if interval is not None else max(self.ttl / 6, 0.5)
        if self.interval >= self.ttl:
            raise ValueError(f"election interval {self.interval} must be below the TTL {ttl}")
        self.id = f"{server_id or socket.gethostname()}:{os.getpid()}"
        self._on_change = on_change
        self._clock = clock
        self._lease = 0
        self._renewed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_master(self) -> bool:
        return bool(self._lease) and self._clock() - self._renewed < self.ttl - self.interval

    def start(self) -> Elector:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="calico-election",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, step_down: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if step_down and self._lease:
            try:
                self.backend.revoke(self._lease)  # deletes the key with it
            except DatastoreError as err:
                log.info("election: could not step down cleanly (%s); the key expires", err)
        self._set_lease(0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except DatastoreError as err:
                log.warning("election: datastore error: %s", err)
            except Exception:  # noqa: BLE001 - the election thread must not die
                log.exception("election: unexpected error")
            self._stop.wait(self.interval)

    def step(self) -> None:
        """One round: renew if master, else try to become master if nobody is."""
        if self._lease:
            try:
                self.backend.keepalive(self._lease)
            except KeyNotFound:
                log.warning("election: our lease expired; no longer master")
                self._set_lease(0)
            else:
                kv = self.backend.get(self.key)
                if kv is None or kv.value != self.id:
                    log.warning("election: key now holds %r; no longer master",
                                kv.value if kv else None)
                    self._revoke_quietly(self._lease)
                    self._set_lease(0)
                else:
                    self._renewed = self._clock()
                    return
        if self.backend.get(self.key) is not None:
            return
        lease = self.backend.grant_lease(self.ttl)
        try:
            self.backend.create(self.key, self.id, lease=lease)
        except KeyExists:
            self._revoke_quietly(lease)
            return
        self._renewed = self._clock()
        self._set_lease(lease)
        log.info("election: %s is now the master", self.id)

    def _revoke_quietly(self, lease: int) -> None:
        try:
            self.backend.revoke(lease)
        except DatastoreError:
            pass

    def _set_lease(self, lease: int) -> None:
        was = bool(self._lease)
        self._lease = lease
        if was != bool(lease) and self._on_change is not None:
            try:
                self._on_change(bool(lease))
            except Exception:  # noqa: BLE001
                log.exception("election: on_change callback failed")
