"""Pure rendering of the dispatch skeleton (base chains, verdict maps) and endpoint chains.

Layout of table `inet calico` (one table: inet-family nat and raw-priority chains need
kernel >= 5.2, so no separate `ip calico-nat`/raw tables are needed):

  raw-prerouting  filter/prerouting/-300  failsafe-in → return; iifname vmap @hep-untracked-from
  raw-output      filter/output/-300      failsafe-out → return; oifname vmap @hep-untracked-to
  prednat         filter/prerouting/-110  failsafe-in → return; iifname vmap @hep-prednat-from
                  (these three exist only while their map has entries: without untracked or
                  pre-DNAT host-endpoint policy they would clear marks and return, and each
                  base chain costs every packet crossing its hook: benchmarks/datapath.py)
  filter-input    filter/input/0          ct; iifname "<prefix>*" goto wl-to-host (DHCP, NDP,
                                          OpenStack's metadata and DNS, egress policy,
                                          DefaultEndpointToHostAction); failsafe-in
                                          accept; NDP accept; iifname vmap @hep-from
  filter-forward  filter/forward/0        ct; verdict-cache hit → cache-hit;
                                          iifname "<prefix>*" jump wl-from-dispatch;
                                          oifname "<prefix>*" jump wl-to-dispatch;
                                          iifname vmap @hep-fwd-from; oifname vmap @hep-fwd-to;
                                          store the generation (verdict_cache.py)
  filter-output   filter/output/0         ct; oifname "<prefix>*" accept (host → local
                                          workloads is always allowed, as in Calico);
                                          failsafe-out accept; NDP accept;
                                          oifname vmap @hep-to
  nat-prerouting  nat/prerouting/-100     floating-IP DNAT, metadata redirect (dnat.DNATManager)
  nat-output      nat/output/-100         floating-IP DNAT for local processes (dnat.py)
  fip-postrouting nat/postrouting/95      floating-IP hairpin SNAT (dnat.py)
  nat-postrouting nat/postrouting/100     natOutgoing (managers.NatManager)

A `hep-*` verdict-map rule is in its base chain only while its map has entries (a host
endpoint with that kind of policy): with no host endpoints, as on most hosts, a packet pays
none of the six interface-name lookups (`benchmarks/datapath.py`, new flows, per
CPU-second: 0.59-0.61 of conntrack-only before, 0.62-0.66 after). The rule comes back in
the transaction that adds the first entry, so there is no moment where an entry exists and
is not looked up.

Dispatch is a verdict-map lookup per packet (constant time); `wl-*-dispatch` end in `drop`,
so an interface with a workload prefix but no endpoint is dropped. Their map entries are
`goto fw-<if>` so the endpoint chain's `return` goes back to the base chain.

Endpoint chains, and marks (rules.Marks): a policy chain sets ACCEPT and returns on Allow,
drops on Deny, sets PASS and returns on Pass, logs and continues on Log. The endpoint chain
clears the marks, (from a workload) checks the source address, then per tier:
`jump <policy>` (skipped once PASS is set), `return` if ACCEPT is set, and `drop` at the end
of a tier unless PASS is set; then the profiles likewise, then `drop`. The base chain only
reaches its end (policy accept) for packets every endpoint chain on their path returned.
Untracked and pre-DNAT chains have no default drop (unmatched traffic continues to normal
policy); an untracked Allow also does `notrack`, and the filter chains accept an untracked
packet carrying ACCEPT straight away. Established/related are accepted and invalid dropped
first in every filter base chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from calico.felix.dataplane.nft import verdict_cache as vc
from calico.felix.dataplane.nft.config import NftConfig
from calico.felix.dataplane.nft.rules import Marks, canonical_net, net_family
from calico.felix.dataplane.nft.table import BaseHook, Chain, SetSpec

IFACE_MAP = SetSpec(("ifname",), map_to="verdict")
PROTO_PORT = SetSpec(("inet_proto", "inet_service"))
MAPS = ("wl-from", "wl-to", "hep-from", "hep-to", "hep-fwd-from", "hep-fwd-to",
        "hep-untracked-from", "hep-untracked-to", "hep-prednat-from")
FAILSAFE_IN, FAILSAFE_OUT = "failsafe-in", "failsafe-out"
# Base chains that exist only while their host-endpoint map has entries, and the map.
OPTIONAL_BASE = {"raw-prerouting": "hep-untracked-from", "raw-output": "hep-untracked-to",
                 "prednat": "hep-prednat-from"}
OPTIONAL_CHAINS = (*OPTIONAL_BASE, vc.CHAIN)
# MLD, router solicitation, neighbour solicitation/advertisement: never blocked by policy.
NDP = ("icmpv6 type 130-133 accept", "icmpv6 type 135-136 accept")


@dataclass(frozen=True, slots=True)
class TierChains:
    """One tier's policy chains for one direction, in order."""

    name: str
    chains: tuple[str, ...]


