"""Felix's status reports -> Neutron port status and agent liveness.

In: the datastore keys Felix writes under `/calico/felix/v2/<region>/host/<host>/` (the
region string Felix derives from its `OpenstackRegion`, names.Region):
`workload/openstack/<workload>/endpoint/<port-id>` = {"status": "up"|"down"|"error"} per
endpoint, and `status` (on a lease, rewritten every reporting interval) as its heartbeat.
Out, through two callables the driver passes in:
- `set_port_status(port_id, status)` with Neutron's ACTIVE / DOWN / ERROR (a deleted
  endpoint report means DOWN);
- `felix_alive(host)` on each heartbeat (the driver reports a Neutron agent "Calico per-host
  agent (felix)" on that host; Neutron marks it dead by itself when heartbeats stop).

`run_while(active)` lists the whole prefix, applies it, then follows the watch until
`active()` turns false (the driver passes "am I the master?"): a new master always starts
from a full list, so nothing reported while nobody was master is lost. Reports are applied
in revision order; a port status is only pushed when it differs from what this watcher last
pushed. A push that fails (Neutron's database busy or deadlocked) is retried about every
`poll` seconds until it succeeds or a newer report for that port supersedes it: a report is never
repeated by Felix, so dropping it would leave the port in its old status for good.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from calico.datastore.kv import Backend, DatastoreError, EventType

from . import names

log = logging.getLogger(__name__)

FELIX_TO_NEUTRON = {"up": "ACTIVE", "down": "DOWN", "error": "ERROR"}


def neutron_status(value: str | None) -> str:
    """Neutron's port status for a Felix endpoint report (None: the report was deleted)."""
    if value is None:
        return "DOWN"
    try:
        felix = json.loads(value).get("status")
    except (ValueError, AttributeError):
        return "ERROR"
    return FELIX_TO_NEUTRON.get(felix, "ERROR")


class StatusWatcher:
    """Turns Felix's status keys into `set_port_status` and `felix_alive` calls (see above): a port
    status is pushed only when it changed, a failed push retried until it succeeds or is
    superseded. Unlocked: driven by the master's status loop only."""

    def __init__(self, backend: Backend, set_port_status: Callable[[str, str], None],
                 felix_alive: Callable[[str], None] | None = None,
                 region: names.Region = names.NO_REGION) -> None:
        self.backend, self.region = backend, region
        self._set_port_status = set_port_status
        self._felix_alive = felix_alive
        self._pushed: dict[str, str] = {}
        self._failed: dict[str, str] = {}  # port id -> status whose push failed

    def apply(self, key: str, value: str | None) -> None:
        ep = self.region.parse_endpoint_status_key(key)
        if ep is not None:
            _host, port_id = ep
            self._push(port_id, neutron_status(value))
            return
        host = self.region.parse_felix_status_key(key)
        if host is not None and value is not None and self._felix_alive is not None:
            try:
                self._felix_alive(host)
            except Exception:  # noqa: BLE001
                log.exception("reporting Felix on %s alive failed", host)

    def _push(self, port_id: str, status: str) -> None:
        self._failed.pop(port_id, None)
        if self._pushed.get(port_id) == status:
            return
        try:
            self._set_port_status(port_id, status)
            self._pushed[port_id] = status
        except Exception as err:  # noqa: BLE001 - retried by retry_failed()
            log.warning("setting port %s to %s failed (%s); will retry", port_id, status, err)
            self._failed[port_id] = status

    def forget(self, port_id: str) -> None:
        """Someone else set this port's status (the driver's ERROR for a port it cannot map):
        the next Felix report for it is pushed even if it says what was pushed before."""
        self._pushed.pop(port_id, None)
        self._failed.pop(port_id, None)

    def retry_failed(self) -> None:
        """Push again the statuses whose last push failed."""
        for port_id, status in list(self._failed.items()):
            self._push(port_id, status)

    def run_while(self, active: Callable[[], bool], stop: threading.Event,
                  poll: float = 1.0) -> None:
        """List and apply everything, then apply changes while `active()` and not stopped."""
        self._pushed.clear()
        self._failed.clear()
        prefix = self.region.felix_status_prefix
        items, revision = self.backend.list(prefix)
        for kv in items:
            self.apply(kv.key, kv.value)
        with self.backend.watch(prefix, revision + 1) as watcher:
            retry_at = 0.0
            while active() and not stop.is_set():
                for event in watcher.events(timeout=poll):
                    self.apply(event.key,
                               event.value if event.type is EventType.PUT else None)
                if self._failed and time.monotonic() >= retry_at:
                    retry_at = time.monotonic() + poll
                    self.retry_failed()


def run_status_loop(watcher: StatusWatcher, active: Callable[[], bool], stop: threading.Event,
                    retry: float = 2.0) -> None:
    """The driver's status thread: follow reports whenever this server is master."""
    while not stop.is_set():
        if not active():
            stop.wait(0.5)
            continue
        try:
            watcher.run_while(active, stop)
        except DatastoreError as err:
            log.warning("status watch interrupted: %s; listing again", err)
            stop.wait(retry)
        except Exception:  # noqa: BLE001 - the status thread must not die
            log.exception("status watch failed")
            stop.wait(retry)
