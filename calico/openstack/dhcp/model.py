"""What dnsmasq should serve on one compute host: a pure function of the datastore's view.

In: this host's OpenStack WorkloadEndpoints (spec: node, interfaceName, mac, ipNetworks;
annotation `openstack.projectcalico.org/network-id`) and the subnet records the driver
writes at `/calico/dhcp/v2/<region>/subnet/<id>`. Out: one `NetworkDHCP` per Neutron
network that has a local endpoint, which dnsmasq.py turns into files and a command line.

The routed design, as networking-calico's DHCP agent does it: each network gets a dummy
interface `ns-<network-id[:11]>` carrying the subnets' gateway addresses (as /32s, so the
host gains no connected subnet route that would compete with Calico's per-workload routes),
and dnsmasq listens on it and on each local tap of that network, treating DHCP packets
arriving on the taps as if they had arrived on the dummy (`--bridge-interface`). Every VM
gets exactly its fixed IP (static ranges: no dynamic pool), the subnet's netmask, the
gateway as router (reachable because the host answers ARP for it on the tap), and the
subnet's DNS servers and host routes. An allowed address pair's address (listed in the
endpoint's `allowedIps`, and in its ipNetworks too) is never served. IPv6 subnets (prefix /64 or longer) get static
DHCPv6 with router advertisements (`off-link`: the VM routes everything via the host).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import names


@dataclass(frozen=True)
class SubnetDHCP:
    id: str
    cidr: str
    gateway: str | None
    dns_servers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.cidr).version


@dataclass(frozen=True)
class HostEntry:
    mac: str
    ip: str
    hostname: str
    tap: str


@dataclass(frozen=True)
class NetworkDHCP:
    network_id: str
    subnets: tuple[SubnetDHCP, ...]
    hosts: tuple[HostEntry, ...]
    mtu: int = 0

    @property
    def interface(self) -> str:
        return "ns-" + self.network_id[:11]

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(sorted({h.tap for h in self.hosts}))


def parse_subnet(subnet_id: str, record: Mapping[str, Any]) -> SubnetDHCP:
    return SubnetDHCP(
        id=subnet_id, cidr=str(ipaddress.ip_network(record["cidr"], strict=False)),
        gateway=record.get("gateway_ip") or None,
        dns_servers=tuple(record.get("dns_servers") or ()),
        host_routes=tuple((r["destination"], r["nexthop"])
                          for r in record.get("host_routes") or ()))


def _hostname(endpoint: Mapping[str, Any], ip: str) -> str:
    fqdn = (endpoint.get("metadata", {}).get("annotations") or {}).get(
        "openstack.projectcalico.org/fqdn")
    if fqdn:
        return fqdn.split(".")[0]
    return "host-" + ip.replace(".", "-").replace(":", "-")


def desired(host: str, endpoints: Iterable[Mapping[str, Any]],
            subnets: Mapping[str, Mapping[str, Any]]) -> dict[str, NetworkDHCP]:
    """network id -> what dnsmasq serves for it on `host` (networks without a local endpoint
    or without a DHCP subnet are left out)."""
    parsed = {}
    for sid, rec in subnets.items():
        try:
            parsed[sid] = (rec.get("network_id"), parse_subnet(sid, rec))
        except (KeyError, ValueError):
            continue
    hosts: dict[str, list[HostEntry]] = {}
    used: dict[str, set[str]] = {}
    for ep in endpoints:
        spec = ep.get("spec") or {}
        node_ok = spec.get("node") in (host, host.lower())  # the driver lower-cases hosts
        if not node_ok or spec.get("orchestrator") != names.ORCHESTRATOR:
            continue
        net = (ep.get("metadata", {}).get("annotations") or {}).get(
            names.NETWORK_ID_ANNOTATION)
        if not net or not spec.get("mac") or not spec.get("interfaceName"):
            continue
        pairs = {ipaddress.ip_interface(c).ip for c in spec.get("allowedIps") or []}
        for cidr in spec.get("ipNetworks") or []:
            ip = ipaddress.ip_interface(cidr).ip
            if ip in pairs:
                continue
            for sid, (snet, sub) in parsed.items():
                if snet == net and ip in ipaddress.ip_network(sub.cidr):
                    hosts.setdefault(net, []).append(
                        HostEntry(spec["mac"], str(ip), _hostname(ep, str(ip)),
                                  spec["interfaceName"]))
                    used.setdefault(net, set()).add(sid)
                    break
    out = {}
    for net, entries in hosts.items():
        subs = tuple(sorted((parsed[s][1] for s in used[net]), key=lambda s: s.id))
        out[net] = NetworkDHCP(net, subs, tuple(sorted(entries, key=lambda h: (h.tap, h.ip))))
    return out


@dataclass
class Rendered:
    """dnsmasq's files and arguments for one network."""

    args: list[str]
    files: dict[str, str] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)  # on the ns- interface


def render(net: NetworkDHCP, state_dir: str, lease_seconds: int = 86400) -> Rendered:
    base = f"{state_dir}/{net.network_id}"
    hosts_file, opts_file = f"{base}/host", f"{base}/opts"
    args = ["dnsmasq", "--no-hosts", "--no-resolv", "--keep-in-foreground", "--bind-dynamic",
            "--except-interface=lo", f"--pid-file={base}/pid",
            f"--dhcp-hostsfile={hosts_file}", f"--dhcp-optsfile={opts_file}",
            f"--dhcp-leasefile={base}/leases", "--port=0", f"--interface={net.interface}"]
    for tap in net.taps:
        args.append(f"--interface={tap}")
    if net.taps:
        args.append("--bridge-interface=" + ",".join((net.interface, *net.taps)))
    opts, addresses = [], []
    v6 = False
    for sub in net.subnets:
        cidr = ipaddress.ip_network(sub.cidr)
        tag = f"subnet-{sub.id}"
        if sub.version == 4:
            args.append(f"--dhcp-range=set:{tag},{cidr.network_address},static,"
                        f"{cidr.netmask},{lease_seconds}s")
            if sub.gateway:
                opts.append(f"tag:{tag},option:router,{sub.gateway}")
            if sub.dns_servers:
                opts.append(f"tag:{tag},option:dns-server,{','.join(sub.dns_servers)}")
            if sub.host_routes:
                routes = [f"{d},{n}" for d, n in sub.host_routes]
                if sub.gateway:
                    routes.append(f"0.0.0.0/0,{sub.gateway}")
                opts.append(f"tag:{tag},option:classless-static-route,{','.join(routes)}")
        elif cidr.prefixlen >= 64:
            v6 = True
            args.append(f"--dhcp-range=set:{tag},{cidr.network_address},static,off-link,"
                        f"{cidr.prefixlen},{lease_seconds}s")
            if sub.dns_servers:
                servers = ",".join(f"[{s}]" for s in sub.dns_servers)
                opts.append(f"tag:{tag},option6:dns-server,{servers}")
        if sub.gateway:
            addresses.append(f"{sub.gateway}/{32 if sub.version == 4 else 128}")
    if v6:
        args.append("--enable-ra")
    if net.mtu:
        args.append(f"--dhcp-option-force=option:mtu,{net.mtu}")
    host_lines = []
    for h in net.hosts:
        ip = f"[{h.ip}]" if ":" in h.ip else h.ip
        host_lines.append(f"{h.mac},{h.hostname},{ip}")
    return Rendered(args, {hosts_file: "\n".join(host_lines) + "\n",
                           opts_file: "\n".join(opts) + "\n"}, addresses)
