"""calico-node start-up: register this host's Node and create the default IP pools.

Settings, Calico's environment variables (`StartupConfig.from_env`):

- NODENAME (else HOSTNAME, else the kernel's host name): the Node's name.
- IP: `autodetect`, `none`, or an address with optional prefix ("10.0.0.5/24"). Unset: keep the
  Node's current address, autodetect when it has none (Calico's rule). IP_AUTODETECTION_METHOD
  picks the method (autodetect.py).
- IP6 / IP6_AUTODETECTION_METHOD: the same for IPv6; unset means keep what the Node has (or
  none).
- AS: the node's AS number (spec.bgp.asNumber); unset keeps the Node's.
- NO_DEFAULT_POOLS=true: never create pools. Otherwise, when no IPPool of a family exists,
  `default-ipv4-ippool` is created from CALICO_IPV4POOL_CIDR (default 192.168.0.0/16),
  CALICO_IPV4POOL_BLOCK_SIZE, CALICO_IPV4POOL_IPIP / _VXLAN (default Never, unlike Calico's
  Always: the BGP renderer routes IP-in-IP pools through tunl0, but this kernel has no ipip),
  CALICO_IPV4POOL_NAT_OUTGOING (default true), CALICO_IPV4POOL_NODE_SELECTOR;
  `default-ipv6-ippool` likewise from the CALICO_IPV6POOL_* variables, when this node has an
  IPv6 address or CALICO_IPV6POOL_CIDR is set (the CIDR defaults to a random ULA /48, as
  Calico does).

Registration refuses (exit, with Calico's message) an address another Node already uses.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import socket
from dataclasses import dataclass
from typing import Any

from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceAlreadyExists, ResourceConflict, ResourceNotFound

from . import autodetect

log = logging.getLogger(__name__)


class StartupError(Exception):
    """A setting or the datastore's state stops the node from starting (a clear sentence)."""


def _true(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("true", "1", "yes", "on")


@dataclass
class StartupConfig:
    nodename: str
    ip: str | None = None  # None: unset
    ip6: str | None = None
    ip_method: str = "first-found"
    ip6_method: str = "first-found"
    asn: str | None = None
    default_pools: bool = True
    env: dict[str, str] | None = None  # the CALICO_IPV*POOL_* settings

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None,
                 nodename: str | None = None) -> StartupConfig:
        env = dict(os.environ if env is None else env)
        name = (nodename or env.get("NODENAME") or env.get("HOSTNAME")
                or socket.gethostname()).strip().lower()
        return cls(nodename=name, ip=env.get("IP") or None, ip6=env.get("IP6") or None,
                   ip_method=env.get("IP_AUTODETECTION_METHOD") or "first-found",
                   ip6_method=env.get("IP6_AUTODETECTION_METHOD") or "first-found",
                   asn=env.get("AS") or None,
                   default_pools=not _true(env.get("NO_DEFAULT_POOLS")), env=env)


def _address(setting: str | None, current: str | None, method: str, version: int,
             interfaces: autodetect.Interfaces, reach: autodetect.Reach) -> str | None:
    """The node's address of one family from its setting, Calico's way."""
    if setting is not None and setting.lower() == "none":
        return None
    if setting is None and current:
        return current
    if setting is None and version == 6:
        return None  # IPv6 is opt-in
    if setting is None or setting.lower() == "autodetect":
        found = autodetect.detect(method, version, interfaces, reach)
        if found is None:
            raise StartupError(f"Couldn't autodetect an IPv{version} address using "
                               f"{method!r}: set IP{'6' if version == 6 else ''} or "
                               f"IP{'6' if version == 6 else ''}_AUTODETECTION_METHOD")
        log.info("Autodetected IPv%d address %s (method %s)", version, found, method)
        return found
    try:
        iface = ipaddress.ip_interface(setting)
    except ValueError:
        raise StartupError(f"IP{'6' if version == 6 else ''}={setting!r} is not an IPv{version} "
                           "address, 'autodetect' or 'none'") from None
    if iface.version != version:
        raise StartupError(f"IP{'6' if version == 6 else ''}={setting!r} is not an IPv{version} "
                           "address")
    if "/" not in setting:
        # Calico takes the prefix length from the interface holding the address.
        for link in interfaces():
            for addr in link.addresses:
                if ipaddress.ip_interface(addr).ip == iface.ip:
                    return addr
    return str(iface)


