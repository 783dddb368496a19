"""The Felix parameters the nftables dataplane reads, parsed from `ConfigUpdate.config`.

Names and defaults are Calico's: InterfacePrefix (`cali`; comma-separated, e.g. `cali,tap`),
DefaultEndpointToHostAction (`Drop` | `Return` | `Accept`), FailsafeInboundHostPorts and
FailsafeOutboundHostPorts (`proto:port` or `proto:cidr:port`, comma-separated, or `none`),
LogPrefix (`calico-packet`), VXLANEnabled (unset: decided by the pools), VXLANPort (4789),
AllowVXLANPacketsFromWorkloads (false), FloatingIPs (`Disabled`), MetadataAddr (`127.0.0.1`)
and MetadataPort (`8775`). Names match case-insensitively: Felix sends its own names
(`InterfacePrefix`), the calc graph FelixConfiguration field names (`interfacePrefix`).

`openstack` is Calico's "OpenStack special cases" switch (its `OpenstackActive()`): on when
ClusterType mentions openstack, when MetadataAddr or MetadataPort is not the default, or when
the interface prefixes include `tap` (our default prefixes do). It turns on the metadata
redirect and the workload-to-host allowances for metadata and DNS.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_FAILSAFE_IN = "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"
DEFAULT_FAILSAFE_OUT = "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
DEFAULT_METADATA_ADDR, DEFAULT_METADATA_PORT = "127.0.0.1", 8775


@dataclass(frozen=True, slots=True)
class ProtoPort:
    protocol: int
    port: int
    net: str = ""  # source (inbound) / destination (outbound) restriction


@dataclass(frozen=True, slots=True)
class NftConfig:
    interface_prefixes: tuple[str, ...] = ("cali",)
    endpoint_to_host_action: str = "drop"  # drop | return | accept
    failsafe_inbound: tuple[ProtoPort, ...] = ()
    failsafe_outbound: tuple[ProtoPort, ...] = ()
    log_prefix: str = "calico-packet"
    vxlan_enabled: bool | None = None  # None: on while a pool has a vxlanMode
    vxlan_port: int = 4789
    allow_vxlan_from_workloads: bool = False
    floating_ips: bool = False
    openstack: bool = False
    metadata_addr: str = ""  # an IPv4 address, "" when MetadataAddr is not one
    metadata_port: int = DEFAULT_METADATA_PORT

    @classmethod
    def from_mapping(cls, config: Mapping[str, str] | None = None) -> NftConfig:
        lower = {k.lower(): v for k, v in (config or {}).items()}

        def get(name: str, default: str) -> str:
            value = lower.get(name.lower())
            return default if value is None else value

        prefixes = tuple(p.strip() for p in get("InterfacePrefix", "cali").split(",")
                         if p.strip())
        action = get("DefaultEndpointToHostAction", "Drop").strip().lower()
        if action not in ("drop", "return", "accept"):
            raise ValueError(f"FelixConfiguration DefaultEndpointToHostAction: {action!r} "
                             "is not one of Drop, Return, Accept")
        return cls(
            interface_prefixes=prefixes or ("cali",),
            endpoint_to_host_action=action,
            failsafe_inbound=parse_ports("FailsafeInboundHostPorts",
                                         get("FailsafeInboundHostPorts", DEFAULT_FAILSAFE_IN)),
            failsafe_outbound=parse_ports("FailsafeOutboundHostPorts",
                                          get("FailsafeOutboundHostPorts", DEFAULT_FAILSAFE_OUT)),
            log_prefix=get("LogPrefix", "calico-packet"),
            vxlan_enabled=_flag(get("VXLANEnabled", "")),
            vxlan_port=int(get("VXLANPort", "") or 4789),
            allow_vxlan_from_workloads=bool(_flag(get("AllowVXLANPacketsFromWorkloads", ""))),
            floating_ips=get("FloatingIPs", "Disabled").strip().lower() == "enabled",
            openstack=openstack_active(prefixes, get("ClusterType", ""),
                                       get("MetadataAddr", DEFAULT_METADATA_ADDR),
                                       get("MetadataPort", str(DEFAULT_METADATA_PORT))),
            metadata_addr=metadata_ipv4(get("MetadataAddr", DEFAULT_METADATA_ADDR)),
            metadata_port=int(get("MetadataPort", str(DEFAULT_METADATA_PORT))),
        )


def _flag(text: str) -> bool | None:
    text = text.strip().lower()
    return None if text in ("", "none") else text in ("true", "1", "yes")


def openstack_active(prefixes: tuple[str, ...], cluster_type: str, metadata_addr: str,
                     metadata_port: str) -> bool:
    """Calico's evidence that this is an OpenStack compute host (see the module doc)."""
    return ("openstack" in cluster_type.lower()
            or metadata_addr.strip() not in ("", DEFAULT_METADATA_ADDR)
            or int(metadata_port or 0) not in (0, DEFAULT_METADATA_PORT)
            or "tap" in prefixes)


def metadata_ipv4(text: str) -> str:
    """MetadataAddr as an IPv4 address; "" (no metadata rules) for anything else, as Calico's
    Felix, which takes the address literally (a host name is not resolved)."""
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        if text.strip():
            log.warning("MetadataAddr %r is not an IPv4 address: no metadata redirect", text)
        return ""


def parse_ports(field: str, text: str) -> tuple[ProtoPort, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    out = []
    for item in text.split(","):
        parts = [p.strip() for p in item.strip().split(":")]
        proto, net = "tcp", ""  # Calico: protocol defaults to tcp
        if len(parts) == 2:
            proto, port = parts
        elif len(parts) >= 3:  # proto:cidr:port (an IPv6 cidr contains colons)
            proto, net, port = parts[0], ":".join(parts[1:-1]), parts[-1]
        else:
            port = parts[0]
        if proto.lower() not in PROTOCOLS or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"FelixConfiguration {field}: bad entry {item.strip()!r} "
                             "(want proto:port or proto:cidr:port, proto tcp|udp|sctp)")
        out.append(ProtoPort(PROTOCOLS[proto.lower()], int(port), net))
    return tuple(out)
