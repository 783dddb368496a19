"""The dataplane state a datastore state should give, computed from scratch by plain loops.

No label index, no reference counts, no incremental anything: every local endpoint is
evaluated against every policy and every IP set against every item. It reuses only the
*translation* helpers of calico.felix.calc (how a resource becomes labels, selectors and
resolved rules), so what it checks is the incremental machinery.
"""

from __future__ import annotations

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


def expected_state(state: dict[str, Any], host: str) -> dict[str, Any]:
    profiles: dict[str, Any] = {}
    policies: dict[m.PolicyID, Policy] = {}
    items: list[tuple[dict, tuple, tuple, tuple]] = []  # (own labels, parents, nets, ports)
    local: list[tuple[Any, dict, tuple, tuple, Any]] = []  # (id, labels, parents, profiles, res)
    for key, res in state.items():
        plural, ns, name = _split(key)
        spec = res.spec
        labels = own_labels(res.metadata.labels)
        if plural == "profiles":
            profiles[name] = spec
        elif plural in ("networkpolicies", "globalnetworkpolicies"):
            pid = m.PolicyID(name, ns, spec.tier or "default")
            policies[pid] = Policy(pid, spec)
        elif plural == "workloadendpoints":
            if not spec.ipNetworks:
                continue
            labels = namespaced_labels(labels, ns)
            sa = spec.serviceAccountName or ""
            if sa:
                labels[LABEL_SERVICE_ACCOUNT] = sa
            listed = tuple(spec.profiles or ())
            parents = implicit_parents(list(listed), ns, sa)
            nets = normalise_nets(spec.ipNetworks)
            items.append((labels, parents, nets, _named_ports(spec)))
            if spec.node == host:
                local.append((m.WorkloadEndpointID(ns, name), labels, parents, listed, res))
        elif plural == "hostendpoints":
            listed = tuple(spec.profiles or ())
            nets = normalise_nets(spec.expectedIPs)
            items.append((labels, listed, nets, _named_ports(spec)))
            if spec.node == host:
                local.append((m.HostEndpointID(name), labels, listed, listed, res))
        elif plural in ("networksets", "globalnetworksets"):
            if ns:
                labels = namespaced_labels(labels, ns)
            items.append((labels, implicit_parents([], ns), normalise_nets(spec.nets), ()))

    def effective(own: dict, parents: tuple) -> dict:
        out: dict[str, str] = {}
        for parent in reversed(parents):
            spec = profiles.get(parent)
            if spec is not None and spec.labelsToApply:
                out.update(spec.labelsToApply)
        out.update(own)
        return out

    out_policies: dict[m.PolicyID, m.ActivePolicyUpdate] = {}
    out_profiles: dict[m.ProfileID, m.ActiveProfileUpdate] = {}
    out_endpoints: dict[Any, Any] = {}
    sets: dict[str, Any] = {}
    for ep, own, parents, listed, res in local:
        labels = effective(own, parents)
        matched = sorted((p for p in policies.values() if p.selector.evaluate(labels)),
                         key=lambda p: p.sort_key)
        for pol in matched:
            inbound, outbound, used = resolve_rules(str(pol.id), pol.inbound, pol.outbound,
                                                    pol.id.namespace)
            sets.update(used)
            out_policies[pol.id] = m.ActivePolicyUpdate(
                pol.id, inbound, outbound, pol.untracked, pol.pre_dnat, pol.apply_on_forward)
        for name in listed:
            spec = profiles.get(name)
            inbound, outbound, used = resolve_rules(
                f"profile:{name}", spec.ingress if spec is not None else None,
                spec.egress if spec is not None else None, "")
            sets.update(used)
            out_profiles[m.ProfileID(name)] = m.ActiveProfileUpdate(m.ProfileID(name),
                                                                    inbound, outbound)
        out_endpoints[ep] = _endpoint(ep, res, listed, matched)

    ipsets = {}
    for set_id, spec in sets.items():
        members: set[str] = set()
        for own, parents, nets, ports in items:
            if spec.selector.evaluate(effective(own, parents)):
                if not spec.named_port:
                    members.update(nets)
                else:
                    members.update(f"{n.split('/')[0]},{proto}:{port}"
                                   for name, proto, port in ports
                                   if name == spec.named_port and proto == spec.protocol
                                   for n in nets)
        ipsets[set_id] = (spec.type, frozenset(members))
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
    return m.WorkloadEndpointUpdate(
        ep, spec.interfaceName, spec.mac or "",
        tuple(n for n in nets if ":" not in n), tuple(n for n in nets if ":" in n),
        profile_ids, _tiers(normal))


def actual_subset(state: dict[str, Any]) -> dict[str, Any]:
    """The parts of Dataplane.state() that expected_state computes."""
    return {k: state[k] for k in ("ipsets", "policies", "profiles", "endpoints")}
