"""What a node exports and programs, per address family: its pools (exported or with
`disableBGPExport`), its affine blocks, and the communities `prefixAdvertisements` attach. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .model import BGPInputs, spec_of


def pools_of(inp: BGPInputs, version: int) -> tuple[list[str], list[str]]:
    """(exported pool CIDRs, pool CIDRs with disableBGPExport) of one family."""
    exported, hidden = [], []
    for pool in inp.pools:
        spec = spec_of(pool)
        try:
            net = ipaddress.ip_network(spec.get("cidr", ""), strict=False)
        except ValueError:
            continue
        if net.version != version:
            continue
        (hidden if spec.get("disableBGPExport") else exported).append(str(net))
    return sorted(exported), sorted(hidden)


def blocks_of(inp: BGPInputs, version: int) -> list[str]:
    out = []
    for cidr in inp.blocks:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version == version:
            out.append(str(net))
    return sorted(out)


def communities(inp: BGPInputs, version: int) -> list[tuple[str, list[str]]]:
    """(cidr, [BIRD community-add statements]) from BGPConfiguration prefixAdvertisements."""
    spec = spec_of(inp.configs.get("default"))
    named = {c.get("name"): c.get("value") for c in spec.get("communities") or []}
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
