"""`calico-felix`: the per-host agent. Syncer → queue → calc graph → dataplane driver.

    calico-felix [--hostname NAME] [--config-file /etc/calico/felix.cfg]

The datastore comes from DATASTORE_TYPE (local | etcdv3), CALICO_DATASTORE_PATH,
ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE, ETCD_USERNAME, ETCD_PASSWORD,
overridden by Felix's DatastoreType, EtcdEndpoints, EtcdCaFile, ... from FELIX_<NAME> or the
config file (`calico.felix.config.datastore_config`). Felix never creates a local store: a
missing one is an error naming the path. Felix's own parameters come from FELIX_<NAME>, the
config file, and the FelixConfiguration resources (see `calico.felix.config`).

Threads: the syncer's (datastore list+watch), the link watcher's, the status reporter's and
the HTTP servers'. Only the main thread touches the calc graph and the dataplane; the others
put items on one queue (syncer updates and status, "wake" from the link watcher). The main
loop takes everything queued (a burst of updates becomes one batch), feeds the calc graph,
flushes it, hands the messages to the driver and applies once. When the queue is empty and
there was work since, it returns free heap to the kernel at most every 10 s (heap.py).

Start is stateless and never disturbs traffic:
1. read the FelixConfiguration resources (so the health port etc. are known up front);
2. start the driver: it reads the kernel's nftables table (and, on the first apply, routes,
   links and sysctls) and changes nothing;
3. start the syncer and feed its snapshot to the calc graph, without flushing: nothing is
   applied until the syncer says `in-sync`;
4. flush the whole snapshot and apply only the difference between it and the kernel.

A change to datastore config that needs a restart makes Felix exit with code 129 (Calico's
"config changed") after stopping its threads; SIGHUP does the same, and so does a datastore
locked for migration, which Felix waits out before step 1 (readiness.py). SIGTERM and SIGINT exit 0.
Neither touches the dataplane: what is programmed stays programmed for the next Felix.
SIGUSR1 writes a heap profile when DebugMemoryProfilePath is set (heap.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from calico import logsetup
from calico.datastore import ConfigError, connect
from calico.datastore.client import decode, kind_prefix
from calico.datastore.errors import CorruptResource
from calico.datastore.kv import Backend, DatastoreError
from calico.datastore.syncer import Syncer, SyncStatus, SyncUpdate
from calico.felix import heap, readiness
from calico.felix import messages as m
from calico.felix.calc import CalcGraph
from calico.felix.config import (
    LIVE_PARAMS,
    RESTART_EXIT_CODE,
    ConfigLoader,
    FelixConfig,
    datastore_config,
)
from calico.felix.dataplane.driver import DataplaneDriver
from calico.felix.heap import HeapProfiler, IdleTrimmer
from calico.felix.metrics import RESYNC_STATE, ClusterCounts
from calico.felix.status import EndpointKey, Health, HealthServer, Metrics, StatusReporter

log = logging.getLogger("calico.felix")

SYNC_KINDS = ("FelixConfiguration", "Node", "IPPool", "Profile", "GlobalNetworkPolicy",
              "NetworkPolicy", "GlobalNetworkSet", "NetworkSet", "HostEndpoint",
              "WorkloadEndpoint", "Tier", "AddressSpace",
              "/calico/ipam/v2/assignment/")  # IPAM blocks: VXLAN routes
MAX_BATCH = 10_000  # queue items (syncer batches) taken into one calc-graph flush
POLL = 0.25  # longest sleep of the main loop: how quickly it notices a stop request

DriverFactory = Callable[[str, FelixConfig, Callable[[], None]], DataplaneDriver]


def linux_driver(hostname: str, config: FelixConfig, wake: Callable[[], None]) -> DataplaneDriver:
    return DataplaneDriver.linux(hostname, wake=wake,
                                 nft_refresh_interval=config.nftablesRefreshInterval)


def dataplane_config(config: FelixConfig) -> m.ConfigUpdate:
    """The effective config as the dataplane managers read it (Felix names, text values).
    DeviceRouteProtocol is passed only when set: Calico's default (3, "boot") is also what
    `ip route add` uses, so the host network keeps its own unambiguous default instead."""
    text = config.as_text()
    if config.source("DeviceRouteProtocol") == "default":
        text.pop("DeviceRouteProtocol", None)
    return m.ConfigUpdate(text)


def read_datastore_config(backend: Backend, hostname: str) -> dict[str, str]:
    """The merged FelixConfiguration ("default" under "node.<hostname>") as the calc graph
    would send it, read directly: Felix needs it before the syncer runs."""
    graph = CalcGraph(hostname)
    for name in ("default", f"node.{hostname}"):
        key = kind_prefix("FelixConfiguration") + name
        kv = backend.get(key)
        if kv is None:
            continue
        try:
            graph.on_update(key, decode(key, kv.value, kv.mod_revision))
        except CorruptResource as err:
            log.warning("Ignoring FelixConfiguration %s: %s", name, err)
    for msg in graph.flush():
        if isinstance(msg, m.ConfigUpdate):
            return dict(msg.config)
    return {}


class Felix:
    """The agent (see above): `run()` starts everything and returns the exit code, and only its
    thread touches the calc graph and the dataplane driver. `on_status`, `on_updates`, `wake`,
    `stop` and `request_heap_profile` only queue or flag work: safe from any thread."""

    def __init__(self, hostname: str, loader: ConfigLoader, backend: Backend, *,
                 driver_factory: DriverFactory = linux_driver,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hostname, self.loader, self.backend = hostname, loader, backend
        self._driver_factory = driver_factory
        self._clock = clock
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop_code: int | None = None
        self.config: FelixConfig = loader.load()
        self.health = Health(clock)
        self.metrics: Metrics | None = None
        self.reporter: StatusReporter | None = None
        self.driver: DataplaneDriver | None = None
        self.graph = CalcGraph(hostname)
        self._servers: list[Any] = []
        self._syncer: Syncer | None = None
        self._lock_watcher: readiness.LockWatcher | None = None
        self._synced = False          # the syncer has said in-sync
        self._programmed = False      # the in-sync snapshot has been applied
        self._endpoint_keys: dict[m.WorkloadEndpointID, EndpointKey] = {}
        self._cluster = ClusterCounts()
        self._updates_before_sync = 0
        self._heap = IdleTrimmer(clock=clock)
        self._profiler: HeapProfiler | None = None
        self._profile_requested = False

    # ---- syncer callbacks (syncer thread) ----

    def on_status(self, status: SyncStatus) -> None:
        self._queue.put(("status", status))

    def on_updates(self, updates: list[SyncUpdate]) -> None:
        self._queue.put(("updates", updates))

    def wake(self) -> None:
        self._queue.put(("wake", None))

    def request_heap_profile(self) -> None:
        """Write a heap profile at the next turn of the main loop (safe from a signal
        handler); ignored, with a log, unless DebugMemoryProfilePath is set."""
        self._profile_requested = True

    def stop(self, code: int = 0) -> None:
        """Ask the main loop to exit with `code` (safe from a signal handler)."""
        if self._stop_code is None:
            self._stop_code = code

    # ---- run ----

    def run(self) -> int:
        started = self._clock()
        if not readiness.wait_until_ready(self.backend, lambda: self._stop_code is not None):
            return self._stop_code or 0
        try:
            datastore_config = read_datastore_config(self.backend, self.hostname)
        except DatastoreError as err:
            log.warning("Cannot read FelixConfiguration yet (%s); starting with local config",
                        err)
            datastore_config = {}
        self.config = self.loader.load(datastore_config)
        self._log_config()
        try:
            self._start_services()
            return self._loop(started)
        finally:
            self._shutdown()

    def _log_config(self) -> None:
        explicit = self.config.explicit()
        log.info("Felix starting on host %s; %d parameters set: %s", self.hostname,
                 len(explicit), ", ".join(f"{k}={v!r} ({s})" for k, (v, s) in
                                          sorted(explicit.items())) or "none")

    def _start_services(self) -> None:
        cfg = self.config
        self.health.report("felix-startup", live=True, ready=False, detail="not in sync yet")
        if cfg.healthEnabled:
            server = HealthServer(self.health, cfg.healthHost, cfg.healthPort).start()
            self._servers.append(server)
            log.info("Health checks on http://%s:%d/liveness and /readiness", cfg.healthHost,
                     server.port)
        if cfg.debugMemoryProfilePath:
            self._profiler = HeapProfiler(cfg.debugMemoryProfilePath)
            self._profiler.start()
        self.metrics = Metrics()
        if cfg.prometheusMetricsEnabled:
            self.metrics.start_server(cfg.prometheusMetricsHost or "localhost",
                                      cfg.prometheusMetricsPort)
            self._servers.append(self.metrics)
        self.driver = self._driver_factory(self.hostname, cfg, self.wake)
        self.driver.on_message(dataplane_config(cfg))
        self.driver.start()
        self._syncer = Syncer(self.backend, SYNC_KINDS, self).start()
        self._lock_watcher = readiness.LockWatcher(
            self.backend, lambda: self.stop(RESTART_EXIT_CODE)).start()

    def _shutdown(self) -> None:
        if self._lock_watcher is not None:
            self._lock_watcher.stop()
        if self._syncer is not None:
            self._syncer.stop()
        if self.reporter is not None:
            self.reporter.stop()
        for server in self._servers:
            server.stop()
        if self.driver is not None:
            self.driver.stop()
        log.info("Felix stopped; the dataplane stays as programmed")

    def _loop(self, started: float) -> int:
        while self._stop_code is None:
            if self._profile_requested:
                self._profile_requested = False
                if self._profiler is None:
                    log.warning("Asked for a heap profile, but DebugMemoryProfilePath is not set")
                else:
                    self._profiler.dump()
            if self._queue.empty():
                self._heap.maybe_trim()
            due = self.driver.seconds_until_due() if self.driver else None
            items = self._take(POLL if due is None else min(due, POLL))
            woke = self._consume(items)
            if self._stop_code is not None or not self._synced:
                self.health.report("felix-startup", live=True, ready=False,
                                   detail="waiting for the datastore to sync")
                continue
            calc_start = self._clock()
            messages = self.graph.flush()
            if items and self.metrics:
                self.metrics.calc_time.observe(self._clock() - calc_start)
                self.metrics.counters.inc("felix_calc_graph_output_events", len(messages))
            for msg in messages:
                self._dispatch(msg)
            if self._stop_code is not None:
                break
            due = self.driver.seconds_until_due()
            if messages or woke or (due is not None and due <= 0):
                self._apply(messages, started)
                self._heap.worked()
            self.health.report("dataplane", live=True, ready=self._programmed,
                               timeout=max(self.config.dataplaneWatchdogTimeout, 1.0))
        return self._stop_code

    def _take(self, timeout: float) -> list[tuple[str, Any]]:
        items = []
        try:
            items.append(self._queue.get(timeout=max(timeout, 0.0)))
            while len(items) < MAX_BATCH:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return items

    def _consume(self, items: list[tuple[str, Any]]) -> bool:
        """Feed queued items to the calc graph; True if a wake-up was among them."""
        woke = False
        for kind, payload in items:
            if kind == "updates":
                for update in payload:
                    change = self._tap(update)
                    if self.metrics:
                        self.metrics.counters.inc("felix_calc_graph_updates_processed",
                                                  type=change)
                    self.graph.on_update(update.key, update.value)
                if not self._synced:
                    self._updates_before_sync += len(payload)
            elif kind == "status":
                self.graph.on_status(payload)
                if self.metrics:
                    self.metrics.resync_state.set(RESYNC_STATE[payload.value])
                if payload is SyncStatus.RESYNC and self.metrics:
                    self.metrics.counters.inc("felix_resyncs_started")
                if payload is SyncStatus.IN_SYNC:
                    log.info("Datastore in sync: %d resources in the snapshot",
                             self._updates_before_sync)
                    self._synced = True
            else:
                woke = True
        return woke

    def _tap(self, update: SyncUpdate) -> str:
        """What Felix needs from raw resources besides the calc graph: local endpoints'
        status-key identities and cluster-wide counts for metrics. Returns the kind of
        change as Calico's metrics name it: new, update or delete."""
        if "/projectcalico.org/" not in update.key:  # an IPAM block: not counted
            return "delete" if update.value is None else "update"
        plural, _, rest = update.key.rpartition("/projectcalico.org/")[2].partition("/")
        change = self._cluster.observe(update.key, plural, rest, update.value)
        if plural != "workloadendpoints":
            return change
        namespace, _, name = rest.rpartition("/")
        ep_id = m.WorkloadEndpointID(namespace, name)
        spec = getattr(update.value, "spec", None)
        if spec is not None and spec.node == self.hostname:
            self._endpoint_keys[ep_id] = EndpointKey.from_resource(namespace, spec)
        else:
            self._endpoint_keys.pop(ep_id, None)
        return change

    def _dispatch(self, msg: m.Message) -> None:
        if isinstance(msg, m.ConfigUpdate):
            self._on_config(msg)
            return
        if isinstance(msg, m.WorkloadEndpointUpdate | m.HostEndpointUpdate):
            if msg.id not in getattr(self.driver, "local_endpoints", {}):
                log.info("Endpoint %s on %s: programming", msg.id, msg.interface or "-")
        elif isinstance(msg, m.WorkloadEndpointRemove | m.HostEndpointRemove):
            log.info("Endpoint %s removed", msg.id)
        if self.metrics:
            self.metrics.counters.inc("felix_int_dataplane_messages",
                                      type=type(msg).__name__)
        self.driver.on_message(msg)

    def _on_config(self, msg: m.ConfigUpdate) -> None:
        new = self.loader.load(msg.config)
        changed = new.changed(self.config)
        if not changed:
            return
        desc = ", ".join(f"{p.name}: {self.config.raw(p.name)!r} -> {new.raw(p.name)!r}"
                         for p in changed)
        if any(p.name.lower() not in LIVE_PARAMS for p in changed):
            log.warning("Config changed (%s); exiting with code %d so that Felix restarts "
                        "with it", desc, RESTART_EXIT_CODE)
            self.stop(RESTART_EXIT_CODE)
            return
        log.info("Config changed (%s); applied without a restart", desc)
        self.config = new
        if any(p.name.startswith("LogSeverity") for p in changed):
            configure_logging(new)
        self.driver.set_refresh_interval(new.nftablesRefreshInterval)
        self.driver.on_message(dataplane_config(new))
        if self.reporter is not None:
            self.reporter.set_intervals(new.reportingInterval, new.reportingTTL,
                                        new.endpointReportingDelay)

    def _apply(self, messages: list[m.Message], started: float) -> None:
        t0 = self._clock()
        try:
            result = self.driver.apply()
        except Exception as err:
            log.error("Dataplane apply failed (%s); re-reading the kernel and retrying", err,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            if self.metrics:
                self.metrics.counters.inc("felix_int_dataplane_failures")
            self.health.report("dataplane", live=True, ready=self._programmed,
                               detail=f"apply failed: {err}")
            self._report_endpoints()
            return
        elapsed = self._clock() - t0
        if result is None:
            return
        if self.metrics:
            self.metrics.apply_time.observe(elapsed)
            self.metrics.batch_size.observe(len(messages))
            for name in result.refreshed:
                self.metrics.counters.inc("felix_nft_refreshes", kind=name)
            if "host network" in result.refreshed:
                self.metrics.route_list_time.observe(result.hostnet_seconds)
        if not self._programmed:
            self._programmed = True
            self.health.report("felix-startup", live=True, ready=True)
            log.info("Dataplane programmed from the in-sync snapshot %.2fs after start: "
                     "%d messages, nftables %d lines in %.3fs, host network %.3fs",
                     self._clock() - started, len(messages), result.nft_script_lines,
                     result.nft_seconds, result.hostnet_seconds)
            self._start_reporter()
        elif messages or result.nft_script_lines:
            kinds = Counter(type(x).__name__ for x in messages)
            log.info("Applied %s: nftables %d lines in %.3fs, host network %.3fs",
                     ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "a repair",
                     result.nft_script_lines, result.nft_seconds, result.hostnet_seconds)
        self._update_gauges()
        self._report_endpoints()

    def _start_reporter(self) -> None:
        cfg = self.config
        self.reporter = StatusReporter(
            self.backend, self.hostname, cfg.region, interval=cfg.reportingInterval,
            ttl=cfg.reportingTTL, endpoint_reporting=cfg.endpointReportingEnabled,
            endpoint_delay=cfg.endpointReportingDelay, clock=self._clock).start()

    def _report_endpoints(self) -> None:
        if self.reporter is None or not self.config.endpointReportingEnabled:
            return
        states = {}
        for ep_id, state in self.driver.endpoint_states().items():
            key = self._endpoint_keys.get(ep_id)
            if key is not None:
                states[key] = state
        self.reporter.set_endpoints(states)

    def _update_gauges(self) -> None:
        if not self.metrics:
            return
        count = self._cluster.count
        self.metrics.cluster_endpoints.set(count("workloadendpoints"))
        self.metrics.cluster_host_endpoints.set(count("hostendpoints"))
        self.metrics.cluster_hosts.set(self._cluster.hosts())
        self.metrics.cluster_policies.set(count("networkpolicies", "globalnetworkpolicies"))
        self.metrics.cluster_profiles.set(count("profiles"))
        self.metrics.local_endpoints.set(len(self.driver.local_endpoints))
        self.metrics.local_policies.set(len(self.driver.active_policies))
        self.metrics.cluster_tiers.set(count("tiers"))
        self.metrics.local_ipsets.set(len(self.driver.ip_sets))
        # Every IP set Felix programs is a selector's (or a named port's): one per selector.
        self.metrics.local_selectors.set(len(self.driver.ip_sets))
        self.metrics.total_ipsets.set(len(self.driver.ip_sets))
        self.metrics.label_index_endpoints.set(count(
            "workloadendpoints", "hostendpoints", "networksets", "globalnetworksets"))


# ---- command line ------------------------------------------------------------------------


def configure_logging(config: FelixConfig) -> None:
    """Felix's log channels from its parameters (screen, file with rotation-safe reopening,
    syslog; see calico.logsetup). Applied again, live, when they change."""
    logsetup.configure("felix", logsetup.LogConfig(
        screen=config.logSeverityScreen, file_path=config.logFilePath,
        file=config.logSeverityFile, sys=config.logSeveritySys))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="calico-felix", description="Calico's per-host agent: programs routes, "
        "nftables and sysctls for the local endpoints from the datastore.")
    parser.add_argument("--hostname", help="this host's Calico node name (default: "
                        "FELIX_FELIXHOSTNAME, else the system hostname)")
    parser.add_argument("-c", "--config-file", help="Felix's INI config file ([global] "
                        "section; default /etc/calico/felix.cfg if it exists)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = dict(os.environ)
    if args.config_file and not os.path.exists(args.config_file):
        print(f"calico-felix: config file {args.config_file} does not exist", file=sys.stderr)
        return 2
    loader = ConfigLoader(env=env, config_file=args.config_file)
    local = loader.load()
    configure_logging(local)
    hostname = args.hostname or local.felixHostname or socket.gethostname()
    loader.hostname = hostname
    try:
        backend = connect(datastore_config(local, env), create=False)
    except (ConfigError, DatastoreError) as err:
        print(f"calico-felix: datastore: {err}", file=sys.stderr)
        return 2
    felix = Felix(hostname, loader, backend)
    heap.tune_gc()
    signal.signal(signal.SIGTERM, lambda *_: felix.stop(0))
    signal.signal(signal.SIGINT, lambda *_: felix.stop(0))
    signal.signal(signal.SIGHUP, lambda *_: felix.stop(RESTART_EXIT_CODE))
    signal.signal(signal.SIGUSR1, lambda *_: felix.request_heap_profile())
    try:
        code = felix.run()
    finally:
        backend.close()
    logging.getLogger("calico.felix").info("Exiting with code %d", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