def register_node(client: ResourceClient, cfg: StartupConfig,
                  interfaces: autodetect.Interfaces = autodetect.kernel_interfaces,
                  reach: autodetect.Reach = autodetect.kernel_reach) -> dict[str, Any]:
    """Create or update this host's Node; returns it (Calico's JSON form)."""
    for _ in range(10):
        try:
            node = client.get("Node", cfg.nodename).to_dict()
            exists = True
        except ResourceNotFound:
            node = {"apiVersion": "projectcalico.org/v3", "kind": "Node",
                    "metadata": {"name": cfg.nodename}, "spec": {}}
            exists = False
        spec = node.setdefault("spec", {})
        bgp = dict(spec.get("bgp") or {})
        v4 = _address(cfg.ip, bgp.get("ipv4Address"), cfg.ip_method, 4, interfaces, reach)
        v6 = _address(cfg.ip6, bgp.get("ipv6Address"), cfg.ip6_method, 6, interfaces, reach)
        _check_unique(client, cfg.nodename, v4, v6)
        for key, value in (("ipv4Address", v4), ("ipv6Address", v6)):
            if value:
                bgp[key] = value
            else:
                bgp.pop(key, None)
        if cfg.asn:
            bgp["asNumber"] = cfg.asn
        if bgp:
            spec["bgp"] = bgp
        else:
            spec.pop("bgp", None)
        try:
            saved = (client.update(node) if exists else client.create(node)).to_dict()
        except (ResourceConflict, ResourceAlreadyExists):
            continue  # someone else wrote it meanwhile: read again
        log.info("%s Node %s (IPv4 %s, IPv6 %s, AS %s)", "Updated" if exists else "Created",
                 cfg.nodename, v4 or "none", v6 or "none", bgp.get("asNumber", "default"))
        return saved
    raise StartupError(f'Node "{cfg.nodename}" kept changing while it was being registered')


def _check_unique(client: ResourceClient, me: str, v4: str | None, v6: str | None) -> None:
    mine = {str(ipaddress.ip_interface(a).ip) for a in (v4, v6) if a}
    for other in client.list("Node").items:
        if other.name == me:
            continue
        bgp = other.spec.bgp
        for addr in (bgp.ipv4Address, bgp.ipv6Address) if bgp else ():
            if addr and str(ipaddress.ip_interface(addr).ip) in mine:
                raise StartupError(f"Calico node '{other.name}' is already using the IP "
                                   f"address {addr}")


def _pool_doc(version: int, env: dict[str, str]) -> dict[str, Any]:
    p = f"CALICO_IPV{version}POOL_"
    cidr = env.get(p + "CIDR")
    if not cidr:
        if version == 4:
            cidr = "192.168.0.0/16"
        else:  # Calico: a random ULA /48
            cidr = str(ipaddress.IPv6Network(((0xFD << 120) | (random.getrandbits(40) << 80),
                                              48)))
    spec: dict[str, Any] = {
        "cidr": cidr,
        "natOutgoing": _true(env.get(p + "NAT_OUTGOING"), default=version == 4),
        "nodeSelector": env.get(p + "NODE_SELECTOR") or "all()",
        "vxlanMode": env.get(p + "VXLAN") or "Never",
    }
    if version == 4:
        spec["ipipMode"] = env.get(p + "IPIP") or "Never"
    if env.get(p + "BLOCK_SIZE"):
        try:
            spec["blockSize"] = int(env[p + "BLOCK_SIZE"])
        except ValueError:
            raise StartupError(f"{p}BLOCK_SIZE={env[p + 'BLOCK_SIZE']!r} is not a number")\
                from None
    if env.get(p + "DISABLE_BGP_EXPORT"):
        spec["disableBGPExport"] = _true(env[p + "DISABLE_BGP_EXPORT"])
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": f"default-ipv{version}-ippool"}, "spec": spec}


def ensure_default_pools(client: ResourceClient, cfg: StartupConfig,
                         node: dict[str, Any]) -> list[str]:
    """Create the default pool of each family that has none; returns the CIDRs created."""
    if not cfg.default_pools:
        return []
    env = cfg.env or {}
    have = {ipaddress.ip_network(p.spec.cidr).version for p in client.list("IPPool").items}
    bgp = (node.get("spec") or {}).get("bgp") or {}
    created = []
    for version in (4, 6):
        if version in have:
            continue
        if version == 6 and not bgp.get("ipv6Address") and not env.get("CALICO_IPV6POOL_CIDR"):
            continue
        doc = _pool_doc(version, env)
        try:
            client.create(doc)
        except ResourceAlreadyExists:
            continue  # another node created it first
        except ValueError as err:
            # Another node's pool may have landed between our list and our create (the
            # overlap check then refuses ours): that is success too.
            if any(ipaddress.ip_network(p.spec.cidr).version == version
                   for p in client.list("IPPool").items):
                continue
            raise StartupError(f"cannot create the default IPv{version} pool: {err}") from None
        log.info("Created default IPv%d pool %s", version, doc["spec"]["cidr"])
        created.append(doc["spec"]["cidr"])
    return created
