"""Felix's reports about itself: datastore status keys, health HTTP, Prometheus metrics.

Three independent pieces, each started explicitly by the daemon (nothing runs at import):

- `StatusReporter` writes, under `/calico/felix/v2/<region>/host/<hostname>/` (region
  "no-region", or "region-<r>" for OpenstackRegion r), Calico's keys:
    `status`                 {"time", "uptime", "first_update"} on a lease of `reportingTTL`
                             seconds, rewritten every `reportingInterval`: it vanishes when
                             Felix stops reporting, which is how the OpenStack driver and
                             operators see a dead Felix;
    `last_reported_status`   the same without a lease (the last sign of life);
    `workload/<orchestrator>/<workload>/endpoint/<endpoint>`  {"status": "up"|"down"|"error"}
                             per local workload endpoint, when `endpointReportingEnabled`
                             (no lease; stale ones are deleted on the first report after start).
  It runs on its own thread, so a slow datastore never holds up the dataplane; the main loop
  hands it endpoint states with `set_endpoints()` and it writes only what changed, at most
  once per `endpointReportingDelay`.
- `HealthServer`: `GET /liveness` and `/readiness` on healthHost:healthPort (loopback:9099),
  200 "ok" or 503 with the reasons, from a `Health` aggregate that components report into.
- `Metrics` (in `calico.felix.metrics`): Felix's Prometheus metrics on
  prometheusMetricsHost:prometheusMetricsPort (9091), in a registry of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from calico.datastore.kv import Backend, DatastoreError, KeyNotFound
from calico.felix.metrics import Metrics as Metrics  # re-exported: the daemon's import

log = logging.getLogger(__name__)

STATUS_PREFIX = "/calico/felix/v2"


# ---- datastore keys ------------------------------------------------------------------------


def host_prefix(region: str, hostname: str) -> str:
    return f"{STATUS_PREFIX}/{region}/host/{hostname}/"


def status_key(region: str, hostname: str) -> str:
    return host_prefix(region, hostname) + "status"


def last_status_key(region: str, hostname: str) -> str:
    return host_prefix(region, hostname) + "last_reported_status"


def _escape(name: str) -> str:
    return name.replace("/", "%2f")  # libcalico-go's escapeName


@dataclass(frozen=True, slots=True, order=True)
class EndpointKey:
    """A workload endpoint as status keys name it (libcalico-go's WorkloadEndpointStatusKey).
    `workload` is "<namespace>/<workload>", as libcalico-go derives it from a v3 resource."""

    orchestrator: str
    workload: str
    endpoint: str

    @classmethod
    def from_resource(cls, namespace: str, spec: Any) -> EndpointKey:
        def get(name: str) -> str:
            value = spec.get(name) if isinstance(spec, dict) else getattr(spec, name, None)
            return value or ""
        orchestrator = get("orchestrator")
        workload = get("pod") if orchestrator == "k8s" else get("workload")
        return cls(orchestrator, f"{namespace}/{workload or get('containerID')}",
                   get("endpoint"))

    def path(self, region: str, hostname: str) -> str:
        return (host_prefix(region, hostname) + f"workload/{_escape(self.orchestrator)}/"
                f"{_escape(self.workload)}/endpoint/{_escape(self.endpoint)}")


# ---- status reporter -----------------------------------------------------------------------


class StatusReporter:
    """Writes Felix's status keys and, when enabled, the endpoint statuses (see above) on its own
    thread between `start()` and `stop()`. `set_endpoints` and `set_intervals` are safe from any
    thread; datastore errors are counted in `errors` and retried, never raised."""

    def __init__(self, backend: Backend, hostname: str, region: str = "no-region", *,
                 interval: float = 30.0, ttl: float = 90.0, endpoint_reporting: bool = False,
                 endpoint_delay: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.backend, self.hostname, self.region = backend, hostname, region
        self.interval, self.ttl = interval, ttl
        self.endpoint_reporting, self.endpoint_delay = endpoint_reporting, endpoint_delay
        self._clock, self._wall = clock, wall
        self._started = clock()
        self._lease = 0
        self._first = True
        self._want: dict[EndpointKey, str] = {}
        self._written: dict[EndpointKey, str] | None = None  # None: not yet read back
        self._lock = threading.Lock()
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    # ---- inputs (any thread) ----

    def set_endpoints(self, states: Mapping[EndpointKey, str]) -> None:
        """The status every local endpoint should have ("up", "down", "error")."""
        with self._lock:
            if dict(states) == self._want:
                return
            self._want = dict(states)
        self._kick.set()

    def set_intervals(self, interval: float, ttl: float, endpoint_delay: float) -> None:
        self.interval, self.ttl, self.endpoint_delay = interval, ttl, endpoint_delay
        self._kick.set()

    # ---- lifecycle ----

    def start(self) -> StatusReporter:
        self._thread = threading.Thread(target=self._run, name="felix-status", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        next_status = 0.0
        while not self._stop.is_set():
            now = self._clock()
            try:
                if now >= next_status:
                    self.report_status()
                    next_status = now + max(self.interval, 0.1)
                if self.endpoint_reporting:
                    self.report_endpoints()
            except DatastoreError as err:
                self.errors += 1
                log.warning("Status report failed (%s); retrying", err)
                next_status = min(next_status, now + 1.0)
                self._stop.wait(1.0)
                continue
            wait = max(0.0, next_status - self._clock())
            self._kick.wait(wait)
            self._kick.clear()
            if self.endpoint_reporting and not self._stop.is_set():
                self._stop.wait(self.endpoint_delay)  # coalesce endpoint changes

    # ---- the writes (also callable directly, e.g. from tests) ----

    def report_status(self) -> None:
        """Write `status` (on a lease of `ttl` seconds) and `last_reported_status`."""
        uptime = self._clock() - self._started
        value = json.dumps({"time": self._wall().strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "uptime": round(uptime, 3), "first_update": self._first})
        ttl = max(1, round(self.ttl))
        if self._lease:
            try:
                self.backend.keepalive(self._lease)
            except KeyNotFound:
                self._lease = 0
        if not self._lease:
            self._lease = self.backend.grant_lease(ttl)
        try:
            self.backend.put(status_key(self.region, self.hostname), value, lease=self._lease)
        except KeyNotFound:  # the lease expired between keepalive and put
            self._lease = self.backend.grant_lease(ttl)
            self.backend.put(status_key(self.region, self.hostname), value, lease=self._lease)
        self.backend.put(last_status_key(self.region, self.hostname), value)
        if self._first:
            log.info("Reported Felix status to %s (TTL %ds)",
                     status_key(self.region, self.hostname), ttl)
        self._first = False

    def report_endpoints(self) -> None:
        """Write what changed since the last call; the first call also deletes stale keys."""
        with self._lock:
            want = dict(self._want)
        if self._written is None:
            self._written = self._read_back()
        for key in sorted(set(self._written) - set(want)):
            try:
                self.backend.delete(key.path(self.region, self.hostname))
            except KeyNotFound:
                pass
            del self._written[key]
        for key, status in sorted(want.items()):
            if self._written.get(key) != status:
                self.backend.put(key.path(self.region, self.hostname),
                                 json.dumps({"status": status}))
                self._written[key] = status
                log.info("Endpoint %s/%s/%s is %s", key.orchestrator, key.workload,
                         key.endpoint, status)

    def _read_back(self) -> dict[EndpointKey, str]:
        prefix = host_prefix(self.region, self.hostname) + "workload/"
        items, _ = self.backend.list(prefix)
        out = {}
        for kv in items:
            parts = kv.key[len(prefix):].split("/")
            if len(parts) != 4 or parts[2] != "endpoint":
                continue
            key = EndpointKey(*(p.replace("%2f", "/") for p in (parts[0], parts[1], parts[3])))
            try:
                out[key] = json.loads(kv.value).get("status", "")
            except (ValueError, AttributeError):
                out[key] = ""
        return out


# ---- health ----------------------------------------------------------------------------------


class Health:
    """Components report (live, ready); a report older than its timeout counts as not live."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._reports: dict[str, tuple[bool, bool, float, float, str]] = {}

    def report(self, name: str, *, live: bool = True, ready: bool = True,
               timeout: float = 0.0, detail: str = "") -> None:
        with self._lock:
            self._reports[name] = (live, ready, self._clock(), timeout, detail)

    def problems(self, kind: str) -> list[str]:
        """What stops Felix being `kind` ("live" or "ready"); [] when it is."""
        now = self._clock()
        out = []
        with self._lock:
            reports = dict(self._reports)
        if not reports:
            return ["nothing has reported yet"]
        for name, (live, ready, at, timeout, detail) in sorted(reports.items()):
            if timeout and now - at > timeout:
                out.append(f"{name}: no report for {now - at:.0f}s (timeout {timeout:.0f}s)")
            elif not (live if kind == "live" else ready):
                out.append(f"{name}: not {kind}" + (f" ({detail})" if detail else ""))
        return out


class HealthServer:
    """`GET /liveness`, `/readiness` (200 or 503), on its own thread."""

    def __init__(self, health: Health, host: str = "localhost", port: int = 9099) -> None:
        self.health = health
        handler = _health_handler(health)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="felix-health",
                                        daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _health_handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            kind = {"/liveness": "live", "/readiness": "ready"}.get(self.path.split("?")[0])
            if kind is None:
                self.send_error(404)
                return
            problems = health.problems(kind)
            body = ("ok\n" if not problems else "\n".join(problems) + "\n").encode()
            self.send_response(503 if problems else 200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
