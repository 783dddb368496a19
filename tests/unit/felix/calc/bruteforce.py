"""The dataplane state a datastore state should give, computed from scratch by plain loops.

No label index, no reference counts, no incremental anything: every local endpoint is
evaluated against every policy and every IP set against every item. It reuses only the
*translation* helpers of calico.felix.calc (how a resource becomes labels, selectors and
resolved rules), so what it checks is the incremental machinery.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from calico.felix import messages as m
from calico.felix.calc.graph import _named_ports
from calico.felix.calc.policies import Policy
from calico.felix.calc.rules import normalise_nets, resolve_rules
from calico.felix.calc.selectors import (
    LABEL_SERVICE_ACCOUNT,
    implicit_parents,
    namespaced_labels,
    own_labels,
)

from .support import PREFIX


def _split(key: str) -> tuple[str, str, str]:
    plural, _, rest = key[len(PREFIX):].partition("/")
    namespace, _, name = rest.rpartition("/")
    return plural, namespace, name


class _Datastore:
    """A datastore state sorted into what the expectation needs, by plain loops."""

    def __init__(self, state: dict[str, Any], host: str) -> None:
        self.profiles: dict[str, Any] = {}
        self.policies: dict[m.PolicyID, Policy] = {}
        # (own labels, parents, nets, named ports) of every endpoint and network set
        self.items: list[tuple[dict, tuple, tuple, tuple]] = []
        # (id, own labels, parents, listed profiles, resource) of every local endpoint
        self.local: list[tuple[Any, dict, tuple, tuple, Any]] = []
        for key, res in state.items():
            self._add(*_split(key), res, host)

    def _add(self, plural: str, ns: str, name: str, res: Any, host: str) -> None:
        spec = res.spec
        labels = own_labels(res.metadata.labels)
        if plural == "profiles":
            self.profiles[name] = spec
        elif plural in ("networkpolicies", "globalnetworkpolicies"):
            pid = m.PolicyID(name, ns, spec.tier or "default")
            self.policies[pid] = Policy(pid, spec)
        elif plural == "workloadendpoints":
            if not spec.ipNetworks:
                return
            labels = namespaced_labels(labels, ns)
            sa = spec.serviceAccountName or ""
            if sa:
                labels[LABEL_SERVICE_ACCOUNT] = sa
            listed = tuple(spec.profiles or ())
            parents = implicit_parents(list(listed), ns, sa)
            nets = normalise_nets(spec.ipNetworks)
            self.items.append((labels, parents, nets, _named_ports(spec)))
            if spec.node == host:
                self.local.append((m.WorkloadEndpointID(ns, name), labels, parents, listed, res))
        elif plural == "hostendpoints":
            listed = tuple(spec.profiles or ())
            nets = normalise_nets(spec.expectedIPs)
            self.items.append((labels, listed, nets, _named_ports(spec)))
            if spec.node == host:
                self.local.append((m.HostEndpointID(name), labels, listed, listed, res))
        elif plural in ("networksets", "globalnetworksets"):
            if ns:
                labels = namespaced_labels(labels, ns)
            self.items.append((labels, implicit_parents([], ns), normalise_nets(spec.nets), ()))

    def effective(self, own: dict, parents: tuple) -> dict:
        out: dict[str, str] = {}
        for parent in reversed(parents):
            spec = self.profiles.get(parent)
            if spec is not None and spec.labelsToApply:
                out.update(spec.labelsToApply)
        out.update(own)
        return out

    def members(self, spec: Any) -> frozenset[str]:
        """Every member of one IP set, from every item its selector matches."""
        members: set[str] = set()
        for own, parents, nets, ports in self.items:
            if spec.selector.evaluate(self.effective(own, parents)):
                if not spec.named_port:
                    members.update(nets)
                else:
                    members.update(f"{n.split('/')[0]},{proto}:{port}"
                                   for name, proto, port in ports
                                   if name == spec.named_port and proto == spec.protocol
                                   for n in nets)
        return frozenset(members)


def expected_state(state: dict[str, Any], host: str) -> dict[str, Any]:
    ds = _Datastore(state, host)
    out_policies: dict[m.PolicyID, m.ActivePolicyUpdate] = {}
    out_profiles: dict[m.ProfileID, m.ActiveProfileUpdate] = {}
    out_endpoints: dict[Any, Any] = {}
    sets: dict[str, Any] = {}
    for ep, own, parents, listed, res in ds.local:
        labels = ds.effective(own, parents)
        matched = sorted((p for p in ds.policies.values() if p.selector.evaluate(labels)),
                         key=lambda p: p.sort_key)
        for pol in matched:
            inbound, outbound, used = resolve_rules(str(pol.id), pol.inbound, pol.outbound,
                                                    pol.id.namespace)
            sets.update(used)
            out_policies[pol.id] = m.ActivePolicyUpdate(
                pol.id, inbound, outbound, pol.untracked, pol.pre_dnat, pol.apply_on_forward)
        for name in listed:
            spec = ds.profiles.get(name)
            inbound, outbound, used = resolve_rules(
                f"profile:{name}", spec.ingress if spec is not None else None,
                spec.egress if spec is not None else None, "")
            sets.update(used)
            out_profiles[m.ProfileID(name)] = m.ActiveProfileUpdate(m.ProfileID(name),
                                                                    inbound, outbound)
        out_endpoints[ep] = _endpoint(ep, res, listed, matched)
    ipsets = {set_id: (spec.type, ds.members(spec)) for set_id, spec in sets.items()}
    return {"ipsets": ipsets, "policies": out_policies, "profiles": out_profiles,
            "endpoints": out_endpoints}


def _tiers(policies: list[Policy]) -> tuple[m.TierInfo, ...]:
    ingress = tuple(p.id for p in policies if p.ingress)
    egress = tuple(p.id for p in policies if p.egress)
    return (m.TierInfo("default", ingress, egress),) if ingress or egress else ()


def _endpoint(ep: Any, res: Any, listed: tuple, matched: list[Policy]) -> Any:
    spec = res.spec
    profile_ids = tuple(m.ProfileID(p) for p in listed)
    if isinstance(ep, m.HostEndpointID):
        ips = [str(a) for a in spec.expectedIPs or []]
        normal = [p for p in matched if not p.untracked and not p.pre_dnat]
        return m.HostEndpointUpdate(
            ep, spec.interfaceName or "",
            tuple(a for a in ips if ":" not in a), tuple(a for a in ips if ":" in a),
            profile_ids, _tiers(normal),
            _tiers([p for p in matched if p.untracked]),
            _tiers([p for p in matched if p.pre_dnat and not p.untracked]),
            _tiers([p for p in normal if p.apply_on_forward]))
    nets = normalise_nets(spec.ipNetworks)
    normal = [p for p in matched if not p.untracked and not p.pre_dnat]
    nats = sorted((str(ipaddress.ip_address(n.internalIP)),
                   str(ipaddress.ip_address(n.externalIP))) for n in spec.ipNATs or [])
    return m.WorkloadEndpointUpdate(
        ep, spec.interfaceName, spec.mac or "",
        tuple(n for n in nets if ":" not in n), tuple(n for n in nets if ":" in n),
        profile_ids, _tiers(normal),
        ipv4_nat=tuple(p for p in nats if ":" not in p[0]),
        ipv6_nat=tuple(p for p in nats if ":" in p[0]),
        orchestrator=spec.orchestrator or "")


def actual_subset(state: dict[str, Any]) -> dict[str, Any]:
    """The parts of Dataplane.state() that expected_state computes."""
    return {k: state[k] for k in ("ipsets", "policies", "profiles", "endpoints")}
