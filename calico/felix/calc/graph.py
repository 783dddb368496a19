"""The calculation graph: syncer updates in, ordered dataplane messages out.

    graph = CalcGraph("node-1")
    graph.on_update("/calico/resources/v3/projectcalico.org/workloadendpoints/ns/name", wep)
    graph.on_update(key, None)        # a deletion
    graph.on_status("in-sync")
    messages = graph.flush()          # everything since the last flush, in dependency order

Pure and single-threaded: no I/O, no clock, no threads. The wiring (Calico's calc_graph.go,
much reduced):

    endpoints, network sets ──► IPSetCalculator (label index over everything) ──┐
    profiles (labelsToApply) ─┬─►                                               ├─► EventSequencer
                              └─► PolicyCalculator (label index over local   ───┘        │
    policies, profiles (rules) ──►  endpoints; active policies/profiles;                 ▼
                                    rules → IPSetRefs; per-endpoint tiers)          flush()
    tiers (order) ──────────────► PolicyCalculator (the order of each endpoint's tiers)
    nodes, IP pools, FelixConfiguration, sync status ─────────────────────────► (pass-through)

An endpoint is local when its `spec.node` is our hostname. Every endpoint and network set
feeds IP-set membership; only local endpoints are matched against policy selectors. As in
Calico, a WorkloadEndpoint without `ipNetworks` is ignored until it has some. Resource kinds
the graph does not use are ignored.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from calico.felix import messages as m

from .ipsets import IPSetCalculator, IPSetRefs, NamedPort
from .policies import EndpointID, PolicyCalculator
from .rules import NAMED_PORT_PROTOCOLS, normalise_nets
from .selectors import (
    LABEL_ORCHESTRATOR,
    LABEL_SERVICE_ACCOUNT,
    field,
    implicit_parents,
    namespaced_labels,
    own_labels,
)
from .sequencer import EventSequencer

KEY_PREFIX = "/calico/resources/v3/projectcalico.org/"
IN_SYNC = "in-sync"


class CalcGraph:
    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self._ipsets: IPSetCalculator
        self._seq = EventSequencer(lambda set_id: self._ipsets.members(set_id))
        self._ipsets = IPSetCalculator(self._seq)
        self._policies = PolicyCalculator(self._seq, IPSetRefs(self._ipsets), self._dirty_ep)
        self._local: dict[EndpointID, m.WorkloadEndpointUpdate | m.HostEndpointUpdate] = {}
        self._dirty: set[EndpointID] = set()
        self._policy_ids: dict[str, m.PolicyID] = {}  # datastore key -> id (tier may change)
        self._felix_config: dict[str, dict[str, Any]] = {}
        self._handlers: dict[str, Callable[[str, str, str, Any], None]] = {
            "workloadendpoints": self._on_workload_endpoint,
            "hostendpoints": self._on_host_endpoint,
            "profiles": self._on_profile,
            "networkpolicies": self._on_policy,
            "globalnetworkpolicies": self._on_policy,
            "networksets": self._on_network_set,
            "globalnetworksets": self._on_network_set,
            "ippools": self._on_pool,
            "nodes": self._on_node,
            "felixconfigurations": self._on_felix_config,
            "tiers": self._on_tier,
        }

    # ---- the API ---------------------------------------------------------------------------

    def on_update(self, key: str, value: Any) -> None:
        """One syncer update: `value` is the validated resource, or None for a deletion."""
        if not key.startswith(KEY_PREFIX):
            return
        plural, _, rest = key[len(KEY_PREFIX):].partition("/")
        handler = self._handlers.get(plural)
        if handler is None:
            return
        namespace, _, name = rest.rpartition("/")
        handler(key, namespace, name, value)

    def on_status(self, status: Any) -> None:
        """The syncer's status: "wait-for-datastore", "resync" or "in-sync"."""
        if str(getattr(status, "value", status)) == IN_SYNC:
            self._seq.in_sync()

    def flush(self) -> list[m.Message]:
        """Every change since the last flush, coalesced and in dependency order."""
        for ep in self._dirty:
            base = self._local[ep]
            if isinstance(base, m.HostEndpointUpdate):
                tiers = self._policies.tiers(ep, host=True)
                msg: Any = replace(base, tiers=tiers["normal"],
                                   untracked_tiers=tiers["untracked"],
                                   pre_dnat_tiers=tiers["pre_dnat"],
                                   forward_tiers=tiers["forward"])
            else:
                msg = replace(base, tiers=self._policies.tiers(ep, host=False)["normal"])
            self._seq.endpoint_update(msg)
        self._dirty.clear()
        return self._seq.flush()

    # ---- endpoints and network sets --------------------------------------------------------

    def _dirty_ep(self, ep: EndpointID) -> None:
        if ep in self._local:
            self._dirty.add(ep)

    def _on_workload_endpoint(self, key: str, namespace: str, name: str, value: Any) -> None:
        ep = m.WorkloadEndpointID(namespace, name)
        spec = field(value, "spec")
        ip_networks = field(spec, "ipNetworks", [])
        if value is None or not ip_networks:
            self._ipsets.remove_item(ep)
            self._remove_local(ep)
            return
        labels = namespaced_labels(own_labels(field(field(value, "metadata"), "labels")), namespace)
        orchestrator = field(spec, "orchestrator", "")
        if orchestrator:
            labels[LABEL_ORCHESTRATOR] = orchestrator
        service_account = field(spec, "serviceAccountName", "")
        if service_account:
            labels[LABEL_SERVICE_ACCOUNT] = service_account
        profiles = tuple(field(spec, "profiles", []))
        parents = implicit_parents(list(profiles), namespace, service_account)
        nets = normalise_nets(ip_networks)
        self._ipsets.update_item(ep, labels, parents, nets, _named_ports(spec))
        if field(spec, "node") != self.hostname:
            self._remove_local(ep)
            return
        self._local[ep] = m.WorkloadEndpointUpdate(
            id=ep, interface=field(spec, "interfaceName", ""), mac=field(spec, "mac", ""),
            ipv4_nets=tuple(n for n in nets if ":" not in n),
            ipv6_nets=tuple(n for n in nets if ":" in n),
            profile_ids=tuple(m.ProfileID(p) for p in profiles),
            allowed_spoofed_source_prefixes=normalise_nets(
                field(spec, "allowSpoofedSourcePrefixes")),
            ipv4_nat=tuple((field(nat, "internalIP"), field(nat, "externalIP"))
                           for nat in field(spec, "ipNATs", [])
                           if ":" not in field(nat, "internalIP", "")),
        )
        self._policies.update_endpoint(ep, labels, parents, profiles)

    def _on_host_endpoint(self, key: str, namespace: str, name: str, value: Any) -> None:
        ep = m.HostEndpointID(name)
        if value is None:
            self._ipsets.remove_item(ep)
            self._remove_local(ep)
            return
        spec = field(value, "spec")
        labels = own_labels(field(field(value, "metadata"), "labels"))
        profiles = tuple(field(spec, "profiles", []))
        expected = [str(ipaddress.ip_address(a)) for a in field(spec, "expectedIPs", [])]
        nets = normalise_nets(expected)
        self._ipsets.update_item(ep, labels, profiles, nets, _named_ports(spec))
        if field(spec, "node") != self.hostname:
            self._remove_local(ep)
            return
        self._local[ep] = m.HostEndpointUpdate(
            id=ep, interface=field(spec, "interfaceName", ""),
            expected_ipv4_addrs=tuple(a for a in expected if ":" not in a),
            expected_ipv6_addrs=tuple(a for a in expected if ":" in a),
            profile_ids=tuple(m.ProfileID(p) for p in profiles),
        )
        self._policies.update_endpoint(ep, labels, profiles, profiles)

    def _remove_local(self, ep: EndpointID) -> None:
        if self._local.pop(ep, None) is not None:
            self._policies.remove_endpoint(ep)
            self._dirty.discard(ep)
            self._seq.endpoint_remove(ep)

    def _on_network_set(self, key: str, namespace: str, name: str, value: Any) -> None:
        item = ("NetworkSet", namespace, name) if namespace else ("GlobalNetworkSet", name)
        if value is None:
            self._ipsets.remove_item(item)
            return
        labels = own_labels(field(field(value, "metadata"), "labels"))
        if namespace:
            labels = namespaced_labels(labels, namespace)
        self._ipsets.update_item(item, labels, implicit_parents([], namespace),
                                 normalise_nets(field(field(value, "spec"), "nets")))

    # ---- profiles and policies -------------------------------------------------------------

    def _on_tier(self, key: str, namespace: str, name: str, value: Any) -> None:
        self._policies.update_tier(name, None if value is None else field(value, "spec"))

    def _on_profile(self, key: str, namespace: str, name: str, value: Any) -> None:
        spec = field(value, "spec")
        labels = field(spec, "labelsToApply") if value is not None else None
        self._ipsets.update_parent(name, labels)
        self._policies.update_parent(name, labels)
        self._policies.update_profile(name, spec if value is not None else None)

    def _on_policy(self, key: str, namespace: str, name: str, value: Any) -> None:
        old = self._policy_ids.get(key)
        pid = None
        if value is not None:
            pid = m.PolicyID(name, namespace, field(field(value, "spec"), "tier", "default"))
        if old is not None and old != pid:
            self._policies.remove_policy(old)
            del self._policy_ids[key]
        if pid is not None:
            self._policy_ids[key] = pid
            self._policies.update_policy(pid, field(value, "spec"))

    # ---- pass-through kinds ----------------------------------------------------------------

    def _on_node(self, key: str, namespace: str, name: str, value: Any) -> None:
        if value is None:
            self._seq.host_remove(name)
            return
        bgp = field(field(value, "spec"), "bgp")
        self._seq.host_update(m.HostMetadataUpdate(
            name, field(bgp, "ipv4Address", ""), field(bgp, "ipv6Address", "")))

    def _on_pool(self, key: str, namespace: str, name: str, value: Any) -> None:
        if value is None:
            self._seq.pool_remove(name)
            return
        spec = field(value, "spec")
        self._seq.pool_update(m.IPAMPoolUpdate(
            name, str(field(spec, "cidr", "")), masquerade=bool(field(spec, "natOutgoing")),
            ipip_mode=str(field(spec, "ipipMode", "Never")),
            vxlan_mode=str(field(spec, "vxlanMode", "Never")),
            disabled=bool(field(spec, "disabled"))))

    def _on_felix_config(self, key: str, namespace: str, name: str, value: Any) -> None:
        if name != "default" and name != f"node.{self.hostname}":
            return
        if value is None:
            self._felix_config.pop(name, None)
        else:
            self._felix_config[name] = _as_dict(field(value, "spec"))
        merged = {**self._felix_config.get("default", {}),
                  **self._felix_config.get(f"node.{self.hostname}", {})}
        self._seq.config_update(m.ConfigUpdate({k: _config_value(v)
                                                for k, v in sorted(merged.items())}))


def _named_ports(spec: Any) -> tuple[NamedPort, ...]:
    out = []
    for port in field(spec, "ports", []):
        name = field(port, "name", "")
        if name:
            proto = field(port, "protocol", "TCP")
            proto = NAMED_PORT_PROTOCOLS.get(proto, "") if isinstance(proto, int) else proto
            out.append((name, str(proto).lower(), int(field(port, "port", 0))))
    return tuple(out)


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=True)
    if isinstance(obj, dict):
        return {k: v for k, v in obj.items() if v is not None}
    return {k: v for k, v in vars(obj).items() if v is not None}


def _config_value(value: Any) -> str:
    """A FelixConfiguration field as the config loader reads it (like an env var)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
