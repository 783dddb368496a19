"""The driver's core: Neutron events and the periodic resync -> the Calico datastore.

Neutron-free on purpose. It reaches Neutron only through a `NeutronView` (the shim in
neutron_view.py for a real server, a fake in unit tests) and the datastore only through a
`kv.Backend`; mech_calico.py is the thin ML2 adapter that calls it.

What flows in:
- event handlers, called by whichever Neutron server handled the API call, after Neutron
  committed it: `port_changed(port, original)`, `port_deleted(port)`, `subnet_changed`,
  `subnet_deleted`, `security_group_changed(sg_id)`, `security_group_deleted(sg_id)`,
  `floating_ips_changed(port_ids)` (the endpoints' ipNATs, floating.py);
- the election (election.py): only the master runs the resync and the status loop.

What flows out: WorkloadEndpoints, NetworkPolicies and subnet records (syncers.py, with
compare-and-swap), Calico IPAM assignments for fixed IPs, FelixConfiguration `default` with
`endpointReportingEnabled: true` and `tap` in `interfacePrefix`, and Neutron port status /
agent heartbeats (status.py).

Failure rule: a Neutron API call that Neutron committed never fails because of Calico. Each
handler retries datastore errors a few times (short backoff), then logs, and asks for an
early resync, which repairs whatever was missed (Neutron is the source of truth).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceAlreadyExists, ResourceConflict, ResourceNotFound
from calico.datastore.kv import Backend, DatastoreError

from . import names
from .addresses import PortAddresses
from .election import Elector
from .endpoints import endpoint_name, is_bound_endpoint
from .status import StatusWatcher, run_status_loop
from .syncer import Snapshot
from .syncers import EndpointSyncer, PolicySyncer, SubnetSyncer

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.1, 0.3, 1.0)
TAP_PREFIX = "tap"  # Nova's tap devices: tap<port-id[:11]>
FELIX_PREFIX = "cali"  # Felix's default interfacePrefix


class NeutronView(Protocol):
    """What the driver needs from Neutron (all reads with an admin context)."""

    def snapshot(self) -> Snapshot: ...

    def subnets(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...

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


class CalicoDriver:
    """Keeps the datastore matching Neutron (see above). The event handlers may be called from any
    thread of any server and never raise for a datastore failure (retried, then left to the
    resync); `start()` joins the election, and the master runs the resync and status loops."""

    def __init__(self, backend: Backend, neutron: NeutronView,
                 config: DriverConfig | None = None, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.backend, self.neutron = backend, neutron
        self.config = config or DriverConfig()
        self._sleep = sleep
        self.addresses = PortAddresses(backend) if self.config.ipam else None
        self.endpoints = EndpointSyncer(backend, self.addresses)
        self.policies = PolicySyncer(backend)
        self.subnets = SubnetSyncer(backend)
        self.elector = Elector(backend, self.config.server_id, ttl=self.config.election_ttl,
                               interval=self.config.election_interval,
                               on_change=self._on_election)
        self.status = StatusWatcher(backend, neutron.set_port_status, neutron.felix_alive)
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
        for name, target in (("calico-resync", self._resync_loop),
                             ("calico-status", lambda: run_status_loop(
                                 self.status, lambda: self.elector.is_master, self._stop))):
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

    # ---- event handlers (any server) ------------------------------------------------------

    def port_changed(self, port: Mapping[str, Any], original: Mapping[str, Any] | None = None
                     ) -> None:
        self._safely(f"port {port.get('id')}", lambda: self._port_changed(port, original))

    def _port_changed(self, port: Mapping[str, Any], original: Mapping[str, Any] | None) -> None:
        new_key = None
        if is_bound_endpoint(port):
            rec = self._endpoint_record(port)
            if rec is not None:
                new_key, res = rec
                self.endpoints.sync_one(new_key, res)
        if original is not None and is_bound_endpoint(original):
            old_key = self.endpoints.prefix() + endpoint_name(original)
            if old_key != new_key:  # migrated, unbound, or no longer a VM port
                self.endpoints.sync_one(old_key, None)
                if new_key is None and not names.is_endpoint_port(dict(port)):
                    self._release(port)

    def _endpoint_record(self, port: Mapping[str, Any]):
        subnet_ids = [f.get("subnet_id") for f in port.get("fixed_ips") or []]
        snap = Snapshot(subnets=self.neutron.subnets(i for i in subnet_ids if i),
                        security_groups=self.neutron.security_groups(
                            port.get("security_groups") or []),
                        floating_ips=self.neutron.floating_ips([port["id"]]))
        return self.endpoints.record(EndpointSyncer.port_record_doc(port, snap))

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
            if is_bound_endpoint(port):
                self.endpoints.sync_one(self.endpoints.prefix() + endpoint_name(port), None)
            if names.is_endpoint_port(dict(port)):
                self._release(port)
        self._safely(f"port {port.get('id')}", delete)

    def _release(self, port: Mapping[str, Any]) -> None:
        if self.addresses is not None:
            self.addresses.release(port["id"], port.get("binding:host_id") or "")

    def subnet_changed(self, subnet: Mapping[str, Any]) -> None:
        def write() -> None:
            snap = Snapshot(subnets={subnet["id"]: subnet})
            want = self.subnets.wanted(snap)
            key = names.subnet_key(subnet["id"])
            self.subnets.sync_one(key, want.get(key))
        self._safely(f"subnet {subnet.get('id')}", write)

    def subnet_deleted(self, subnet_id: str) -> None:
        self._safely(f"subnet {subnet_id}",
                     lambda: self.subnets.sync_one(names.subnet_key(subnet_id), None))

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
        """Compare all of Neutron with the datastore and repair both ways."""
        snapshot = self.neutron.snapshot()
        for syncer in (self.policies, self.subnets, self.endpoints):
            syncer.resync(snapshot)
        self.ensure_felix_config()
        self.resyncs += 1

    def ensure_felix_config(self) -> None:
        """FelixConfiguration `default` with endpointReportingEnabled: true (Felix then
        writes the per-endpoint status that becomes Neutron's port status) and `tap` among
        the interfacePrefix values (our Felix's default is `cali,tap`, but an operator may
        have narrowed it; without `tap` a VM's tap gets no proxy ARP and no policy), as
        networking-calico does. Other fields and prefixes are kept; an unset prefix list
        becomes `cali,tap`, so containers on the same cluster keep theirs."""
        client = ResourceClient(self.backend)
        for _ in range(3):
            try:
                current = client.get("FelixConfiguration", "default")
            except ResourceNotFound:
                try:
                    client.create({"apiVersion": "projectcalico.org/v3",
                                   "kind": "FelixConfiguration",
                                   "metadata": {"name": "default"},
                                   "spec": {"endpointReportingEnabled": True,
                                            "interfacePrefix": f"{FELIX_PREFIX},{TAP_PREFIX}"}})
                    return
                except ResourceAlreadyExists:
                    continue
            doc = current.to_dict()
            spec = doc.setdefault("spec", {})
            prefixes = [p for p in (spec.get("interfacePrefix") or FELIX_PREFIX).split(",") if p]
            if spec.get("endpointReportingEnabled") and TAP_PREFIX in prefixes:
                return
            spec["endpointReportingEnabled"] = True
            if TAP_PREFIX not in prefixes:
                spec["interfacePrefix"] = ",".join([*prefixes, TAP_PREFIX])
            try:
                client.update(doc)  # CAS on the resourceVersion it was read at
                return
            except (ResourceConflict, ResourceNotFound):
                continue

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
