"""The driver's core: Neutron events and the periodic resync -> the Calico datastore.

Neutron-free on purpose. It reaches Neutron only through a `NeutronView` (the shim in
neutron_view.py for a real server, a fake in unit tests) and the datastore only through a
`kv.Backend`; mech_calico.py is the thin ML2 adapter that calls it.

What flows in:
- event handlers, called by whichever Neutron server handled the API call, after Neutron
  committed it: `port_changed(port, original)`, `port_deleted(port)`, `subnet_changed`,
  `subnet_deleted`, `security_group_changed(sg_id)`, `security_group_deleted(sg_id)`,
  `floating_ips_changed(port_ids)` (the endpoints' ipNATs, floating.py);
- `felix_live(host)`, asked by `bind_port`: is a Felix reporting for that host now?
- the election (election.py): only the master runs the resync, the status loop and the
  etcd compaction.

What flows out, all in the configured region (names.Region): WorkloadEndpoints,
NetworkPolicies and subnet records (syncers.py, with compare-and-swap), Calico IPAM
assignments for fixed IPs, with `address_spaces = per_network` an AddressSpace and IPPools
per network (spaces.py), ClusterInformation and FelixConfiguration `default`
(clusterconfig.py), Neutron port status (ERROR for a port that cannot be mapped) and Felix
agent heartbeats (status.py).

Live migration (Nova sets `migrating_to` in the port's binding profile before it moves the
VM, then changes the binding host): while `migrating_to` is set the port has an endpoint on
both hosts, so the destination's Felix programs routes and policy before the switch-over;
the source's endpoint goes only when the binding host changes. Stale endpoints of a port are
always deleted after its wanted ones are written.

Failure rule: a Neutron API call that Neutron committed never fails because of Calico. Each
handler retries datastore errors a few times (short backoff), then logs, and asks for an
early resync, which repairs whatever was missed (Neutron is the source of truth). A port,
group or subnet that cannot be mapped is logged once (naming it and the value) and skipped;
everything else goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from calico.datastore.client import ResourceClient
from calico.datastore.kv import Backend, DatastoreError

from . import names
from .addresses import PortAddresses
from .clusterconfig import ensure_cluster_information, ensure_felix_configuration
from .compaction import Compactor
from .election import Elector
from .endpoints import at_host, endpoint_name, is_bound_endpoint, migration_target
from .keystone import Projects
from .spaces import SpaceSyncer
from .spaces import wanted as wanted_spaces
from .status import StatusWatcher, run_status_loop
from .syncer import Snapshot
from .syncers import EndpointSyncer, PolicySyncer, SubnetSyncer, Unmappable

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.1, 0.3, 1.0)
COMPACTION_CHECK_INTERVAL = 60.0


class NeutronView(Protocol):
    """What the driver needs from Neutron (all reads with an admin context)."""

    def snapshot(self) -> Snapshot: ...

    def subnets(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...

    def networks(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The networks (for their `mtu`, `dns_domain`) that still exist, by id."""

    def security_groups(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The groups (with `security_group_rules`) that still exist, by id."""

    def set_port_status(self, port_id: str, status: str) -> None: ...

    def port(self, port_id: str) -> dict[str, Any] | None:
        """The port, None if it no longer exists."""

    def floating_ips(self, port_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The floating IPs associated with these ports, by floating IP id."""

    def felix_alive(self, host: str) -> None: ...


@dataclass
class DriverConfig:
    resync_interval: float = 60.0
    election_ttl: int = 30
    election_interval: float | None = None
    server_id: str | None = None
    ipam: bool = True
    region: str | None = None
    address_spaces: str = "off"  # per_network: each network is an AddressSpace (spaces.py)
    etcd_compaction_period_mins: int = 0
    etcd_compaction_min_revisions: int = 1000


class CalicoDriver:
    """Keeps the datastore matching Neutron (see above). The event handlers may be called from any
    thread of any server and never raise for a datastore failure (retried, then left to the
    resync); `start()` joins the election, and the master runs the resync, status and
    compaction loops."""

    def __init__(self, backend: Backend, neutron: NeutronView,
                 config: DriverConfig | None = None, *,
                 projects: Projects | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.backend, self.neutron = backend, neutron
        self.config = config or DriverConfig()
        self.region = names.Region(self.config.region or None)
        self.projects = projects
        self._sleep = sleep
        self.addresses = PortAddresses(backend) if self.config.ipam else None
        per_network = self.config.address_spaces == "per_network"
        self.endpoints = EndpointSyncer(backend, self.addresses, self.region, per_network)
        self.spaces = SpaceSyncer(ResourceClient(backend), self.region) if per_network else None
        self.policies = PolicySyncer(backend, self.region)
        self.subnets = SubnetSyncer(backend, self.region)
        self.compactor = Compactor(backend, self.config.etcd_compaction_period_mins,
                                   self.config.etcd_compaction_min_revisions)
        self.elector = Elector(backend, self.config.server_id, key=self.region.election_key,
                               ttl=self.config.election_ttl,
                               interval=self.config.election_interval,
                               on_change=self._on_election)
        self.status = StatusWatcher(backend, neutron.set_port_status, neutron.felix_alive,
                                    region=self.region)
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._lock = threading.Lock()
        self.resyncs = 0
        self.last_resync_error: str | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the election, resync and status threads (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self.elector.start()
        loops = [("calico-resync", self._resync_loop),
                 ("calico-status", lambda: run_status_loop(
                     self.status, lambda: self.elector.is_master, self._stop))]
        if self.compactor.enabled:
            loops.append(("calico-compaction", self._compaction_loop))
        for name, target in loops:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        for t in self._threads:
            t.join(timeout=10)
        self.elector.stop()

    def request_resync(self) -> None:
        self._kick.set()

    def _on_election(self, master: bool) -> None:
        log.info("this server is %s the Calico master", "now" if master else "no longer")
        if master:
            self._kick.set()

    # ---- binding (any server) --------------------------------------------------------------

    def felix_live(self, host: str) -> bool:
        """Whether a Felix reports for `host` now: its status key (on a lease Felix keeps
        renewing) exists, under the host's name as given or as a Calico node name."""
        candidates = [host]
        try:
            candidates.append(names.node_name(host))
        except names.UnmappableName:
            pass
        try:
            return any(self.backend.get(self.region.felix_status_key(h)) is not None
                       for h in dict.fromkeys(candidates))
        except DatastoreError as err:
            log.warning("host %s: cannot tell whether Felix is alive (%s)", host, err)
            return False

    # ---- event handlers (any server) ------------------------------------------------------

    def port_changed(self, port: Mapping[str, Any], original: Mapping[str, Any] | None = None
                     ) -> None:
        self._safely(f"port {port.get('id')}", lambda: self._port_changed(port, original))

    def _port_changed(self, port: Mapping[str, Any], original: Mapping[str, Any] | None) -> None:
        wanted: dict[str, Any] = {}
        if is_bound_endpoint(port):
            try:
                wanted = self.endpoints.port_records(port, self._port_snapshot(port))
                if self.endpoints.unmappable_log.forget(str(port.get("id"))):
                    self._recovered_port(port)
            except Unmappable as err:
                self._unmappable_port(port, str(err))
        for key, res in wanted.items():
            self.endpoints.sync_one(key, res)
        keep = set(wanted)
        if port.get("binding:vif_type") == "unbound" and port.get("binding:host_id"):
            # Between a host change and the new binding: the destination's endpoint (written
            # while migrating_to was set) stays; the bind that follows rewrites it.
            keep |= self._endpoint_keys(port, with_target=False)
        stale = self._endpoint_keys(original) - keep if original is not None else set()
        for key in sorted(stale):
            self.endpoints.sync_one(key, None)
        if stale and not wanted and not names.is_endpoint_port(dict(port)):
            self._release(port)

    def _endpoint_keys(self, port: Mapping[str, Any] | None, with_target: bool = True
                       ) -> set[str]:
        """The keys of the endpoints a port had: on its host and, during a migration, on
        the destination (names that cannot be mapped had no endpoint)."""
        if port is None or not names.is_endpoint_port(dict(port)):
            return set()
        hosts = [port.get("binding:host_id")]
        if with_target:
            hosts.append(migration_target(port))
        keys = set()
        for host in hosts:
            if not host:
                continue
            try:
                keys.add(self.endpoints.prefix() + endpoint_name(at_host(port, host)))
            except (names.UnmappableName, ValueError):
                continue
        return keys

    def _port_snapshot(self, port: Mapping[str, Any]) -> Snapshot:
        subnet_ids = [f.get("subnet_id") for f in port.get("fixed_ips") or []
                      if isinstance(f, Mapping)]
        project_id = port.get("project_id") or port.get("tenant_id")
        project = self.projects.get(project_id) if self.projects is not None else None
        return Snapshot(subnets=self.neutron.subnets(i for i in subnet_ids if i),
                        security_groups=self.neutron.security_groups(
                            port.get("security_groups") or []),
                        projects={project_id: project} if project is not None else {},
                        floating_ips=self.neutron.floating_ips([port["id"]]))

    def _unmappable_port(self, port: Mapping[str, Any], reason: str) -> None:
        """Log (once per reason) and put the port in ERROR: it cannot have an endpoint."""
        port_id = str(port.get("id"))
        self.endpoints.unmappable_log.report(port_id, reason)
        self.status.forget(port_id)
        if port.get("status") == "ERROR":
            return
        try:
            self.neutron.set_port_status(port_id, "ERROR")
        except Exception as err:  # noqa: BLE001 - the resync sets it again
            log.warning("port %s: setting ERROR failed (%s); the resync retries", port_id, err)

    def _recovered_port(self, port: Mapping[str, Any]) -> None:
        """A port this server had put in ERROR maps again: DOWN until Felix reports on it."""
        if port.get("status") != "ERROR":
            return
        try:
            self.neutron.set_port_status(str(port.get("id")), "DOWN")
        except Exception as err:  # noqa: BLE001 - Felix's report will set it anyway
            log.warning("port %s: setting DOWN failed (%s)", port.get("id"), err)

    def floating_ips_changed(self, port_ids: Iterable[str]) -> None:
        """A floating IP was created, (re-/dis)associated or deleted: rewrite the endpoints
        of the ports it pointed at, before and after (their ipNATs, floating.py)."""
        for port_id in sorted(set(port_ids)):
            def write(port_id: str = port_id) -> None:
                port = self.neutron.port(port_id)
                if port is not None:  # a deleted port's endpoint went with it
                    self._port_changed(port, None)
            self._safely(f"port {port_id} (floating IP)", write)

    def port_deleted(self, port: Mapping[str, Any]) -> None:
        def delete() -> None:
            for key in sorted(self._endpoint_keys(port)):
                self.endpoints.sync_one(key, None)
            if names.is_endpoint_port(dict(port)):
                self._release(port)
        self._safely(f"port {port.get('id')}", delete)

    def _release(self, port: Mapping[str, Any]) -> None:
        if self.addresses is not None:
            self.addresses.release(port["id"], port.get("binding:host_id") or "",
                                   self.endpoints.space_of(port))

    def subnet_changed(self, subnet: Mapping[str, Any],
                       network: Mapping[str, Any] | None = None) -> None:
        """`network`: the subnet's (ML2 passes it); read from Neutron when not given."""
        def write() -> None:
            net_id = subnet.get("network_id")
            networks = ({net_id: network} if network is not None
                        else self.neutron.networks([net_id] if net_id else []))
            snap = Snapshot(subnets={subnet["id"]: subnet}, networks=networks)
            if self.spaces is not None:
                self.spaces.ensure(*wanted_spaces(snap, self.region))
            want = self.subnets.wanted(snap)
            key = self.subnets.key_for(subnet["id"])
            self.subnets.sync_one(key, want.get(key))
        self._safely(f"subnet {subnet.get('id')}", write)

    def network_changed(self, network: Mapping[str, Any]) -> None:
        """A network's MTU or dns_domain is in its subnets' records: rewrite them."""
        def write() -> None:
            subnets = self.neutron.subnets(network.get("subnets") or [])
            want = self.subnets.wanted(Snapshot(subnets=subnets,
                                                networks={network["id"]: network}))
            for sid in subnets:
                key = self.subnets.key_for(sid)
                self.subnets.sync_one(key, want.get(key))
        self._safely(f"network {network.get('id')}", write)

    def subnet_deleted(self, subnet_id: str) -> None:
        def delete() -> None:
            self.subnets.sync_one(self.subnets.key_for(subnet_id), None)
            if self.spaces is not None:  # the network's space goes at the resync
                self.spaces.remove_pool(subnet_id)
        self._safely(f"subnet {subnet_id}", delete)

    def security_group_changed(self, sg_id: str) -> None:
        def write() -> None:
            groups = self.neutron.security_groups([sg_id])
            key = self.policies.key_for(sg_id)
            want = self.policies.wanted(Snapshot(security_groups=groups))
            self.policies.sync_one(key, want.get(key))
        self._safely(f"security group {sg_id}", write)

    def security_group_deleted(self, sg_id: str) -> None:
        self._safely(f"security group {sg_id}",
                     lambda: self.policies.sync_one(self.policies.key_for(sg_id), None))

    def _safely(self, what: str, fn: Callable[[], None]) -> None:
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                fn()
                return
            except DatastoreError as err:
                if delay is None:
                    log.error("%s: datastore error after %d attempts (%s); the resync will "
                              "repair it", what, attempt + 1, err)
                else:
                    log.warning("%s: datastore error (%s); retrying in %.1f s", what, err,
                                delay)
                    self._sleep(delay)
            except Exception:  # noqa: BLE001 - never fail a committed Neutron call
                log.exception("%s: failed; the resync will repair it", what)
                break
        self.request_resync()

    # ---- resync (master only) -------------------------------------------------------------

    def resync(self) -> None:
        """Compare all of Neutron with the datastore and repair both ways; ports that cannot
        be mapped go to ERROR."""
        snapshot = self.neutron.snapshot()
        if self.projects is not None:
            ids = {p.get("project_id") or p.get("tenant_id") for p in snapshot.ports.values()}
            found = {i: self.projects.get(i) for i in ids if i}
            snapshot.projects = {i: p for i, p in found.items() if p is not None}
        spaces = wanted_spaces(snapshot, self.region) if self.spaces is not None else None
        if spaces is not None:
            self.spaces.ensure(*spaces)  # before the endpoints that join them
        for syncer in (self.policies, self.subnets, self.endpoints):
            syncer.resync(snapshot)
        if spaces is not None:
            self.spaces.remove_stale(*spaces)  # after the endpoints that left them
        for port_id in sorted(self.endpoints.unmappable):
            self._unmappable_port(snapshot.ports[port_id], self.endpoints.unmappable[port_id])
        for port_id in sorted(self.endpoints.recovered):
            self._recovered_port(snapshot.ports[port_id])
        self.ensure_felix_config()
        self.resyncs += 1

    def ensure_felix_config(self) -> None:
        """ClusterInformation and FelixConfiguration `default` (clusterconfig.py)."""
        ensure_cluster_information(self.backend)
        ensure_felix_configuration(self.backend)

    def _compaction_loop(self) -> None:
        while not self._stop.wait(0.5 if not self.elector.is_master else 0):
            if self.elector.is_master:
                self.compactor.check()
                self._stop.wait(COMPACTION_CHECK_INTERVAL)

    def _resync_loop(self) -> None:
        next_at = 0.0
        while not self._stop.is_set():
            self._kick.wait(max(0.0, next_at - time.monotonic()))
            if self._stop.is_set():
                return
            kicked = self._kick.is_set()
            self._kick.clear()
            if not self.elector.is_master:
                next_at = time.monotonic() + (self.config.resync_interval if not kicked else 0.5)
                continue
            try:
                self.resync()
                self.last_resync_error = None
                next_at = time.monotonic() + self.config.resync_interval
            except Exception as err:  # noqa: BLE001 - try again soon
                self.last_resync_error = str(err)
                log.warning("resync failed (%s); retrying in 5 s", err)
                next_at = time.monotonic() + min(5.0, self.config.resync_interval)
