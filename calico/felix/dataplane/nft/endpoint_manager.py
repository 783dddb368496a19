"""EndpointManager: config and endpoints in, skeleton + endpoint chains + map elements out.

Pools and config decide whether VXLAN is on (as the VXLAN manager decides it); while it is,
the skeleton drops VXLAN sent by workloads (endpoints.static_chains).

Workload endpoint on interface I: chains `fw-I` (from the workload: anti-spoofing, egress
tiers, outbound profiles) and `tw-I` (to it: ingress tiers, inbound profiles), and elements
`"I" : goto fw-I` in @wl-from and `"I" : goto tw-I` in @wl-to.

Host endpoint on interface I (named, or resolved from expected IPs through the addresses fed
to `on_interface_addrs`): `fh-I`/`th-I` (ingress/egress: tiers then profiles, default deny),
and only where it has such policies `fhf-I`/`thf-I` (applyOnForward), `fhu-I`/`thu-I`
(doNotTrack) and `fhp-I` (preDNAT), each with its element in the matching `hep-*` map.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from calico.felix import messages as m
from calico.felix.dataplane.nft import endpoints as ep
from calico.felix.dataplane.nft import verdict_cache as vc
from calico.felix.dataplane.nft.config import NftConfig
from calico.felix.dataplane.nft.names import (
    endpoint_chain_name,
    policy_chain_name,
    profile_chain_name,
)
from calico.felix.dataplane.nft.rules import Marks
from calico.felix.dataplane.nft.table import Chain, Table


def _tiers(tiers: Iterable[m.TierInfo], inbound: bool) -> list[ep.TierChains]:
    return [ep.TierChains(t.name, tuple(policy_chain_name(p, inbound) for p in
                                        (t.ingress_policies if inbound else t.egress_policies)))
            for t in tiers]


def _profiles(ids: Iterable[m.ProfileID], inbound: bool) -> list[str]:
    return [profile_chain_name(p, inbound) for p in ids]


class EndpointManager:
    """Config and endpoint messages in; the static skeleton, each endpoint's chains and its
    dispatch-map elements out (replacing exactly what that endpoint wrote before)."""

    def __init__(self, table: Table, marks: Marks, config: NftConfig | None = None) -> None:
        self._table, self._marks = table, marks
        self.config = config or NftConfig()
        self._workloads: dict[m.WorkloadEndpointID, m.WorkloadEndpointUpdate] = {}
        self._hosts: dict[m.HostEndpointID, m.HostEndpointUpdate] = {}
        self._iface_addrs: dict[str, frozenset[str]] = {}
        self._vxlan_pools: dict[str, bool] = {}  # pool -> has a vxlanMode (IPv4, enabled)
        self._by_iface: dict[str, set[m.WorkloadEndpointID]] = {}  # workloads per interface
        # What we wrote per endpoint: map name -> {key: verdict}, and chain names.
        self._written: dict[object, tuple[dict[str, str], set[str]]] = {}
        self._hep_maps: frozenset[str] = frozenset()  # host-endpoint maps with entries
        self._cache_generation: int | None = None  # the verdict cache's (None: off)
        for name in ep.MAPS:
            table.put_set(name, ep.IFACE_MAP, {})
        table.put_set(vc.GEN_SET, vc.GEN_SPEC, [])
        table.put_set(vc.STORE_MAP, vc.STORE_SPEC, {})
        self._put_static()

    # ---- messages -----------------------------------------------------------------------

    def on_message(self, msg: m.Message) -> None:
        if isinstance(msg, m.ConfigUpdate):
            self.config = NftConfig.from_mapping(msg.config)
            self._put_static()
        elif isinstance(msg, m.WorkloadEndpointUpdate):
            old = self._workloads.get(msg.id)
            if old is not None and old.interface != msg.interface:
                self._remove_workload(msg.id)
            self._workloads[msg.id] = msg
            self._by_iface.setdefault(msg.interface, set()).add(msg.id)
            self._write(msg.id, *self._render_workload(msg))
        elif isinstance(msg, m.WorkloadEndpointRemove):
            self._remove_workload(msg.id)
        elif isinstance(msg, m.HostEndpointUpdate):
            self._hosts[msg.id] = msg
            self._render_hosts()
        elif isinstance(msg, m.HostEndpointRemove):
            self._hosts.pop(msg.id, None)
            self._write(msg.id, {}, {})  # its chains and map entries go
            self._render_hosts()
        elif isinstance(msg, m.IPAMPoolUpdate | m.IPAMPoolRemove):
            before = self._vxlan_on()
            if isinstance(msg, m.IPAMPoolUpdate):
                self._vxlan_pools[msg.id] = (msg.vxlan_mode in ("Always", "CrossSubnet")
                                             and not msg.disabled and ":" not in msg.cidr)
            else:
                self._vxlan_pools.pop(msg.id, None)
            if self._vxlan_on() != before:
                self._put_static()

    def complete_deferred_work(self) -> None:
        """Nothing deferred: endpoints are rendered as their messages arrive."""

    def _remove_workload(self, ep_id: m.WorkloadEndpointID) -> None:
        """Drop what the endpoint wrote; another endpoint on the same interface (its successor,
        e.g. an OpenStack port re-created under a new name, whose update can arrive first)
        shares the chain and map-key names, so it is written again."""
        old = self._workloads.pop(ep_id, None)
        self._write(ep_id, {}, {})
        if old is None:
            return
        sharing = self._by_iface.get(old.interface, set())
        sharing.discard(ep_id)
        if not sharing:
            self._by_iface.pop(old.interface, None)
        for other in sorted(sharing)[-1:]:
            self._written.pop(other, None)
            self._write(other, *self._render_workload(self._workloads[other]))

    def on_interface_addrs(self, interface: str, addrs: Iterable[str] | None) -> None:
        """A host interface's addresses (None: interface gone), to resolve host endpoints
        that name expected IPs instead of an interface."""
        if addrs is None:
            self._iface_addrs.pop(interface, None)
        else:
            self._iface_addrs[interface] = frozenset(
                str(ipaddress.ip_interface(a).ip) for a in addrs)
        self._render_hosts()

    # ---- rendering ----------------------------------------------------------------------

    def _vxlan_on(self) -> bool:
        if self.config.vxlan_enabled is not None:
            return self.config.vxlan_enabled
        return any(self._vxlan_pools.values())

    @property
    def cache_generation(self) -> int | None:
        return self._cache_generation

    def set_cache_generation(self, generation: int | None) -> None:
        """The verdict cache's generation for the next transaction (verdict_cache.py): its
        elements, and its rules when it turns on or off."""
        was_on = self._cache_generation is not None
        self._cache_generation = generation
        gen_elements, store_elements = vc.elements(generation)
        self._table.put_set(vc.GEN_SET, vc.GEN_SPEC, gen_elements)
        self._table.put_set(vc.STORE_MAP, vc.STORE_SPEC, store_elements)
        if was_on != (generation is not None):
            self._put_static()

    def _put_static(self) -> None:
        chains = ep.static_chains(self.config, self._marks, self._vxlan_on(), self._hep_maps,
                                  self._cache_generation is not None)
        for name, chain in chains.items():
            self._table.put_chain(name, chain)
        for name in ep.OPTIONAL_CHAINS:
            if name not in chains:
                self._table.remove_chain(name)
        self._table.put_set(ep.FAILSAFE_IN, ep.PROTO_PORT,
                            ep.failsafe_elements(self.config.failsafe_inbound))
        self._table.put_set(ep.FAILSAFE_OUT, ep.PROTO_PORT,
                            ep.failsafe_elements(self.config.failsafe_outbound))

    def _render_workload(self, wep: m.WorkloadEndpointUpdate):
        marks, iface = self._marks, wep.interface
        fw, tw = endpoint_chain_name("fw", iface), endpoint_chain_name("tw", iface)
        spoof = ep.anti_spoof_rules([*wep.ipv4_nets, *wep.ipv6_nets,
                                     *wep.allowed_spoofed_source_prefixes], marks)
        chains = {
            fw: ep.endpoint_chain(_tiers(wep.tiers, False), _profiles(wep.profile_ids, False),
                                  marks, pre=spoof),
            tw: ep.endpoint_chain(_tiers(wep.tiers, True), _profiles(wep.profile_ids, True),
                                  marks),
        }
        key = f'"{iface}"'
        return {"wl-from": {key: f"goto {fw}"}, "wl-to": {key: f"goto {tw}"}}, chains

    def _render_hosts(self) -> None:
        claimed: set[str] = set()
        for hep_id in sorted(self._hosts):
            hep = self._hosts[hep_id]
            ifaces = [hep.interface] if hep.interface else self._resolve(hep)
            ifaces = [i for i in ifaces if i not in claimed and i != "*"]
            claimed.update(ifaces)
            maps: dict[str, dict[str, str]] = {}
            chains: dict[str, Chain] = {}
            for iface in ifaces:
                self._render_host_iface(hep, iface, maps, chains)
            self._write(hep_id, maps, chains)
        used = frozenset(name for owner, (maps, _) in self._written.items()
                         if isinstance(owner, m.HostEndpointID)
                         for name, elems in maps.items() if elems)
        if used != self._hep_maps:
            self._hep_maps = used
            self._put_static()  # look up only the maps with entries (endpoints.py)

    def _resolve(self, hep: m.HostEndpointUpdate) -> list[str]:
        want = {str(ipaddress.ip_address(a)) for a in
                (*hep.expected_ipv4_addrs, *hep.expected_ipv6_addrs)}
        return sorted(i for i, addrs in self._iface_addrs.items() if addrs & want)

    def _render_host_iface(self, hep, iface, maps, chains) -> None:
        marks, key = self._marks, f'"{iface}"'
        normal = (("fh", "hep-from", True), ("th", "hep-to", False))
        for kind, map_name, inbound in normal:
            name = endpoint_chain_name(kind, iface)
            chains[name] = ep.endpoint_chain(_tiers(hep.tiers, inbound),
                                             _profiles(hep.profile_ids, inbound), marks)
            maps.setdefault(map_name, {})[key] = f"jump {name}"
        extra = (("fhf", "hep-fwd-from", True, hep.forward_tiers, True),
                 ("thf", "hep-fwd-to", False, hep.forward_tiers, True),
                 ("fhu", "hep-untracked-from", True, hep.untracked_tiers, False),
                 ("thu", "hep-untracked-to", False, hep.untracked_tiers, False),
                 ("fhp", "hep-prednat-from", True, hep.pre_dnat_tiers, False))
        for kind, map_name, inbound, tiers, tier_drop in extra:
            tc = [t for t in _tiers(tiers, inbound) if t.chains]
            if not tc:
                continue
            name = endpoint_chain_name(kind, iface)
            chains[name] = ep.endpoint_chain(tc, [], marks, tier_drop=tier_drop,
                                             end_drop=False)
            maps.setdefault(map_name, {})[key] = f"jump {name}"

    def _write(self, owner: object, maps: dict[str, dict[str, str]],
               chains: dict[str, Chain]) -> None:
        """Replace what `owner` (an endpoint id) contributed to maps and chains."""
        old_maps, old_chains = self._written.pop(owner, ({}, set()))
        for name, chain in chains.items():
            self._table.put_chain(name, chain)
        for name in old_chains - set(chains):
            self._table.remove_chain(name)
        for map_name, old in old_maps.items():
            gone = [k for k in old if k not in maps.get(map_name, {})]
            if gone:
                self._table.update_elements(map_name, removed=gone)
        for map_name, elems in maps.items():
            if old_maps.get(map_name) != elems:
                self._table.update_elements(map_name, added=elems)
        if maps or chains:
            self._written[owner] = (maps, set(chains))
