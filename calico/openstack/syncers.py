"""The per-kind syncers: WorkloadEndpoints, security-group NetworkPolicies, DHCP subnets.

Each is a small `ResourceSyncer` (syncer.py) that knows its keys and how Neutron's snapshot
maps onto them; the mappings themselves are the pure functions of endpoints.py, policy.py
and subnets.py. v3 resources share `V3ResourceSyncer`: a record is compared by what Calico
would store (labels, annotations, spec), and rewritten keeping its uid and creation time.
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
from .endpoints import endpoint_resource, is_bound_endpoint
from .floating import with_nats
from .policy import policy_resource
from .subnets import subnet_value, wants_record
from .syncer import ResourceSyncer, Snapshot

log = logging.getLogger(__name__)


def _comparable(res: Resource) -> dict[str, Any]:
    data = res.to_dict()
    meta = data.get("metadata", {})
    for field in ("uid", "creationTimestamp", "resourceVersion", "generation"):
        meta.pop(field, None)
    return data


class V3ResourceSyncer(ResourceSyncer):
    """Records are validated v3 resources (`wanted` values are `Resource`s)."""

    resource_kind = ""

    def prefix(self) -> str:
        return kind_prefix(self.resource_kind, names.NAMESPACE)

    def build(self, doc: dict[str, Any]) -> Resource | None:
        try:
            return validate(doc)
        except ValidationError as err:
            log.error("cannot represent %s in Calico: %s", doc["metadata"]["name"], err)
            return None

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

    def record(self, doc: dict[str, Any]) -> tuple[str, Resource] | None:
        res = self.build(doc)
        return None if res is None else (res.key(), res)


class EndpointSyncer(V3ResourceSyncer):
    """Bound VM ports -> WorkloadEndpoints in namespace `openstack`; their fixed IPs are
    recorded in Calico IPAM (handle = port id) and released when the port is gone."""

    kind = "WorkloadEndpoint"
    resource_kind = "WorkloadEndpoint"

    def __init__(self, backend: Backend, addresses: PortAddresses | None = None) -> None:
        super().__init__(backend)
        self.addresses = addresses
        self._live_ports: set[str] | None = None

    @staticmethod
    def port_record_doc(port: Mapping[str, Any], snapshot: Snapshot) -> dict[str, Any]:
        gateways = {sid: s.get("gateway_ip") for sid, s in snapshot.subnets.items()}
        sg_names = {gid: g.get("name") or "" for gid, g in snapshot.security_groups.items()}
        project = port.get("project_id") or port.get("tenant_id") or ""
        doc = endpoint_resource(port, gateways, sg_names, snapshot.project_names.get(project))
        return with_nats(doc, port, snapshot.floating_ips)

    def wanted(self, snapshot: Snapshot) -> dict[str, Any]:
        out = {}
        self._live_ports = set(snapshot.ports)
        for port in snapshot.ports.values():
            if not is_bound_endpoint(port):
                continue
            rec = self.record(self.port_record_doc(port, snapshot))
            if rec is not None:
                out[rec[0]] = rec[1]
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
        ips = [n.split("/")[0] for n in spec.ipNetworks or []]
        self.addresses.claim(spec.endpoint or "", spec.node or "", ips)

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
            self.addresses.release(port_id, spec.get("node") or "")

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
            rec = self.record(policy_resource(sg_id, sg.get("security_group_rules") or []))
            if rec is not None:
                out[rec[0]] = rec[1]
        return out

    def key_for(self, sg_id: str) -> str:
        return self.prefix() + names.sg_policy_name(sg_id)


class SubnetSyncer(ResourceSyncer):
    """DHCP-enabled subnets -> `/calico/dhcp/v2/no-region/subnet/<id>` (JSON text)."""

    kind = "Subnet"

    def prefix(self) -> str:
        return names.SUBNET_PREFIX

    def wanted(self, snapshot: Snapshot) -> dict[str, Any]:
        return {names.subnet_key(sid): subnet_value(s) for sid, s in snapshot.subnets.items()
                if wants_record(s)}

    def render(self, wanted: str, existing: KV | None) -> str:
        return wanted

    def matches(self, existing: KV, wanted: str) -> bool:
        try:
            return json.loads(existing.value) == json.loads(wanted)
        except ValueError:
            return False