def _ct(marks: Marks, untracked: bool, hit: tuple[str, ...] = ()) -> list[str]:
    """The head of a filter base chain; `hit`: the verdict cache's rule (forward only)."""
    return [*((f"ct state untracked {marks.is_set(marks.accept)} accept",) if untracked else ()),
            "ct state established,related accept", "ct state invalid drop", *hit,
            marks.clear(marks.accept | marks.pass_ | marks.scratch | marks.no_cache)]


def _failsafe(cfg_ports, direction: str, verdict: str) -> list[str]:
    setname = FAILSAFE_IN if direction == "in" else FAILSAFE_OUT
    rules = [f"meta l4proto . th dport @{setname} {verdict}"]
    for p in cfg_ports:
        if p.net:
            fam = net_family(p.net)
            addr = "saddr" if direction == "in" else "daddr"
            rules.append(f"{'ip' if fam == 4 else 'ip6'} {addr} {canonical_net(p.net)} "
                         f"meta l4proto {p.protocol} th dport {p.port} {verdict}")
    return rules


def failsafe_elements(cfg_ports) -> list[str]:
    return sorted({f"{p.protocol} . {p.port}" for p in cfg_ports if not p.net})


def static_chains(cfg: NftConfig, marks: Marks, vxlan: bool = False,
                  hep_maps: frozenset[str] | None = None,
                  verdict_cache: bool = False) -> dict[str, Chain]:
    """The skeleton. With VXLAN on (and AllowVXLANPacketsFromWorkloads false), VXLAN sent by
    a workload is dropped before its policy, as Calico does: a workload must not inject
    frames into the overlay. `hep_maps`: the host-endpoint maps that have entries (None:
    all), the only ones looked up; the raw and pre-DNAT base chains exist only while theirs
    have entries (without them they would only clear marks and `return` for failsafe ports),
    and the untracked-accept rules only while an untracked map has entries (nothing else
    sets notrack). `verdict_cache`: whether the forward path has it (verdict_cache.py)."""
    def used(map_name: str) -> bool:
        return hep_maps is None or map_name in hep_maps

    def hep(direction: str, map_name: str) -> tuple[str, ...]:
        return (f"{direction} vmap @{map_name}",) if used(map_name) else ()

    untracked = used("hep-untracked-from") or used("hep-untracked-to")
    cache = verdict_cache and not (used("hep-fwd-from") or used("hep-fwd-to"))
    hit = (vc.HIT_RULE,) if cache else ()
    store = (vc.store_rule(marks.is_clear(marks.no_cache)),) if cache else ()

    drop_vxlan = (f"meta nfproto ipv4 udp dport {cfg.vxlan_port} drop",) if (
        vxlan and not cfg.allow_vxlan_from_workloads) else ()
    wl_in = [f'iifname "{p}*"' for p in cfg.interface_prefixes]
    wl_out = [f'oifname "{p}*"' for p in cfg.interface_prefixes]
    chains = _optional_base(cfg, marks, hep, untracked)
    chains = {name: chain for name, chain in chains.items() if used(OPTIONAL_BASE[name])}
    if cache:
        chains[vc.CHAIN] = vc.hit_chain(cfg.interface_prefixes)
    return {
        **chains,
        "filter-input": Chain((*_ct(marks, untracked), *(f"{m} goto wl-to-host" for m in wl_in),
                               *_failsafe(cfg.failsafe_inbound, "in", "accept"),
                               *NDP, *hep("iifname", "hep-from")),
                              BaseHook("filter", "input", 0)),
        "filter-forward": Chain((*_ct(marks, untracked, hit),
                                 *(f"{m} jump wl-from-dispatch" for m in wl_in),
                                 *(f"{m} jump wl-to-dispatch" for m in wl_out),
                                 *hep("iifname", "hep-fwd-from"),
                                 *hep("oifname", "hep-fwd-to"), *store),
                                BaseHook("filter", "forward", 0)),
        "filter-output": Chain((*_ct(marks, untracked), *(f"{m} accept" for m in wl_out),
                                *_failsafe(cfg.failsafe_outbound, "out", "accept"),
                                *NDP, *hep("oifname", "hep-to")),
                               BaseHook("filter", "output", 0)),
        "wl-to-host": Chain((
            "meta nfproto ipv4 udp sport 68 udp dport 67 accept",  # DHCP
            "meta nfproto ipv6 udp sport 546 udp dport 547 accept",  # DHCPv6
            *NDP,
            *openstack_to_host(cfg),
            "jump wl-from-dispatch",
            cfg.endpoint_to_host_action)),
        "wl-from-dispatch": Chain((*drop_vxlan, "iifname vmap @wl-from", "drop")),
        "wl-to-dispatch": Chain(("oifname vmap @wl-to", "drop")),
    }


