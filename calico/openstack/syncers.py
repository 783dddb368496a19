"""The per-kind syncers: WorkloadEndpoints, security-group NetworkPolicies, DHCP subnets.

Each is a small `ResourceSyncer` (syncer.py) that knows its keys and how Neutron's snapshot
maps onto them; the mappings themselves are the pure functions of endpoints.py, policy.py
and subnets.py. v3 resources share `V3ResourceSyncer`: a record is compared by what Calico
would store (labels, annotations, spec), and rewritten keeping its uid and creation time.
Every syncer works in one region (names.Region): its namespace and key prefixes.

A Neutron object that cannot be mapped (a host or id Calico's names refuse, junk fields)
never stops a resync: it is logged in one line naming the object, field and value (once,
until the reason changes), left out, and the others are written. The endpoint syncer keeps
the ports it could not map in `unmappable` (port id -> reason): the driver puts them in
ERROR, and in `recovered` those that map again (the driver takes them out of ERROR).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from calico.api import Resource, ValidationError, validate
from calico.datastore.client import decode, encode, kind_prefix
from calico.datastore.errors import CorruptResource
from calico.datastore.kv import KV, Backend

from . import names
from .addresses import PortAddresses
from .endpoints import at_host, endpoint_resource, is_bound_endpoint, migration_target
from .floating import with_nats
from .policy import policy_resource
from .spaces import endpoint_in_space, space_name
from .subnets import subnet_value, wants_record
from .syncer import ResourceSyncer, Snapshot

log = logging.getLogger(__name__)


def _comparable(res: Resource) -> dict[str, Any]:
    data = res.to_dict()
    meta = data.get("metadata", {})
    for field in ("uid", "creationTimestamp", "resourceVersion", "generation"):
        meta.pop(field, None)
    return data


class Unmappable(ValueError):
    """A Neutron object with no Calico equivalent; the message names it, the field and value."""


class UnmappableLog:
    """Logs each unmappable object once per reason (a resync every minute must not repeat
    the same error line forever); `forget` when it maps again."""

    def __init__(self) -> None:
        self._logged: dict[str, str] = {}

    def report(self, what: str, reason: str) -> None:
        if self._logged.get(what) != reason:
            self._logged[what] = reason
            log.error("%s cannot be mapped to Calico (left out): %s", what, reason)

    def forget(self, what: str) -> bool:
        """The object maps again; returns whether it had been reported unmappable."""
        if self._logged.pop(what, None) is not None:
            log.info("%s can be mapped to Calico again", what)
            return True
        return False


class V3ResourceSyncer(ResourceSyncer):
    """Records are validated v3 resources (`wanted` values are `Resource`s)."""

    resource_kind = ""

    def __init__(self, backend: Backend, region: names.Region = names.NO_REGION) -> None:
        super().__init__(backend)
        self.region = region
        self.unmappable_log = UnmappableLog()

    @property
    def namespace(self) -> str:
        return self.region.namespace

    def prefix(self) -> str:
        return kind_prefix(self.resource_kind, self.namespace)

    def build(self, doc: dict[str, Any]) -> Resource:
        """The validated resource; raises Unmappable naming it and what Calico refused."""
        try:
            return validate(doc)
        except ValidationError as err:
            raise Unmappable(f"{self.resource_kind} {doc['metadata']['name']}: {err}"
                             ) from None

    def render(self, wanted: Resource, existing: KV | None) -> str:
        uid, created = None, None
        if existing is not None:
            try:
                old = decode(existing.key, existing.value, existing.mod_revision)
                uid, created = old.metadata.uid, old.metadata.creationTimestamp
            except CorruptResource:
                pass
        meta = wanted.metadata.model_copy(update={
            "uid": uid or str(uuid.uuid4()),
            "creationTimestamp": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resourceVersion": None})
        return encode(wanted.model_copy(update={"metadata": meta}))

    def matches(self, existing: KV, wanted: Resource) -> bool:
        try:
            current = decode(existing.key, existing.value, existing.mod_revision)
        except CorruptResource:
            return False
        return _comparable(current) == _comparable(wanted)

    def record(self, doc: dict[str, Any]) -> tuple[str, Resource]:
        res = self.build(doc)
        return res.key(), res


class EndpointSyncer(V3ResourceSyncer):
    """Bound VM ports -> WorkloadEndpoints in namespace `openstack`; their fixed IPs are
    recorded in Calico IPAM (handle = port id) and released when the port is gone."""

    kind = "WorkloadEndpoint"
    resource_kind = "WorkloadEndpoint"

    def __init__(self, backend: Backend, addresses: PortAddresses | None = None,
                 region: names.Region = names.NO_REGION, spaces: bool = False) -> None:
        super().__init__(backend, region)
        self.addresses = addresses
        self.spaces = spaces  # per_network: a port with an IPv4 fixed IP joins its network's
        self._live_ports: set[str] | None = None
        self.unmappable: dict[str, str] = {}
        self.recovered: set[str] = set()  # ports unmappable before, mappable in this resync

    def port_record_doc(self, port: Mapping[str, Any], snapshot: Snapshot) -> dict[str, Any]:
        gateways = {sid: s.get("gateway_ip") for sid, s in snapshot.subnets.items()}
        sg_names = {gid: g.get("name") or "" for gid, g in snapshot.security_groups.items()}
        project = port.get("project_id") or port.get("tenant_id") or ""
        doc = endpoint_resource(port, gateways, sg_names, snapshot.projects.get(project),
                                self.namespace)
        space = self.space_of(port)
        if space is None:
            return with_nats(doc, port, snapshot.floating_ips)
        if with_nats(doc, port, snapshot.floating_ips)["spec"].pop("ipNATs", None):
            self.unmappable_log.report(f"floating IPs of port {port.get('id')}",
                                       f"the port is in address space {space}, where "
                                       "floating IPs are not supported")
        return endpoint_in_space(doc, space)

    def space_of(self, port: Mapping[str, Any]) -> str | None:
        """The address space of the port's network, when spaces are on and the port has an
        IPv4 fixed IP (a network with an IPv4 subnet is a space); None: the default."""
        if not self.spaces or not port.get("network_id"):
            return None
        if not any(":" not in str(f.get("ip_address", "")) for f in port.get("fixed_ips") or []
                   if isinstance(f, Mapping)):
            return None
        return space_name(self.region, str(port["network_id"]))

    def port_records(self, port: Mapping[str, Any], snapshot: Snapshot
                     ) -> dict[str, Resource]:
        """The endpoints of a bound port: on its host and, while a live migration is in
        progress, on the destination too. Raises Unmappable naming the port and the value."""
        ports = [port]
        target = migration_target(port)
        if target is not None:
            ports.append(at_host(port, target))
        out = {}
        try:
            for p in ports:
                key, res = self.record(self.port_record_doc(p, snapshot))
                out[key] = res
        except Unmappable as err:
            raise Unmappable(f"port {port.get('id')}: {err}") from None
        except Exception as err:  # noqa: BLE001 - junk in Neutron: name it, carry on
            raise Unmappable(f"port {port.get('id')}: {type(err).__name__}: {err}") from None
        return out

    def wanted(self, snapshot: Snapshot) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self._live_ports = set(snapshot.ports)
        unmappable, self.recovered = {}, set()
        for port_id, port in snapshot.ports.items():
            try:
                if not is_bound_endpoint(port):
                    continue
                out.update(self.port_records(port, snapshot))
                if self.unmappable_log.forget(str(port_id)):
                    self.recovered.add(str(port_id))
            except Exception as err:  # noqa: BLE001 - one bad port never stops the resync
                unmappable[str(port_id)] = str(err)
                self.unmappable_log.report(str(port_id), str(err))
        self.unmappable = unmappable
        return out

    def resync(self, snapshot: Snapshot):
        try:
            return super().resync(snapshot)
        finally:
            self._live_ports = None

    def on_written(self, key: str, wanted: Resource) -> None:
        if self.addresses is None:
            return
        spec = wanted.spec
        pairs = {n.split("/")[0] for n in spec.allowedIps or []}  # not the port's own
        ips = [ip for n in spec.ipNetworks or [] if (ip := n.split("/")[0]) not in pairs]
        self.addresses.claim(spec.endpoint or "", spec.node or "", ips, spec.addressSpace)

    def on_deleted(self, key: str, existing: KV) -> None:
        # During a resync, an endpoint of a port Neutron still has was moved (migration):
        # its addresses stay. Otherwise the port is gone and so are its addresses.
        if self.addresses is None:
            return
        try:
            spec = json.loads(existing.value).get("spec", {})
        except (ValueError, AttributeError):
            return
        port_id = spec.get("endpoint") if isinstance(spec, dict) else None
        if not port_id or (self._live_ports is not None and port_id in self._live_ports):
            return
        if self._live_ports is not None:
            self.addresses.release(port_id, spec.get("node") or "", spec.get("addressSpace"))

    def endpoints_of_port(self, port_id: str) -> list[KV]:
        """Stored endpoints whose spec names this port (any host)."""
        out = []
        for kv in self.backend.list(self.prefix())[0]:
            try:
                if json.loads(kv.value).get("spec", {}).get("endpoint") == port_id:
                    out.append(kv)
            except (ValueError, AttributeError):
                continue
        return out


class PolicySyncer(V3ResourceSyncer):
    """Security groups -> NetworkPolicies `ossg.default.<sg-id>` (only those names are ours:
    other policies in the namespace are left alone)."""

    kind = "NetworkPolicy"
    resource_kind = "NetworkPolicy"

    def owns(self, key: str) -> bool:
        return key.rsplit("/", 1)[-1].startswith(names.SG_POLICY_PREFIX)

    def wanted(self, snapshot: Snapshot) -> dict[str, Any]:
        out = {}
        for sg_id, sg in snapshot.security_groups.items():
            try:
                key, res = self.record(policy_resource(
                    sg_id, sg.get("security_group_rules") or [], self.namespace))
            except Exception as err:  # noqa: BLE001 - one bad group never stops the resync
                self.unmappable_log.report(f"security group {sg_id}", str(err))
                continue
            self.unmappable_log.forget(f"security group {sg_id}")
            out[key] = res
        return out

    def key_for(self, sg_id: str) -> str:
        return self.prefix() + names.sg_policy_name(sg_id)


class SubnetSyncer(ResourceSyncer):
    """DHCP-enabled subnets -> `/calico/dhcp/v2/<region>/subnet/<id>` (JSON text)."""

    kind = "Subnet"

    def __init__(self, backend: Backend, region: names.Region = names.NO_REGION) -> None:
        super().__init__(backend)
        self.region = region
        self.unmappable_log = UnmappableLog()

    def prefix(self) -> str:
        return self.region.subnet_prefix

    def key_for(self, subnet_id: str) -> str:
        return self.region.subnet_key(subnet_id)

    def wanted(self, snapshot: Snapshot) -> dict[str, Any]:
        out = {}
        for sid, subnet in snapshot.subnets.items():
            try:
                if wants_record(subnet):
                    network = snapshot.networks.get(subnet.get("network_id"))
                    out[self.key_for(sid)] = subnet_value(subnet, network)
                self.unmappable_log.forget(f"subnet {sid}")
            except Exception as err:  # noqa: BLE001 - one bad subnet never stops the resync
                self.unmappable_log.report(f"subnet {sid}",
                                           f"{type(err).__name__}: {err}")
        return out

    def render(self, wanted: str, existing: KV | None) -> str:
        return wanted

    def matches(self, existing: KV, wanted: str) -> bool:
        try:
            return json.loads(existing.value) == json.loads(wanted)
        except ValueError:
            return False
