"""DNATManager: floating IPs (workload endpoints' ipNATs) and OpenStack's metadata redirect.

In: ConfigUpdate (FloatingIPs, MetadataAddr, MetadataPort and the OpenStack evidence, read
through NftConfig), WorkloadEndpointUpdate/Remove (their ipNATs, floating.active_nats). Out,
into the shared Table:

  map fip4-dnat  ipv4_addr : ipv4_addr              external -> internal
  map fip4-snat  ipv4_addr . ipv4_addr : ipv4_addr  internal . internal -> external
  (fip6-dnat, fip6-snat likewise)
  nat-prerouting  nat/prerouting/-100  dnat to daddr map @fip<v>-dnat (traffic from outside
                                       the host and from workloads); with OpenStack special
                                       cases: tcp to 169.254.169.254:80 -> MetadataAddr:Port
  nat-output      nat/output/-100      dnat to daddr map @fip<v>-dnat (local processes)
  fip-postrouting nat/postrouting/95   snat to saddr . daddr map @fip<v>-snat

As Calico's Felix (its fip-dnat / fip-snat chains, one rule per mapping): traffic to an
external address is DNATed to the internal one wherever it comes from, and the only SNAT is
the hairpin — a workload reaching its own floating IP would otherwise get a packet from
itself to itself, so its source becomes the floating IP. Everything else about the
translated traffic is ordinary: it is forwarded to the workload's interface and meets the
endpoint's ingress policy with its internal address as destination. Maps instead of a rule
per mapping: one lookup per packet, and a mapping change is an element change, not a chain
rewrite. The hairpin SNAT runs before natOutgoing's masquerade (priority 95 < 100); a
connection NATed by one nat chain skips the others at that hook.

The metadata redirect matches any packet to 169.254.169.254:80 crossing prerouting, as
Calico's; the filter side (allowing the redirected traffic to reach the host even with
DefaultEndpointToHostAction Drop) is in endpoints.openstack_to_host. A loopback MetadataAddr
(Calico's default 127.0.0.1) also needs `route_localnet` on the workload interfaces, which the
host network's SysctlManager sets.
"""

from __future__ import annotations

from calico.felix import messages as m
from calico.felix.dataplane.floating import active_nats, nat_maps
from calico.felix.dataplane.nft.config import NftConfig
from calico.felix.dataplane.nft.rules import ADDR_TYPE, net_family
from calico.felix.dataplane.nft.table import BaseHook, Chain, SetSpec, Table

METADATA_IP, METADATA_PORT = "169.254.169.254", 80
L3 = {4: "ip", 6: "ip6"}
DNAT_SPEC = {f: SetSpec((ADDR_TYPE[f],), map_to=ADDR_TYPE[f]) for f in (4, 6)}
SNAT_SPEC = {f: SetSpec((ADDR_TYPE[f], ADDR_TYPE[f]), map_to=ADDR_TYPE[f]) for f in (4, 6)}


def dnat_rules() -> list[str]:
    return [f"dnat {L3[f]} to {L3[f]} daddr map @fip{f}-dnat" for f in (4, 6)]


def snat_rules() -> list[str]:
    return [f"snat {L3[f]} to {L3[f]} saddr . {L3[f]} daddr map @fip{f}-snat" for f in (4, 6)]


def metadata_rules(cfg: NftConfig) -> list[str]:
    """The 169.254.169.254:80 redirect (OpenStack special cases with an IPv4 MetadataAddr)."""
    if not (cfg.openstack and cfg.metadata_addr):
        return []
    target = cfg.metadata_addr + (f":{cfg.metadata_port}" if cfg.metadata_port else "")
    return [f"ip daddr {METADATA_IP} tcp dport {METADATA_PORT} dnat ip to {target}"]


class DNATManager:
    """Config and workload endpoints in; the floating-IP maps, the NAT base chains and the
    metadata redirect out. Deferred: the maps are recomputed once per apply."""

    def __init__(self, table: Table, config: NftConfig | None = None) -> None:
        self._table = table
        self.config = config or NftConfig()
        self._endpoints: dict[m.WorkloadEndpointID, m.WorkloadEndpointUpdate] = {}
        self._dirty = True
        self._put_maps({}, {})
        self._put_chains()

    def on_message(self, msg: m.Message) -> None:
        if isinstance(msg, m.ConfigUpdate):
            self.config = NftConfig.from_mapping(msg.config)
            self._put_chains()
            self._dirty = True  # FloatingIPs may have changed
        elif isinstance(msg, m.WorkloadEndpointUpdate | m.WorkloadEndpointRemove):
            old = self._endpoints.pop(msg.id, None)
            if isinstance(msg, m.WorkloadEndpointUpdate) and (msg.ipv4_nat or msg.ipv6_nat):
                self._endpoints[msg.id] = msg  # only endpoints with ipNATs are kept
            self._dirty |= _nat_fields(old) != _nat_fields(self._endpoints.get(msg.id))

    def complete_deferred_work(self) -> None:
        """Recompute the DNAT and SNAT maps from every endpoint's active NATs."""
        if not self._dirty:
            return
        self._dirty = False
        enabled = self.config.floating_ips
        pairs = [p for ep in self._endpoints.values() for p in active_nats(ep, enabled)]
        self._put_maps(*nat_maps(pairs))

    def _put_maps(self, dnat: dict[str, str], snat: dict[str, str]) -> None:
        for fam in (4, 6):
            self._table.put_set(f"fip{fam}-dnat", DNAT_SPEC[fam],
                                {e: i for e, i in dnat.items() if net_family(e) == fam})
            self._table.put_set(f"fip{fam}-snat", SNAT_SPEC[fam],
                                {f"{i} . {i}": e for i, e in snat.items()
                                 if net_family(i) == fam})

    def _put_chains(self) -> None:
        self._table.put_chain("nat-prerouting", Chain(
            (*dnat_rules(), *metadata_rules(self.config)), BaseHook("nat", "prerouting", -100)))
        self._table.put_chain("nat-output", Chain(tuple(dnat_rules()),
                                                  BaseHook("nat", "output", -100)))
        self._table.put_chain("fip-postrouting", Chain(tuple(snat_rules()),
                                                       BaseHook("nat", "postrouting", 95)))


def _nat_fields(ep: m.WorkloadEndpointUpdate | None) -> tuple:
    return () if ep is None else (ep.ipv4_nat, ep.ipv6_nat, ep.orchestrator)
