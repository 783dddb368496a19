"""What a node exports and programs, per address family: its pools (exported or with
`disableBGPExport`, and how IP-in-IP reaches them), its affine blocks, and the communities
`prefixAdvertisements` attach (from BGPConfiguration `node.<name>` when it has them, else
`default`). Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Any

from .model import BGPInputs, node_iface, spec_of

IPIP_DEVICE = "tunl0"  # Calico's IP-in-IP tunnel device


def _pools(inp: BGPInputs, version: int) -> Iterator[tuple[dict[str, Any], str]]:
    """(spec, CIDR) of each pool of one family; a pool whose CIDR does not parse is skipped."""
    for pool in inp.pools:
        spec = spec_of(pool)
        try:
            net = ipaddress.ip_network(spec.get("cidr", ""), strict=False)
        except ValueError:
            continue
        if net.version == version:
            yield spec, str(net)


def pools_of(inp: BGPInputs, version: int) -> tuple[list[str], list[str]]:
    """(exported pool CIDRs, pool CIDRs with disableBGPExport) of one family."""
    exported, hidden = [], []
    for spec, cidr in _pools(inp, version):
        (hidden if spec.get("disableBGPExport") else exported).append(cidr)
    return sorted(exported), sorted(hidden)


def vxlan_pools_of(inp: BGPInputs, version: int) -> list[str]:
    """Pool CIDRs of one family with vxlanMode Always or CrossSubnet: Felix routes those, so
    BIRD neither learns its routes in them from the kernel nor programs BGP routes in them
    (Calico's calico_kernel_programming); our blocks in them are still advertised."""
    return sorted(cidr for spec, cidr in _pools(inp, version)
                  if spec.get("vxlanMode") in ("Always", "CrossSubnet"))


def blocks_of(inp: BGPInputs, version: int) -> list[str]:
    out = []
    for cidr in inp.blocks:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version == version:
            out.append(str(net))
    return sorted(out)


def communities(inp: BGPInputs, version: int) -> list[tuple[str, list[str]]]:
    """(cidr, [BIRD community-add statements]) from BGPConfiguration prefixAdvertisements:
    the node's own configuration's when it has any, else the default's (Calico's rule);
    community names resolve in the same configuration, then in the default one."""
    default = spec_of(inp.configs.get("default"))
    node = spec_of(inp.configs.get(f"node.{inp.hostname}"))
    spec = node if node.get("prefixAdvertisements") else default
    named = {c.get("name"): c.get("value") for c in default.get("communities") or []}
    named.update({c.get("name"): c.get("value") for c in spec.get("communities") or []})
    out = []
    for adv in spec.get("prefixAdvertisements") or []:
        try:
            net = ipaddress.ip_network(adv.get("cidr", ""), strict=False)
        except ValueError:
            continue
        if net.version != version:
            continue
        stmts = []
        for comm in adv.get("communities") or []:
            value = named.get(comm, comm)
            parts = str(value).split(":")
            if len(parts) == 2:
                stmts.append(f"bgp_community.add(({parts[0]}, {parts[1]}));")
            elif len(parts) == 3:
                stmts.append(f"bgp_large_community.add(({parts[0]}, {parts[1]}, {parts[2]}));")
        out.append((str(net), stmts))
    return out


def prefix_set(cidrs: Iterable[str], plus: bool = True) -> str:
    return "[ " + ", ".join(f"{c}{'+' if plus else ''}" for c in cidrs) + " ]"


def ipip_statements(inp: BGPInputs) -> list[str]:
    """Kernel-export statements that send routes to IP-in-IP pools through the tunnel, as
    Calico's BIRD does: `via <next hop> dev tunl0 onlink`; with `ipipMode: CrossSubnet` only
    when the next hop is outside this node's subnet. IPv4 only (Calico's IP-in-IP is)."""
    me = inp.nodes.get(inp.hostname) or {}
    subnet = node_iface(me, 4)
    tunnel = f'ifname = "{IPIP_DEVICE}"; onlink = true; gw = bgp_next_hop;'
    out = []
    for pool in sorted(inp.pools, key=lambda p: str(spec_of(p).get("cidr"))):
        spec = spec_of(pool)
        mode = spec.get("ipipMode") or "Never"
        try:
            net = ipaddress.ip_network(spec.get("cidr", ""), strict=False)
        except ValueError:
            continue
        if net.version != 4 or mode not in ("Always", "CrossSubnet"):
            continue
        if mode == "CrossSubnet" and subnet is not None:
            out.append(f"if source = RTS_BGP && net ~ {prefix_set([str(net)])} && "
                       f"bgp_next_hop !~ {subnet.network} then {{ {tunnel} }}")
        else:
            out.append(f"if source = RTS_BGP && net ~ {prefix_set([str(net)])} then "
                       f"{{ {tunnel} }}")
    return out


def service_cidrs(inp: BGPInputs, version: int) -> list[str]:
    """The default BGPConfiguration's serviceClusterIPs, serviceExternalIPs and
    serviceLoadBalancerIPs of one family: advertised from every node, never programmed into
    its kernel (Calico's treatment of the CIDRs; with no Kubernetes here there are no
    per-service /32s to add)."""
    spec = spec_of(inp.configs.get("default"))
    out = set()
    fields = ["serviceClusterIPs", "serviceExternalIPs"]
    if spec.get("serviceLoadBalancerAggregation") != "Disabled":
        # Disabled: Calico advertises a /32 per LoadBalancer Service instead of the CIDR.
        fields.append("serviceLoadBalancerIPs")
    for field_name in fields:
        for block in spec.get(field_name) or []:
            try:
                net = ipaddress.ip_network((block or {}).get("cidr") or "", strict=False)
            except ValueError:
                continue
            if net.version == version:
                out.add(net)
    return [str(n) for n in sorted(out)]


def direct_interfaces(inp: BGPInputs) -> str:
    """The `protocol direct` interface patterns: BGPConfiguration `ignoredInterfaces` (the
    node's own configuration first) and Calico's fixed exclusions left out, every other
    interface in."""
    ignored = node_ignored = spec_of(inp.configs.get(f"node.{inp.hostname}")).get(
        "ignoredInterfaces")
    if not node_ignored:
        ignored = spec_of(inp.configs.get("default")).get("ignoredInterfaces") or []
    return ", ".join([*(f'-"{i}"' for i in ignored), '-"cali*"', '-"kube-ipvs*"', '"*"'])
