"""The cluster-wide resources the Neutron driver keeps right: ClusterInformation and
FelixConfiguration `default` — merged into what is there, never trampling other writers.

`ensure_cluster_information(backend)`, as networking-calico does it:
- `clusterGUID`: a new random one (32 hex digits) when there is none;
- `clusterType`: `openstack` added to the comma-separated list when missing (a Kubernetes
  cluster's `k8s,bgp` becomes `k8s,bgp,openstack`);
- `datastoreReady`: set to true only when it is not set at all (an explicit false means
  someone, an upgrade say, has paused the cluster: it stays false).
`calicoVersion` is left alone (calico-node writes it).

`ensure_felix_configuration(backend)`: `endpointReportingEnabled: true` (Felix then writes the
per-endpoint status that becomes Neutron's port status) and `tap` among the
`interfacePrefix` values (without it a VM's tap gets no proxy ARP and no policy). Other
fields and prefixes are kept; an unset prefix list becomes `cali,tap`, so containers on the
same cluster keep theirs.

Both read, change in memory and write back with compare-and-swap on the resource version
(create when missing), retrying a few times when someone else wrote in between; nothing is
written when nothing needs to change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceAlreadyExists, ResourceConflict, ResourceNotFound
from calico.datastore.kv import Backend

log = logging.getLogger(__name__)

TAP_PREFIX = "tap"  # Nova's tap devices: tap<port-id[:11]>
FELIX_PREFIX = "cali"  # Felix's default interfacePrefix
CLUSTER_TYPE = "openstack"
ATTEMPTS = 3


def _merge(backend: Backend, kind: str, change: Callable[[dict[str, Any]], bool]) -> bool:
    """Apply `change(spec)` (True: it changed something) to `kind` `default`; returns
    whether a write happened."""
    client = ResourceClient(backend)
    for _ in range(ATTEMPTS):
        try:
            doc = client.get(kind, "default").to_dict()
            exists = True
        except ResourceNotFound:
            doc = {"apiVersion": "projectcalico.org/v3", "kind": kind,
                   "metadata": {"name": "default"}, "spec": {}}
            exists = False
        if not change(doc.setdefault("spec", {})):
            return False
        try:
            if exists:
                client.update(doc)  # CAS on the resourceVersion it was read at
            else:
                client.create(doc)
            log.info("%s default: now %s", kind, doc["spec"])
            return True
        except (ResourceConflict, ResourceNotFound, ResourceAlreadyExists):
            continue
    log.warning("%s default kept changing under us; the next resync tries again", kind)
    return False


def _cluster_information(spec: dict[str, Any]) -> bool:
    changed = False
    if not spec.get("clusterGUID"):
        spec["clusterGUID"] = uuid.uuid4().hex
        changed = True
    types = [t for t in (spec.get("clusterType") or "").split(",") if t]
    if CLUSTER_TYPE not in types:
        spec["clusterType"] = ",".join([*types, CLUSTER_TYPE])
        changed = True
    if spec.get("datastoreReady") is None:
        spec["datastoreReady"] = True
        changed = True
    return changed


def _felix_configuration(spec: dict[str, Any]) -> bool:
    changed = False
    if not spec.get("endpointReportingEnabled"):
        spec["endpointReportingEnabled"] = True
        changed = True
    prefixes = [p for p in (spec.get("interfacePrefix") or FELIX_PREFIX).split(",") if p]
    if TAP_PREFIX not in prefixes:
        spec["interfacePrefix"] = ",".join([*prefixes, TAP_PREFIX])
        changed = True
    return changed


def ensure_cluster_information(backend: Backend) -> bool:
    return _merge(backend, "ClusterInformation", _cluster_information)


def ensure_felix_configuration(backend: Backend) -> bool:
    return _merge(backend, "FelixConfiguration", _felix_configuration)
