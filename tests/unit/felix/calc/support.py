"""Test support for the calc graph: resource builders and a dataplane-state reducer.

The builders return what the syncer hands the graph: validated `calico.api` models (a
resource under its datastore key, or a rule's `EntityRule`), never dicts.

`Dataplane` folds calc-graph messages into a plain state dict, and asserts on every message
the ordering guarantees of calico.felix.messages (no reference to an unknown IP set, policy
or profile; nothing removed while referenced; deltas only for known sets; InSync once).
"""

from __future__ import annotations

from typing import Any

from calico import api
from calico.api.rules import EntityRule
from calico.felix import messages as m

HOST = "node-1"
PREFIX = "/calico/resources/v3/projectcalico.org/"

_PLURALS = {
    "WorkloadEndpoint": ("workloadendpoints", True),
    "HostEndpoint": ("hostendpoints", False),
    "Profile": ("profiles", False),
    "NetworkPolicy": ("networkpolicies", True),
    "GlobalNetworkPolicy": ("globalnetworkpolicies", False),
    "NetworkSet": ("networksets", True),
    "GlobalNetworkSet": ("globalnetworksets", False),
    "IPPool": ("ippools", False),
    "Node": ("nodes", False),
    "FelixConfiguration": ("felixconfigurations", False),
}


def resource(kind: str, name: str, spec: dict, namespace: str = "",
             labels: dict | None = None) -> tuple[str, api.Resource]:
    """(datastore key, resource validated by calico.api, as the syncer hands it over)."""
    plural, namespaced = _PLURALS[kind]
    if namespaced:
        namespace = namespace or "default"
    meta: dict[str, Any] = {"name": name}
    if namespaced:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    doc = {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}
    key = PREFIX + plural + "/" + (f"{namespace}/" if namespaced else "") + name
    return key, api.validate(doc)


def entity(**fields: Any) -> EntityRule:
    """One validated rule side (`source` / `destination`) with these fields."""
    return EntityRule.model_validate(fields)


def wep(name: str, ips: list[str], labels: dict | None = None, node: str = HOST,
        namespace: str = "default", profiles: list[str] | None = None,
        ports: list[dict] | None = None, **extra: Any) -> tuple[str, Any]:
    """A k8s workload endpoint for pod `name` (the resource name is derived as Calico does)."""
    spec = {"node": node, "orchestrator": "k8s", "pod": name, "endpoint": "eth0",
            "interfaceName": "cali" + name[:11], "ipNetworks": ips,
            "profiles": profiles if profiles is not None else [], **extra}
    if ports:
        spec["ports"] = ports
    return resource("WorkloadEndpoint", wep_name(name, node), spec, namespace, labels)


def wep_name(pod: str, node: str = HOST) -> str:
    """Calico's name for our test endpoints: <node>-k8s-<pod>-eth0, '-' doubled in parts."""
    return f"{node.replace('-', '--')}-k8s-{pod.replace('-', '--')}-eth0"


def hep(name: str, ips: list[str], labels: dict | None = None, node: str = HOST,
        profiles: list[str] | None = None, interface: str = "eth0") -> tuple[str, Any]:
    spec = {"node": node, "interfaceName": interface, "expectedIPs": ips}
    if profiles:
        spec["profiles"] = profiles
    return resource("HostEndpoint", name, spec, labels=labels)


def gnp(name: str, selector: str = "all()", ingress: list | None = None,
        egress: list | None = None, order: float | None = None, **extra: Any):
    spec: dict[str, Any] = {"selector": selector, **extra}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if order is not None:
        spec["order"] = order
    return resource("GlobalNetworkPolicy", name, spec)


def np(name: str, namespace: str, selector: str = "all()", ingress: list | None = None,
       egress: list | None = None, order: float | None = None, **extra: Any):
    spec: dict[str, Any] = {"selector": selector, **extra}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if order is not None:
        spec["order"] = order
    return resource("NetworkPolicy", name, spec, namespace)


def profile(name: str, labels_to_apply: dict | None = None, ingress: list | None = None,
            egress: list | None = None):
    spec: dict[str, Any] = {}
    if labels_to_apply:
        spec["labelsToApply"] = labels_to_apply
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return resource("Profile", name, spec)


def netset(name: str, nets: list[str], labels: dict | None = None, namespace: str = ""):
    if namespace:
        return resource("NetworkSet", name, {"nets": nets}, namespace, labels)
    return resource("GlobalNetworkSet", name, {"nets": nets}, labels=labels)


def allow_from(selector: str, **entity: Any) -> dict:
    return {"action": "Allow", "source": {"selector": selector, **entity}}


# ---- the dataplane-state reducer ------------------------------------------------------------