def _optional_base(cfg: NftConfig, marks: Marks, hep, untracked: bool) -> dict[str, Chain]:
    """The raw and pre-DNAT base chains (for untracked and pre-DNAT host-endpoint policy)."""
    untracked_ok = f"ct state untracked {marks.is_set(marks.accept)} return"
    clear = marks.clear(marks.accept | marks.pass_ | marks.scratch)
    return {
        "raw-prerouting": Chain((clear, *_failsafe(cfg.failsafe_inbound, "in", "return"),
                                 *hep("iifname", "hep-untracked-from")),
                                BaseHook("filter", "prerouting", -300)),
        "raw-output": Chain((clear, *_failsafe(cfg.failsafe_outbound, "out", "return"),
                             *hep("oifname", "hep-untracked-to")),
                            BaseHook("filter", "output", -300)),
        "prednat": Chain((*((untracked_ok,) if untracked else ()), clear,
                          *_failsafe(cfg.failsafe_inbound, "in", "return"),
                          *hep("iifname", "hep-prednat-from")),
                         BaseHook("filter", "prerouting", -110)),
    }


def openstack_to_host(cfg: NftConfig) -> list[str]:
    """Calico's OpenStack special cases, before egress policy and DefaultEndpointToHostAction:
    the metadata server (the target of the 169.254.169.254 redirect, dnat.py) and DNS to the
    host (Calico allows UDP; TCP too here, for answers too large for UDP)."""
    if not cfg.openstack:
        return []
    rules = []
    if cfg.metadata_addr:
        port = f" tcp dport {cfg.metadata_port}" if cfg.metadata_port else " meta l4proto tcp"
        rules.append(f"ip daddr {cfg.metadata_addr}{port} accept")
    return [*rules, "udp dport 53 accept", "tcp dport 53 accept"]


def anti_spoof_rules(nets: list[str], marks: Marks) -> list[str]:
    """Drop packets whose source is none of `nets` (per IP version)."""
    rules = []
    for fam, l3 in ((4, "ip"), (6, "ip6")):
        allowed = sorted({canonical_net(n) for n in nets if net_family(n) == fam})
        if not allowed:
            rules.append(f"meta nfproto ipv{fam} drop")
        elif len(allowed) == 1:
            rules.append(f"{l3} saddr != {allowed[0]} drop")
        else:
            rules += [f"{l3} saddr {n} {marks.set(marks.scratch)}" for n in allowed]
            rules.append(f"meta nfproto ipv{fam} {marks.is_clear(marks.scratch)} drop")
    return rules


def endpoint_chain(tiers: list[TierChains], profiles: list[str], marks: Marks, *,
                   pre: list[str] = (), tier_drop: bool = True, end_drop: bool = True) -> Chain:
    rules = [marks.clear(marks.accept | marks.pass_ | marks.scratch), *pre]
    accepted = f"{marks.is_set(marks.accept)} return"
    first = True
    for tier in tiers:
        if not tier.chains:
            continue
        if not first:
            rules.append(marks.clear(marks.pass_))
        first = False
        for i, chain in enumerate(tier.chains):
            rules.append(f"jump {chain}" if i == 0 else
                         f"{marks.is_clear(marks.pass_)} jump {chain}")
            rules.append(accepted)
        if tier_drop:
            rules.append(f"{marks.is_clear(marks.pass_)} drop")
    for chain in profiles:
        rules += [f"jump {chain}", accepted]
    if end_drop:
        rules.append("drop")
    return Chain(tuple(rules))
