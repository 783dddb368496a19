"""The ML2 mechanism driver `calico`: the thin adapter between Neutron and `CalicoDriver`.

Registered under `neutron.ml2.mechanism_drivers` as `calico`. Configure with

    [ml2]
    mechanism_drivers = calico
    type_drivers = local,flat
    [calico]
    etcd_host = 10.0.0.1            # networking-calico's options: see config.py
    etcd_port = 2379
    openstack_region = region-one
    etcd_compaction_period_mins = 60

The section is read from the files Neutron was started with (config.py: unknown or invalid
options are logged by name); `[keystone_authtoken]` gives the Keystone account for project
name labels (keystone.py; none configured: no such labels).

What it does with each ML2 call (all after Neutron committed; none can fail the call):
- `bind_port`: a `local` or `flat` segment is bound with vif_type `tap` and
  `port_filter: True` (Felix polices the tap; Nova names it tap<port-id[:11]>), but only
  when a live Felix reports for the host (else Neutron marks the binding failed);
- `update_port_postcommit`: a bound VM port (`compute:*`, `kuryr:container*`) is written as
  its WorkloadEndpoint (also on the `migrating_to` host during a live migration); a
  migrated or unbound one is removed from its old host;
- `delete_port_postcommit`: the endpoint goes and its addresses leave Calico IPAM;
- subnet postcommits (and network updates: MTU, dns_domain): the DHCP agent's subnet records;
- security-group and rule callbacks (neutron_lib registry, AFTER_CREATE/UPDATE/DELETE):
  the `ossg.default.<sg-id>` policies;
- floating-IP callbacks (AFTER_CREATE/UPDATE/DELETE): the ipNATs of the endpoints of the
  ports a floating IP pointed at, before and after (floating.py).
The election, the master's periodic resync and the Felix status loop start when the Neutron
process publishes PROCESS AFTER_INIT (or at the first event, whichever comes first).
"""

from __future__ import annotations

import logging
from typing import Any

from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins.ml2 import api
from oslo_config import cfg

from calico.datastore.config import DatastoreConfig, connect

from .config import CalicoConfig, calico_config, config_files, keystone_auth, read_sections
from .driver import CalicoDriver, DriverConfig
from .floating import ports_of_event
from .keystone import KeystoneAuth, Projects

log = logging.getLogger(__name__)

SUPPORTED_SEGMENTS = ("local", "flat")
VIF_TYPE_TAP = "tap"


def load_config(conf: Any = cfg.CONF) -> tuple[CalicoConfig, KeystoneAuth | None]:
    sections = read_sections(config_files(conf))
    return calico_config(sections.get("calico", {})), keystone_auth(sections)


