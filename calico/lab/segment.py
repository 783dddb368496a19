"""The lab's L2 segment (see lab.py's topology): the fabric namespace's bridges, one per
subnet; with more than one subnet a router namespace between them; each host attached by a veth
to its subnet's bridge, forwarding on, a default route via the subnet's .1; and the optional
ToR's namespace on br0. Everything it creates is recorded in the lab's state as it goes, so
`Lab.down` removes it even after a failure half-way."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import tor as tor_mod
from .proc import netns_add, sh, sysctls

if TYPE_CHECKING:
    from .lab import Lab

FABRIC_V4 = "198.18.0.{}"
SUBNET_V4 = "198.18.{}.{}"
FABRIC_V6 = "fd00:198:18::{}"


def build(lab: Lab, hosts: int, tor: str) -> None:
    """The lab's L2 segment: bridges in the fabric namespace, the router between subnets
    (subnets > 1), every host attached and routed, and the ToR's namespace (tor != none)."""
    fabric = lab.state["fabric"]
    netns_add(fabric)
    subnets = lab.state.get("subnets", 1)
    for s in range(subnets):
        sh("ip", "-n", fabric, "link", "add", f"br{s}", "type", "bridge")
        sh("ip", "-n", fabric, "link", "set", f"br{s}", "up")
    if subnets > 1:
        _build_router(lab, subnets)
    ipv6 = lab.state["ipv6"]
    for i in range(1, hosts + 1):
        name, s = f"host{i}", (i - 1) % subnets
        h = {"name": name, "netns": f"{lab.prefix}{name}",
             "address": f"{SUBNET_V4.format(s, 10 + i)}/24",
             "address6": f"{FABRIC_V6.format(10 + i)}/64" if ipv6 else None,
             "run_dir": os.path.join(lab.dir, name), "node": None, "subnet": s}
        os.makedirs(h["run_dir"], exist_ok=True)
        attach(lab, h["netns"], f"p-{name}", h["address"], h["address6"], f"br{s}")
        sysctls(h["netns"], {"net.ipv4.ip_forward": "1",
                             "net.ipv6.conf.all.forwarding": "1"})
        # A default route, as every real host has: proxy ARP answers a workload's ARP
        # for 169.254.1.1 only if the host can route that address.
        sh("ip", "-n", h["netns"], "route", "add", "default", "via",
           SUBNET_V4.format(s, 1))
        lab.state["hosts"].append(h)
        lab.save()
    if tor != "none":
        t = {"kind": tor, "netns": f"{lab.prefix}tor", "asn": tor_mod.TOR_ASN,
             "address": FABRIC_V4.format(1), "address6": FABRIC_V6.format(1) if ipv6
             else None, "daemon": None}
        attach(lab, t["netns"], "p-tor", f"{t['address']}/24",
                f"{t['address6']}/64" if ipv6 else None)
        sysctls(t["netns"], {"net.ipv4.ip_forward": "1",
                             "net.ipv6.conf.all.forwarding": "1"})
        lab.state["tor"] = t
        lab.save()


def _build_router(lab: Lab, subnets: int) -> None:
    """A router namespace with one leg (ethS, 198.18.S.1/24) on each subnet's bridge."""
    ns, fabric = f"{lab.prefix}router", lab.state["fabric"]
    netns_add(ns)
    sysctls(ns, {"net.ipv4.ip_forward": "1"})
    for s in range(subnets):
        sh("ip", "link", "add", f"eth{s}", "netns", ns, "type", "veth", "peer", "name",
           f"p-router{s}", "netns", fabric)
        sh("ip", "-n", fabric, "link", "set", f"p-router{s}", "master", f"br{s}", "up")
        sh("ip", "-n", ns, "addr", "add", f"{SUBNET_V4.format(s, 1)}/24", "dev", f"eth{s}")
        sh("ip", "-n", ns, "link", "set", f"eth{s}", "up")
    lab.state["router"] = ns
    lab.save()


def attach(lab: Lab, ns: str, port: str, addr: str, addr6: str | None,
            bridge: str = "br0") -> None:
    """Namespace `ns` with eth0 (addresses given) veth-paired to `port` on the fabric's
    `bridge`."""
    fabric = lab.state["fabric"]
    netns_add(ns)
    sh("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
       "netns", fabric)
    sh("ip", "-n", fabric, "link", "set", port, "master", bridge, "up")
    if addr6:
        sysctls(ns, {"net.ipv6.conf.eth0.accept_dad": "0",
                     "net.ipv6.conf.all.disable_ipv6": "0"})
    sh("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
    if addr6:
        sh("ip", "-n", ns, "addr", "add", addr6, "dev", "eth0", "nodad")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
