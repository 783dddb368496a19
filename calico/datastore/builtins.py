"""What Calico's datastore holds without anyone writing it: the `projectcalico-default-allow`
Profile, and the ClusterInformation `default` a datastore gets on its first write.

`projectcalico-default-allow` (one Allow rule each way) is what a HostEndpoint names to allow
traffic in the absence of policy. Calico's libcalico-go provides it without storing it; so
do we: `ResourceClient.get/list` and the syncer (so Felix) see it, it is never stored, and
writing or deleting it is refused ("operation ... is not supported on
Profile(projectcalico-default-allow)").

ClusterInformation `default` (clusterGUID, calicoVersion, datastoreReady: true) is what
libcalico-go's EnsureInitialized creates when calico-node starts; here the first write of any
resource through a ResourceClient creates it when it is missing, so a datastore written only by
calicoctl, the CNI plugin or the Neutron driver has one too (calicoctl compares its
calicoVersion with its own version).
"""

from __future__ import annotations

import json
import uuid

from calico.api.base import API_GROUP, API_VERSION
from calico.version import CALICO_VERSION

from .kv import KV

DEFAULT_ALLOW_PROFILE = "projectcalico-default-allow"
DEFAULT_ALLOW_KEY = f"/calico/resources/v3/{API_GROUP}/profiles/{DEFAULT_ALLOW_PROFILE}"
CLUSTER_INFO_KEY = f"/calico/resources/v3/{API_GROUP}/clusterinformations/default"

DEFAULT_ALLOW_VALUE = json.dumps({
    "apiVersion": API_VERSION, "kind": "Profile",
    "metadata": {"name": DEFAULT_ALLOW_PROFILE},
    "spec": {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]},
}, separators=(",", ":"))


DEFAULT_ALLOW_KV = KV(DEFAULT_ALLOW_KEY, DEFAULT_ALLOW_VALUE, 0, 0)  # resourceVersion "0", as
# libcalico-go's DefaultAllowProfile() has


def with_builtins(prefix: str, items: list[KV]) -> list[KV]:
    """`items` listed under `prefix`, with the built-in profile added in key order when the
    prefix covers it and nothing is stored at its key."""
    if not DEFAULT_ALLOW_KEY.startswith(prefix) or any(
            kv.key == DEFAULT_ALLOW_KEY for kv in items):
        return items
    return sorted([*items, DEFAULT_ALLOW_KV], key=lambda kv: kv.key)


def is_builtin(key: str) -> bool:
    return key == DEFAULT_ALLOW_KEY


def cluster_information_value(now: str) -> str:
    """A new ClusterInformation `default`, as EnsureInitialized writes it."""
    return json.dumps({
        "apiVersion": API_VERSION, "kind": "ClusterInformation",
        "metadata": {"name": "default", "uid": str(uuid.uuid4()), "creationTimestamp": now},
        "spec": {"clusterGUID": uuid.uuid4().hex, "calicoVersion": CALICO_VERSION,
                 "datastoreReady": True},
    }, separators=(",", ":"))
