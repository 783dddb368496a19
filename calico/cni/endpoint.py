"""The datastore side of a CNI ADD/DEL: the WorkloadEndpoint and the network's Profile.

The endpoint (namespace "default" unless K8S_POD_NAMESPACE says otherwise) is named as
Calico names it (`<node>-cni-<containerID>-<ifname>`, '-' doubled inside each part) and holds
the container's addresses (`ipNetworks`, /32 and /128), the container side MAC, the host side
interface name, the labels of the config and CNI_ARGS, and the profile named after the network.

The profile is created when absent — never updated — with the rules Calico's CNI plugin gave a
non-Kubernetes network (cni-plugin/pkg/plugin/plugin.go, cmdAdd): every endpoint of the network
carries the label `<network name>` (labelsToApply), ingress is allowed only from endpoints with
that label (`has(<network name>)`), egress is allowed to anything. Under k8s ingress is allowed
from anything, as Calico did without a policy controller. A config with `policy.type` set
leaves profiles alone (someone else manages policy).
"""

from __future__ import annotations

from typing import Any

from calico.api import ValidationError
from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceAlreadyExists, ResourceNotFound
from calico.datastore.kv import DatastoreError

from .netconf import ORCHESTRATOR_K8S, NetConf, WorkloadIDs
from .spec import INVALID_CONFIG, CNIError

API_VERSION = "projectcalico.org/v3"


def profile_doc(network: str, k8s: bool) -> dict[str, Any]:
    ingress: dict[str, Any] = {"action": "Allow"}
    if not k8s:
        ingress["source"] = {"selector": f"has({network})"}
    return {"apiVersion": API_VERSION, "kind": "Profile", "metadata": {"name": network},
            "spec": {"ingress": [ingress], "egress": [{"action": "Allow"}],
                     "labelsToApply": {network: ""}}}


def endpoint_doc(ids: WorkloadIDs, name: str, conf: NetConf, labels: dict[str, str],
                 ip_networks: list[str], mac: str, host_name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {**ids.spec_ids(), "ipNetworks": ip_networks,
                            "interfaceName": host_name}
    if mac:
        spec["mac"] = mac
    if conf.address_space:
        spec["addressSpace"] = conf.address_space
    if not conf.policy_type:
        spec["profiles"] = [conf.name]
    return {"apiVersion": API_VERSION, "kind": "WorkloadEndpoint",
            "metadata": {"name": name, "namespace": ids.namespace, "labels": labels},
            "spec": spec}


def check_documents(conf: NetConf, ids: WorkloadIDs, name: str,
                    labels: dict[str, str]) -> None:
    """Validate what ADD will write before anything is allocated, so a bad network name or
    label is a config error with nothing to undo."""
    from calico.api import validate

    try:
        validate(endpoint_doc(ids, name, conf, labels, [], "", "cali0"))
        if not conf.policy_type:
            validate(profile_doc(conf.name, ids.orchestrator == ORCHESTRATOR_K8S))
    except ValidationError as err:
        raise CNIError(INVALID_CONFIG, "the network configuration gives an invalid resource",
                       str(err)) from None


def write_endpoint(client: ResourceClient, doc: dict[str, Any]) -> None:
    try:
        client.create(doc)
    except ResourceAlreadyExists:
        client.apply(doc)


def get_endpoint(client: ResourceClient, name: str, namespace: str):
    try:
        return client.get("WorkloadEndpoint", name, namespace)
    except ResourceNotFound:
        return None


def delete_endpoint(client: ResourceClient, name: str, namespace: str) -> bool:
    """Delete; False if it was not there."""
    try:
        client.delete("WorkloadEndpoint", name, namespace)
    except ResourceNotFound:
        return False
    return True


def ensure_profile(client: ResourceClient, conf: NetConf, ids: WorkloadIDs) -> None:
    if conf.policy_type:
        return
    try:
        client.get("Profile", conf.name)
        return
    except ResourceNotFound:
        pass
    try:
        client.create(profile_doc(conf.name, ids.orchestrator == ORCHESTRATOR_K8S))
    except ResourceAlreadyExists:
        pass  # another ADD of this network won the race


__all__ = ["DatastoreError", "check_documents", "delete_endpoint", "endpoint_doc",
           "ensure_profile", "get_endpoint", "profile_doc", "write_endpoint"]