class Dataplane:
    """Folds messages into state, asserting the sequencer's ordering guarantees."""

    def __init__(self) -> None:
        self.ipsets: dict[str, set[str]] = {}
        self.ipset_types: dict[str, m.IPSetType] = {}
        self.policies: dict[m.PolicyID, m.ActivePolicyUpdate] = {}
        self.profiles: dict[m.ProfileID, m.ActiveProfileUpdate] = {}
        self.endpoints: dict[Any, Any] = {}
        self.hosts: dict[str, m.HostMetadataUpdate] = {}
        self.pools: dict[str, m.IPAMPoolUpdate] = {}
        self.config: dict[str, str] | None = None
        self.in_sync = False

    def apply_all(self, messages: list[m.Message]) -> Dataplane:
        for msg in messages:
            self.apply(msg)
        return self

    def _set_users(self, set_id: str) -> list[Any]:
        return [owner for owner, msg in (*self.policies.items(), *self.profiles.items())
                if any(set_id in r.ip_set_ids()
                       for r in (*msg.inbound_rules, *msg.outbound_rules))]

    def _endpoint_refs(self) -> set[Any]:
        refs: set[Any] = set()
        for ep in self.endpoints.values():
            refs.update(ep.profile_ids)
            tiers = list(ep.tiers)
            if isinstance(ep, m.HostEndpointUpdate):
                tiers += [*ep.untracked_tiers, *ep.pre_dnat_tiers, *ep.forward_tiers]
            for tier in tiers:
                refs.update(tier.ingress_policies, tier.egress_policies)
        return refs

    def apply(self, msg: m.Message) -> None:  # noqa: C901 (one case per message type)
        match msg:
            case m.IPSetUpdate(id=set_id, type=set_type, members=members):
                self.ipsets[set_id] = set(members)
                self.ipset_types[set_id] = set_type
            case m.IPSetDeltaUpdate(id=set_id, added=added, removed=removed):
                assert set_id in self.ipsets, f"delta for unknown set {set_id}"
                current = self.ipsets[set_id]
                assert not (added & current), f"{set_id}: re-added {added & current}"
                assert removed <= current, f"{set_id}: removed unknown {removed - current}"
                assert added or removed, "empty delta"
                current -= removed
                current |= added
            case m.IPSetRemove(id=set_id):
                assert set_id in self.ipsets, f"remove of unknown set {set_id}"
                assert not self._set_users(set_id), f"{set_id} removed while in use"
                del self.ipsets[set_id], self.ipset_types[set_id]
            case m.ActivePolicyUpdate() | m.ActiveProfileUpdate():
                for rule in (*msg.inbound_rules, *msg.outbound_rules):
                    missing = rule.ip_set_ids() - self.ipsets.keys()
                    assert not missing, f"{msg.id} uses unknown sets {missing}"
                target = self.policies if isinstance(msg, m.ActivePolicyUpdate) else self.profiles
                target[msg.id] = msg  # type: ignore[index]
            case m.ActivePolicyRemove(id=pid) | m.ActiveProfileRemove(id=pid):
                target = self.policies if isinstance(msg, m.ActivePolicyRemove) else self.profiles
                assert pid in target, f"remove of unknown {pid}"
                assert pid not in self._endpoint_refs(), f"{pid} removed while referenced"
                del target[pid]  # type: ignore[arg-type]
            case m.WorkloadEndpointUpdate() | m.HostEndpointUpdate():
                self.endpoints[msg.id] = msg
                missing = {r for r in self._endpoint_refs()
                           if r not in self.policies and r not in self.profiles}
                assert not missing, f"{msg.id} references unknown {missing}"
            case m.WorkloadEndpointRemove(id=ep) | m.HostEndpointRemove(id=ep):
                assert ep in self.endpoints, f"remove of unknown endpoint {ep}"
                del self.endpoints[ep]
            case m.HostMetadataUpdate(hostname=host):
                self.hosts[host] = msg
            case m.HostMetadataRemove(hostname=host):
                assert host in self.hosts
                del self.hosts[host]
            case m.IPAMPoolUpdate(id=pool):
                self.pools[pool] = msg
            case m.IPAMPoolRemove(id=pool):
                assert pool in self.pools
                del self.pools[pool]
            case m.ConfigUpdate(config=config):
                self.config = dict(config)
            case m.InSync():
                assert not self.in_sync, "InSync sent twice"
                self.in_sync = True
            case _:
                raise AssertionError(f"unexpected message {msg!r}")

    def state(self) -> dict[str, Any]:
        """Everything except the sync flag, comparable with ==."""
        return {
            "ipsets": {k: (self.ipset_types[k], frozenset(v)) for k, v in self.ipsets.items()},
            "policies": dict(self.policies),
            "profiles": dict(self.profiles),
            "endpoints": dict(self.endpoints),
            "hosts": dict(self.hosts),
            "pools": dict(self.pools),
            "config": self.config,
        }
