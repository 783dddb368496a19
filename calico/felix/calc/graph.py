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
    nodes, IP pools, IPAM blocks ──► VXLANResolver (VTEPs, routes in VXLAN pools) ──► sequencer
    address spaces ──► SpaceIndex: a space endpoint is its translated addresses everywhere, and
                       SpaceRenderer (before the sequencer) renders its policies per space
                       (spaces.py; our extension)

An endpoint is local when its `spec.node` is our hostname. Every endpoint and network set
feeds IP-set membership; only local endpoints are matched against policy selectors. As in
Calico, a WorkloadEndpoint without `ipNetworks` is ignored until it has some. Resource kinds
the graph does not use are ignored. IPAM blocks (`/calico/ipam/v2/assignment/...`, decoded
JSON) feed only the VXLAN resolver (vxlan.py).

A local endpoint's addresses (routed to its interface, accepted as its sources) are its
ipNetworks plus the multi-address entries of `allowedIps` (networking-calico's field for a
port's allowed address pairs: a CIDR pair cannot be in ipNetworks); our extension, as
Calico's Felix ignores `allowedIps`. IP-set membership stays the ipNetworks.

Inputs are typed: the syncer hands over validated `calico.api` resources (Calico's defaults
filled), and each handler reads the fields of its kind by attribute.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from calico.api import Resource
from calico.api.addressspace import AddressSpace
from calico.api.cluster import Node
from calico.api.endpoints import (
    HostEndpoint,
    HostEndpointSpec,
    WorkloadEndpoint,
    WorkloadEndpointSpec,
)
from calico.api.felixconfig import FelixConfiguration
from calico.api.ippool import IPPool
from calico.api.networkset import GlobalNetworkSet, NetworkSet
from calico.api.policy import GlobalNetworkPolicy, NetworkPolicy, Tier
from calico.api.profile import Profile
from calico.felix import messages as m

from .ipsets import IPSetCalculator, IPSetRefs, NamedPort
from .policies import EndpointID, PolicyCalculator
from .rules import NAMED_PORT_PROTOCOLS, normalise_nets
from .selectors import (
    LABEL_ORCHESTRATOR,
    LABEL_SERVICE_ACCOUNT,
    implicit_parents,
    namespaced_labels,
    own_labels,
)
from .sequencer import EventSequencer
from .spaces import SpaceIndex, SpaceRenderer, space_endpoint
from .vxlan import BLOCKS_PREFIX, VXLANResolver

KEY_PREFIX = "/calico/resources/v3/projectcalico.org/"
IN_SYNC = "in-sync"


class CalcGraph:
    """Syncer updates and status in (`on_update`, `on_status`), the dataplane messages they
    imply out of `flush()`, coalesced and in dependency order; pure and single-threaded."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self._ipsets: IPSetCalculator
        self._spaces = SpaceIndex()
        self._seq = SpaceRenderer(EventSequencer(lambda set_id: self._ipsets.members(set_id)),
                                  self._spaces)
        self._space_weps: dict[str, tuple[str, str, WorkloadEndpoint]] = {}  # key -> endpoint
        self._ipsets = IPSetCalculator(self._seq)
        self._policies = PolicyCalculator(self._seq, IPSetRefs(self._ipsets), self._dirty_ep)
        self._vxlan = VXLANResolver(hostname, self._seq)
        self._local: dict[EndpointID, m.WorkloadEndpointUpdate | m.HostEndpointUpdate] = {}
        self._dirty: set[EndpointID] = set()
        self._policy_ids: dict[str, m.PolicyID] = {}  # datastore key -> id (tier may change)
        self._felix_config: dict[str, dict[str, Any]] = {}
        self._handlers: dict[str, Callable[[str, str, str, Any], None]] = {  # by key plural
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
            "addressspaces": self._on_address_space,
        }

    # ---- the API ---------------------------------------------------------------------------

    def on_update(self, key: str, value: Resource | None) -> None:
        """One syncer update: `value` is the validated resource, or None for a deletion."""
        if key.startswith(BLOCKS_PREFIX):
            self._vxlan.on_block(key, value)
            return
        if not key.startswith(KEY_PREFIX):
            return
        plural, _, rest = key[len(KEY_PREFIX):].partition("/")
        handler = self._handlers.get(plural)
        if handler is None:
            return
        namespace, _, name = rest.rpartition("/")
        handler(key, namespace, name, value)

    def on_status(self, status: enum.Enum | str) -> None:
        """The syncer's status: "wait-for-datastore", "resync" or "in-sync"."""
        if str(getattr(status, "value", status)) == IN_SYNC:
            self._seq.in_sync()

    def flush(self) -> list[m.Message]:
        """Every change since the last flush, coalesced and in dependency order."""
        for ep in self._dirty:
            self._seq.endpoint_update(self._with_tiers(self._local[ep]))
        self._dirty.clear()
        self._vxlan.flush()
        return self._seq.flush()

    def _with_tiers(self, base: m.WorkloadEndpointUpdate | m.HostEndpointUpdate
                    ) -> m.WorkloadEndpointUpdate | m.HostEndpointUpdate:
        if isinstance(base, m.HostEndpointUpdate):
            tiers = self._policies.tiers(base.id, host=True)
            return replace(base, tiers=tiers["normal"], untracked_tiers=tiers["untracked"],
                           pre_dnat_tiers=tiers["pre_dnat"], forward_tiers=tiers["forward"])
        return replace(base, tiers=self._policies.tiers(base.id, host=False)["normal"])

    # ---- endpoints and network sets --------------------------------------------------------

    def _dirty_ep(self, ep: EndpointID) -> None:
        if ep in self._local:
            self._dirty.add(ep)

    def _on_workload_endpoint(self, key: str, namespace: str, name: str,
                              value: WorkloadEndpoint | None) -> None:
        ep = m.WorkloadEndpointID(namespace, name)
        space = None if value is None else value.spec.addressSpace
        self._spaces.join(key, space)
        if space is not None:
            self._space_weps[key] = (namespace, name, value)
        else:
            self._space_weps.pop(key, None)
        nets = None
        if value is not None and value.spec.ipNetworks:
            nets = normalise_nets(value.spec.ipNetworks)
            if space is not None:
                nets = self._spaces.translate_nets(space, nets)  # None: space unknown
        if value is None or not nets:
            self._ipsets.remove_item(ep)
            self._remove_local(ep)
            return
        spec = value.spec
        labels = namespaced_labels(own_labels(value.metadata.labels), namespace)
        if spec.orchestrator:
            labels[LABEL_ORCHESTRATOR] = spec.orchestrator
        service_account = spec.serviceAccountName or ""
        if service_account:
            labels[LABEL_SERVICE_ACCOUNT] = service_account
        profiles = tuple(spec.profiles or ())
        parents = implicit_parents(list(profiles), namespace, service_account)
        self._ipsets.update_item(ep, labels, parents, nets, _named_ports(spec))
        if spec.node != self.hostname:
            self._remove_local(ep)
            return
        if space is None:
            routed = nets + tuple(n for n in normalise_nets(spec.allowedIps)
                                  if n not in nets and ipaddress.ip_network(n).num_addresses > 1)
            self._local[ep] = _workload_endpoint_update(ep, spec, routed, profiles)
        else:
            self._local[ep] = space_endpoint(
                _workload_endpoint_update(ep, spec, (), profiles), space,
                self._spaces.prefixes[space], normalise_nets(spec.ipNetworks))
        self._policies.update_endpoint(ep, labels, parents, profiles)

    def _on_host_endpoint(self, key: str, namespace: str, name: str,
                          value: HostEndpoint | None) -> None:
        ep = m.HostEndpointID(name)
        if value is None:
            self._ipsets.remove_item(ep)
            self._remove_local(ep)
            return
        spec = value.spec
        labels = own_labels(value.metadata.labels)
        profiles = tuple(spec.profiles or ())
        expected = [str(ipaddress.ip_address(a)) for a in spec.expectedIPs or ()]
        nets = normalise_nets(expected)
        self._ipsets.update_item(ep, labels, profiles, nets, _named_ports(spec))
        if spec.node != self.hostname:
            self._remove_local(ep)
            return
        self._local[ep] = m.HostEndpointUpdate(
            id=ep, interface=spec.interfaceName or "",
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

    def _on_network_set(self, key: str, namespace: str, name: str,
                        value: NetworkSet | GlobalNetworkSet | None) -> None:
        item = ("NetworkSet", namespace, name) if namespace else ("GlobalNetworkSet", name)
        if value is None:
            self._ipsets.remove_item(item)
            return
        labels = own_labels(value.metadata.labels)
        if namespace:
            labels = namespaced_labels(labels, namespace)
        self._ipsets.update_item(item, labels, implicit_parents([], namespace),
                                 normalise_nets(value.spec.nets))

    # ---- profiles and policies -------------------------------------------------------------

    def _on_tier(self, key: str, namespace: str, name: str, value: Tier | None) -> None:
        self._policies.update_tier(name, None if value is None else value.spec)

    def _on_profile(self, key: str, namespace: str, name: str, value: Profile | None) -> None:
        spec = None if value is None else value.spec
        labels = None if spec is None else spec.labelsToApply
        self._ipsets.update_parent(name, labels)
        self._policies.update_parent(name, labels)
        self._policies.update_profile(name, spec)

    def _on_policy(self, key: str, namespace: str, name: str,
                   value: NetworkPolicy | GlobalNetworkPolicy | None) -> None:
        old = self._policy_ids.get(key)
        pid = None if value is None else m.PolicyID(name, namespace, value.spec.tier or "default")
        if old is not None and old != pid:
            self._policies.remove_policy(old)
            del self._policy_ids[key]
        if value is not None and pid is not None:  # (one test, spelt for the type checker)
            self._policy_ids[key] = pid
            self._policies.update_policy(pid, value.spec)

    # ---- pass-through kinds ----------------------------------------------------------------

    def _on_node(self, key: str, namespace: str, name: str, value: Node | None) -> None:
        self._vxlan.on_node(name, value)
        if value is None:
            self._seq.host_remove(name)
            return
        bgp = value.spec.bgp
        if bgp is None:
            self._seq.host_update(m.HostMetadataUpdate(name, "", ""))
        else:
            self._seq.host_update(m.HostMetadataUpdate(name, bgp.ipv4Address or "",
                                                       bgp.ipv6Address or ""))

    def _on_address_space(self, key: str, namespace: str, name: str,
                          value: AddressSpace | None) -> None:
        prefix = None if value is None else value.spec.translationPrefix
        for ep_key in sorted(self._spaces.update(name, prefix)):
            self._on_workload_endpoint(ep_key, *self._space_weps[ep_key])
        self._seq.resend_space(name)

    def _on_pool(self, key: str, namespace: str, name: str, value: IPPool | None) -> None:
        if value is not None and value.spec.addressSpace is not None:
            value = None  # a space's pool is IPv6 outside its hosts' interfaces: not a v4 pool
        if value is None:
            self._vxlan.on_pool(name, None)
            self._seq.pool_remove(name)
            return
        spec = value.spec
        self._vxlan.on_pool(name, spec.cidr, spec.vxlanMode or "Never")
        self._seq.pool_update(m.IPAMPoolUpdate(
            name, spec.cidr, masquerade=bool(spec.natOutgoing),
            ipip_mode=spec.ipipMode or "Never", vxlan_mode=spec.vxlanMode or "Never",
            disabled=bool(spec.disabled)))

    def _on_felix_config(self, key: str, namespace: str, name: str,
                         value: FelixConfiguration | None) -> None:
        if name != "default" and name != f"node.{self.hostname}":
            return
        if value is None:
            self._felix_config.pop(name, None)
        else:
            self._felix_config[name] = value.spec.model_dump(mode="json", exclude_none=True)
        merged = {**self._felix_config.get("default", {}),
                  **self._felix_config.get(f"node.{self.hostname}", {})}
        self._seq.config_update(m.ConfigUpdate({k: _config_value(v)
                                                for k, v in sorted(merged.items())}))


def _workload_endpoint_update(ep: m.WorkloadEndpointID, spec: WorkloadEndpointSpec,
                              nets: tuple[str, ...], profiles: tuple[str, ...]
                              ) -> m.WorkloadEndpointUpdate:
    """A local endpoint's message, without its tiers (the policy resolver adds them)."""
    return m.WorkloadEndpointUpdate(
        id=ep, interface=spec.interfaceName, mac=spec.mac or "",
        ipv4_nets=tuple(n for n in nets if ":" not in n),
        ipv6_nets=tuple(n for n in nets if ":" in n),
        profile_ids=tuple(m.ProfileID(p) for p in profiles),
        allowed_spoofed_source_prefixes=normalise_nets(spec.allowSpoofedSourcePrefixes),
        ipv4_nat=_nats(spec, 4),
        ipv6_nat=_nats(spec, 6),
        orchestrator=spec.orchestrator or "",
    )


def _nats(spec: WorkloadEndpointSpec, version: int) -> tuple[tuple[str, str], ...]:
    """ipNATs of one IP version as (internal, external) address text, canonical and sorted."""
    out = set()
    for nat in spec.ipNATs or ():
        internal = ipaddress.ip_address(nat.internalIP)
        if internal.version == version:
            out.add((str(internal), str(ipaddress.ip_address(nat.externalIP))))
    return tuple(sorted(out))


def _named_ports(spec: WorkloadEndpointSpec | HostEndpointSpec) -> tuple[NamedPort, ...]:
    out = []
    for port in spec.ports or ():
        if port.name:
            proto = port.protocol
            proto = NAMED_PORT_PROTOCOLS.get(proto, "") if isinstance(proto, int) else proto
            out.append((port.name, proto.lower(), port.port))
    return tuple(out)


def _config_value(value: Any) -> str:
    """A FelixConfiguration field as the config loader reads it (like an env var)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