class CalicoMechanismDriver(api.MechanismDriver):
    """The ML2 entry points Neutron calls, each handed to one CalicoDriver (built in `initialize`,
    started at PROCESS AFTER_INIT or the first event); no postcommit ever fails Neutron's call."""

    def __init__(self) -> None:
        super().__init__()
        self.core: CalicoDriver | None = None

    # ---- set-up --------------------------------------------------------------------------

    def initialize(self) -> None:
        from .neutron_view import PluginNeutronView

        conf, auth = load_config()
        backend = connect(conf.datastore or DatastoreConfig.load())
        projects = Projects(auth, cache_max=conf.project_name_cache_max) if auth else None
        self.core = CalicoDriver(backend, PluginNeutronView(), DriverConfig(
            resync_interval=conf.resync_interval, election_ttl=conf.election_ttl,
            server_id=conf.elector_name, ipam=conf.ipam, region=conf.region,
            address_spaces=conf.address_spaces,
            etcd_compaction_period_mins=conf.etcd_compaction_period_mins,
            etcd_compaction_min_revisions=conf.etcd_compaction_min_revisions),
            projects=projects)
        for resource in (resources.SECURITY_GROUP, resources.SECURITY_GROUP_RULE):
            for event in (events.AFTER_CREATE, events.AFTER_UPDATE, events.AFTER_DELETE):
                registry.subscribe(self._on_security_group, resource, event)
        for event in (events.AFTER_CREATE, events.AFTER_UPDATE, events.AFTER_DELETE):
            registry.subscribe(self._on_floating_ip, resources.FLOATING_IP, event)
        registry.subscribe(self._on_process_init, resources.PROCESS, events.AFTER_INIT)
        log.info("Calico mechanism driver initialised")

    def _on_process_init(self, resource: str, event: str, trigger: Any, payload: Any = None
                         ) -> None:
        self._core().start()

    def _core(self) -> CalicoDriver:
        assert self.core is not None, "initialize() was not called"
        return self.core

    def _started_core(self) -> CalicoDriver:
        core = self._core()
        core.start()
        return core

    # ---- binding -------------------------------------------------------------------------

    def bind_port(self, context: Any) -> None:
        host = context.host or context.current.get("binding:host_id") or ""
        if not self._core().felix_live(host):
            log.warning("port %s: not binding to host %r: no live Felix reports for it",
                        context.current.get("id"), host)
            return
        for segment in context.segments_to_bind:
            if segment.get(api.NETWORK_TYPE) in SUPPORTED_SEGMENTS:
                context.set_binding(segment[api.ID], VIF_TYPE_TAP,
                                    {"port_filter": True})
                return
        log.debug("port %s: no local/flat segment to bind", context.current.get("id"))

    # ---- ports ---------------------------------------------------------------------------

    def update_port_postcommit(self, context: Any) -> None:
        self._started_core().port_changed(context.current, context.original)

    def create_port_postcommit(self, context: Any) -> None:
        # Usually unbound here; an already-bound port (created with a host) is written now.
        self._started_core().port_changed(context.current, None)

    def delete_port_postcommit(self, context: Any) -> None:
        self._started_core().port_deleted(context.current)

    # ---- subnets -------------------------------------------------------------------------

    def create_subnet_postcommit(self, context: Any) -> None:
        self._started_core().subnet_changed(context.current, context.network.current)

    def update_subnet_postcommit(self, context: Any) -> None:
        self._started_core().subnet_changed(context.current, context.network.current)

    # ---- networks (their MTU and dns_domain are in the subnet records) -------------------

    def update_network_postcommit(self, context: Any) -> None:
        self._started_core().network_changed(context.current)

    def delete_subnet_postcommit(self, context: Any) -> None:
        self._started_core().subnet_deleted(context.current["id"])

    # ---- security groups (callbacks) -----------------------------------------------------

    def _on_security_group(self, resource: str, event: str, trigger: Any, payload: Any = None
                           ) -> None:
        core = self._started_core()
        try:
            sg_id = _security_group_id(resource, payload)
        except Exception:  # noqa: BLE001 - a payload shape we do not know: resync repairs
            log.exception("%s %s: cannot tell the security group", resource, event)
            core.request_resync()
            return
        if sg_id is None:
            core.request_resync()
        elif resource == resources.SECURITY_GROUP and event == events.AFTER_DELETE:
            core.security_group_deleted(sg_id)
        else:
            core.security_group_changed(sg_id)


    def _on_floating_ip(self, resource: str, event: str, trigger: Any, payload: Any = None
                        ) -> None:
        core = self._started_core()
        ports = ports_of_event(getattr(payload, "states", None) or ())
        if ports:
            core.floating_ips_changed(ports)


def _security_group_id(resource: str, payload: Any) -> str | None:
    if payload is None:
        return None
    if resource == resources.SECURITY_GROUP:
        return payload.resource_id or (payload.states and payload.states[-1].get("id"))
    meta = payload.metadata or {}
    if meta.get("security_group_id"):
        return meta["security_group_id"]
    for state in reversed(payload.states or ()):
        if isinstance(state, dict) and state.get("security_group_id"):
            return state["security_group_id"]
    return None
