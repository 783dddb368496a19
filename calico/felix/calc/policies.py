"""Active policies and profiles, and the ordered policies of each local endpoint.

In: (Global)NetworkPolicy and Profile specs (validated `calico.api` models, already keyed by
id), and this host's endpoints with their labels, profile parents and listed profiles.
Out: to the sequencer, `policy_update/remove` and `profile_update/remove` for *active* ones
only (a policy is active while it selects at least one local endpoint, a profile while a local
endpoint lists it); to `IPSetRefs`, the IP sets the active rules use; to the graph, the ids of
endpoints whose policy list may have changed (`on_dirty`), whose tiers it then asks `tiers()`.

A profile that a local endpoint lists but that does not exist is sent with no rules (the
endpoint then drops what no policy allows, as with Calico).

Ordering (Calico's policy sorter): `order` ascending, unset last, then name; policies are
grouped into tiers by `spec.tier` ("default" when unset), and tiers are ordered as Calico's
Felix orders them: by the Tier's `order` ascending, unset last, then by name. A tier with no
Tier resource has Calico's fixed order when it is one of the tiers Calico creates (default
1,000,000, kube-admin 1,000, kube-baseline 10,000,000), else none (last). For a host endpoint, doNotTrack policies
go to the untracked tiers, preDNAT ones to the pre-DNAT tiers, the others to the normal tiers
and, with applyOnForward, to the forward tiers too; workload endpoints get the normal tiers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from calico.api.policy import (
    RESERVED_TIER_ORDERS,
    GlobalNetworkPolicySpec,
    NetworkPolicySpec,
    TierSpec,
    default_policy_types,
)
from calico.api.profile import ProfileSpec
from calico.felix import messages as m
from calico.felix.heap import compact
from calico.selector import Selector

from .ipsets import IPSetRefs
from .labelindex import LabelIndex
from .rules import IPSetSpec, resolve_rules
from .selectors import policy_selector
from .sequencer import EventSequencer

EndpointID = m.WorkloadEndpointID | m.HostEndpointID
PolicySpec = NetworkPolicySpec | GlobalNetworkPolicySpec


class Policy:
    """The parts of a (Global)NetworkPolicy the graph needs, parsed once."""

    __slots__ = ("id", "selector", "sort_key", "ingress", "egress", "untracked", "pre_dnat",
                 "apply_on_forward", "inbound", "outbound")

    def __init__(self, pid: m.PolicyID, spec: PolicySpec) -> None:
        self.id = pid
        self.selector: Selector = policy_selector(spec, pid.namespace)
        order = spec.order
        self.sort_key = (order is None, float(order) if order is not None else 0.0, str(pid))
        self.inbound = spec.ingress or []
        self.outbound = spec.egress or []
        # validation fills `types` (Calico's default); the fallback is the same default
        types = spec.types
        if types is None:
            types = default_policy_types(self.inbound, self.outbound)
        self.ingress = "Ingress" in types
        self.egress = "Egress" in types
        namespaced = bool(pid.namespace)
        gnp = spec if isinstance(spec, GlobalNetworkPolicySpec) and not namespaced else None
        self.untracked = gnp is not None and bool(gnp.doNotTrack)
        self.pre_dnat = gnp is not None and bool(gnp.preDNAT)
        self.apply_on_forward = namespaced or (gnp is not None and bool(gnp.applyOnForward))


class PolicyCalculator:
    """Keeps the policies and profiles active on this host and each local endpoint's matches:
    sends active ones to the sequencer, their IP sets to `IPSetRefs`, dirty endpoints to the
    graph; `tiers()` is the policy resolver (see the module docstring)."""

    def __init__(self, sequencer: EventSequencer, ipset_refs: IPSetRefs,
                 on_dirty: Callable[[EndpointID], None]) -> None:
        self._seq = sequencer
        self._refs = ipset_refs
        self._on_dirty = on_dirty
        self._index = LabelIndex(self._on_match, self._on_unmatch)
        self._policies: dict[m.PolicyID, Policy] = {}
        self._policy_eps: dict[m.PolicyID, set[EndpointID]] = {}
        self._ep_policies: dict[EndpointID, set[m.PolicyID]] = {}
        self._sets: dict[Hashable, dict[str, IPSetSpec]] = {}  # active owner -> its IP sets
        self._profiles: dict[str, ProfileSpec] = {}
        self._tier_orders: dict[str, float | None] = {}  # Tier resources: name -> spec.order
        self._profile_refs: dict[str, int] = {}
        self._ep_profiles: dict[EndpointID, tuple[str, ...]] = {}

    # ---- policies --------------------------------------------------------------------------

    def update_policy(self, pid: m.PolicyID, spec: PolicySpec) -> None:
        was_active = pid in self._sets
        self._policies[pid] = Policy(pid, spec)
        self._index.update_selector(pid, self._policies[pid].selector)
        if was_active and pid in self._sets:
            self._send_policy(pid)
        for ep in self._policy_eps.get(pid, ()):
            self._on_dirty(ep)  # order, types or flags may have changed

    def remove_policy(self, pid: m.PolicyID) -> None:
        if pid in self._policies:
            self._index.remove_selector(pid)
            del self._policies[pid]

    def _on_match(self, pid: m.PolicyID, ep: EndpointID) -> None:
        self._ep_policies.setdefault(ep, set()).add(pid)
        eps = self._policy_eps.setdefault(pid, set())
        eps.add(ep)
        if len(eps) == 1:
            self._send_policy(pid)
        self._on_dirty(ep)

    def _on_unmatch(self, pid: m.PolicyID, ep: EndpointID) -> None:
        policies = self._ep_policies[ep]
        policies.discard(pid)
        compact(policies)
        eps = self._policy_eps[pid]
        eps.discard(ep)
        compact(eps)
        if not eps:
            del self._policy_eps[pid]
            self._refs.set_uses(pid, self._sets.pop(pid), {})
            self._seq.policy_remove(pid)
        self._on_dirty(ep)

    def _send_policy(self, pid: m.PolicyID) -> None:
        pol = self._policies[pid]
        inbound, outbound, sets = resolve_rules(str(pid), pol.inbound, pol.outbound,
                                                pid.namespace)
        self._refs.set_uses(pid, self._sets.get(pid, {}), sets)
        self._sets[pid] = sets
        self._seq.policy_update(m.ActivePolicyUpdate(
            pid, inbound, outbound, untracked=pol.untracked, pre_dnat=pol.pre_dnat,
            apply_on_forward=pol.apply_on_forward))

    # ---- profiles --------------------------------------------------------------------------

    def update_tier(self, name: str, spec: TierSpec | None) -> None:
        """A Tier added, changed (spec) or deleted (None): its order places its policies."""
        order = None if spec is None else spec.order
        if spec is None:
            self._tier_orders.pop(name, None)
        else:
            self._tier_orders[name] = float(order) if order is not None else None
        for ep, policies in self._ep_policies.items():
            if any(p.tier == name for p in policies):
                self._on_dirty(ep)

    def _tier_key(self, name: str) -> tuple:
        if name in self._tier_orders:
            order = self._tier_orders[name]
        else:
            order = RESERVED_TIER_ORDERS.get(name)
        return (order is None, order or 0.0, name)

    def update_profile(self, name: str, spec: ProfileSpec | None) -> None:
        if spec is None:
            self._profiles.pop(name, None)
        else:
            self._profiles[name] = spec
        if name in self._profile_refs:
            self._send_profile(name)

    def _send_profile(self, name: str) -> None:
        spec = self._profiles.get(name)
        owner = m.ProfileID(name)
        if spec is None:  # listed but missing: no rules
            inbound, outbound, sets = (), (), {}
        else:
            inbound, outbound, sets = resolve_rules(f"profile:{name}", spec.ingress,
                                                    spec.egress, "")
        self._refs.set_uses(owner, self._sets.get(owner, {}), sets)
        self._sets[owner] = sets
        self._seq.profile_update(m.ActiveProfileUpdate(owner, inbound, outbound))

    def _ref_profiles(self, ep: EndpointID, profiles: tuple[str, ...]) -> None:
        old = self._ep_profiles.pop(ep, ())
        if profiles:
            self._ep_profiles[ep] = profiles
        for name in set(profiles) - set(old):
            self._profile_refs[name] = self._profile_refs.get(name, 0) + 1
            if self._profile_refs[name] == 1:
                self._send_profile(name)
        for name in set(old) - set(profiles):
            self._profile_refs[name] -= 1
            if not self._profile_refs[name]:
                del self._profile_refs[name]
                owner = m.ProfileID(name)
                self._refs.set_uses(owner, self._sets.pop(owner), {})
                self._seq.profile_remove(owner)

    # ---- local endpoints -------------------------------------------------------------------

    def update_endpoint(self, ep: EndpointID, labels: dict[str, str],
                        parents: tuple[str, ...], profiles: tuple[str, ...]) -> None:
        self._ref_profiles(ep, profiles)
        self._index.update_item(ep, labels, parents)
        self._on_dirty(ep)

    def remove_endpoint(self, ep: EndpointID) -> None:
        self._index.remove_item(ep)
        self._ep_policies.pop(ep, None)
        self._ref_profiles(ep, ())

    def update_parent(self, name: str, labels: dict[str, str] | None) -> None:
        self._index.update_parent(name, labels)

    # ---- the policy resolver ---------------------------------------------------------------

    def tiers(self, ep: EndpointID, host: bool) -> dict[str, tuple[m.TierInfo, ...]]:
        """The endpoint's tiers by kind: "normal", and for host endpoints also "untracked",
        "pre_dnat" and "forward"."""
        policies = sorted((self._policies[p] for p in self._ep_policies.get(ep, ())),
                          key=_sort_key)
        kinds: dict[str, list[Policy]] = {"normal": []}
        if host:
            kinds.update(untracked=[], pre_dnat=[], forward=[])
        for pol in policies:
            if pol.untracked:
                if host:
                    kinds["untracked"].append(pol)
            elif pol.pre_dnat:
                if host:
                    kinds["pre_dnat"].append(pol)
            else:
                kinds["normal"].append(pol)
                if host and pol.apply_on_forward:
                    kinds["forward"].append(pol)
        return {kind: _tier_infos(pols, self._tier_key) for kind, pols in kinds.items()}


def _sort_key(pol: Policy) -> tuple:
    return pol.sort_key


def _tier_infos(policies: list[Policy], tier_key: Callable[[str], tuple]
                ) -> tuple[m.TierInfo, ...]:
    by_tier: dict[str, list[Policy]] = {}
    for pol in policies:
        by_tier.setdefault(pol.id.tier, []).append(pol)
    names = sorted(by_tier, key=tier_key)
    out = []
    for name in names:
        pols = by_tier[name]
        ingress = tuple(p.id for p in pols if p.ingress)
        egress = tuple(p.id for p in pols if p.egress)
        if ingress or egress:
            out.append(m.TierInfo(name, ingress, egress))
    return tuple(out)
