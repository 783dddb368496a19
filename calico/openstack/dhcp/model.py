"""What dnsmasq should serve on one compute host: a pure function of the datastore's view.

In: this host's OpenStack WorkloadEndpoints (spec: node, interfaceName, mac, ipNetworks;
annotation `openstack.projectcalico.org/network-id`) and the subnet records the driver
writes at `/calico/dhcp/v2/<region>/subnet/<id>` (subnets.py). Out: one `NetworkDHCP` per
Neutron network that has a local endpoint, which `render` turns into dnsmasq's files and
command line.

The routed design, as networking-calico's DHCP agent does it: each network gets a dummy
interface `ns-<network-id[:11]>` carrying the subnets' gateway addresses (without prefix
routes, so the host gains no connected subnet route that would compete with Calico's
per-workload routes), and dnsmasq listens on it and on each local tap of that network,
treating DHCP packets and router solicitations arriving on the taps as if they had arrived
on the dummy (`--bridge-interface`). Every VM gets exactly its fixed IP (static ranges: no
dynamic pool); an allowed address pair's address (listed in the endpoint's `allowedIps`,
and in its ipNetworks too) is never served. What each subnet gives, as Neutron's dnsmasq
driver gives it:

- IPv4: the subnet's netmask; router (option 3) the gateway, or the nexthop of a 0.0.0.0/0
  host route when there is no gateway; DNS servers (6); domain name (15, the network's
  `dns_domain`, else the agent's `--dns-domain`); host routes as classless static routes
  (121, and 249 for Windows clients), the default route appended when there is a router;
  the network's MTU (26).
- IPv6 (router advertisements from dnsmasq on the tap: the VM's default route is the tap's
  link-local address, Calico's IPv6 gateway; every prefix `off-link`, so the VM sends all
  traffic to the host; the RA carries the network's MTU), by the subnet's
  `ipv6_address_mode` (else `ipv6_ra_mode`): `dhcpv6-stateful` (also when neither is set,
  as networking-calico does) static DHCPv6 with the M flag; `dhcpv6-stateless` SLAAC plus
  DHCPv6 for DNS (A and O flags); `slaac` SLAAC only. DNS servers (option 23) and the domain
  as search list (24). Stateful needs a prefix of /64 or longer, SLAAC exactly /64; other
  subnets are left out, as Neutron leaves them out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import names

STATEFUL, STATELESS, SLAAC = "dhcpv6-stateful", "dhcpv6-stateless", "slaac"
RA_INTERVAL = 60  # seconds between unsolicited RAs (the router lifetime is three times it)


@dataclass(frozen=True)
class SubnetDHCP:
    id: str
    cidr: str
    gateway: str | None
    dns_servers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()
    ipv6_mode: str = ""  # IPv6 only: STATEFUL, STATELESS or SLAAC
    mtu: int = 0  # the network's, 0 when unknown
    dns_domain: str = ""  # the network's, "" when it has none

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
    dns_domain: str = ""

    @property
    def interface(self) -> str:
        return "ns-" + self.network_id[:11]

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(sorted({h.tap for h in self.hosts}))


def parse_subnet(subnet_id: str, record: Mapping[str, Any]) -> SubnetDHCP:
    cidr = ipaddress.ip_network(record["cidr"], strict=False)
    mode = ""
    if cidr.version == 6:
        mode = record.get("ipv6_address_mode") or record.get("ipv6_ra_mode") or STATEFUL
        if mode not in (STATEFUL, STATELESS, SLAAC):
            raise ValueError(f"ipv6_address_mode {mode!r}")
    return SubnetDHCP(
        id=subnet_id, cidr=str(cidr), gateway=record.get("gateway_ip") or None,
        dns_servers=tuple(record.get("dns_servers") or ()),
        host_routes=tuple((r["destination"], r["nexthop"])
                          for r in record.get("host_routes") or ()),
        ipv6_mode=mode, mtu=int(record.get("mtu") or 0),
        dns_domain=str(record.get("dns_domain") or "").rstrip("."))


def _hostname(endpoint: Mapping[str, Any], ip: str) -> str:
    fqdn = (endpoint.get("metadata", {}).get("annotations") or {}).get(
        "openstack.projectcalico.org/fqdn")
    if fqdn:
        return fqdn.split(".")[0]
    return "host-" + ip.replace(".", "-").replace(":", "-")


def desired(host: str, endpoints: Iterable[Mapping[str, Any]],
            subnets: Mapping[str, Mapping[str, Any]],
            dns_domain: str = "") -> dict[str, NetworkDHCP]:
    """network id -> what dnsmasq serves for it on `host` (networks without a local endpoint
    or without a DHCP subnet are left out). `dns_domain`: for networks that have none."""
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
        domain = next((s.dns_domain for s in subs if s.dns_domain), dns_domain.rstrip("."))
        out[net] = NetworkDHCP(net, subs, tuple(sorted(entries, key=lambda h: (h.tap, h.ip))),
                               mtu=max(s.mtu for s in subs), dns_domain=domain)
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
        served = (_v4_subnet(sub, net.dns_domain, lease_seconds) if sub.version == 4
                  else _v6_subnet(sub, net.dns_domain, lease_seconds))
        if served is None:
            continue
        args.append(served[0])
        opts.extend(served[1])
        v6 = v6 or sub.version == 6
        if sub.gateway:
            prefix = 32 if sub.version == 4 else ipaddress.ip_network(sub.cidr).prefixlen
            addresses.append(f"{sub.gateway}/{prefix}")
    if v6:
        args.append("--enable-ra")
        # dnsmasq looks the parameters up by the interface the RA leaves from: each tap.
        mtu = f"mtu:{net.mtu}," if net.mtu >= 1280 else ""
        for name in (net.interface, *net.taps):
            args.append(f"--ra-param={name},{mtu}{RA_INTERVAL}")
    if net.mtu:
        args.append(f"--dhcp-option-force=option:mtu,{net.mtu}")
    host_lines = []
    for h in net.hosts:
        ip = f"[{h.ip}]" if ":" in h.ip else h.ip
        host_lines.append(f"{h.mac},{h.hostname},{ip}")
    return Rendered(args, {hosts_file: "\n".join(host_lines) + "\n",
                           opts_file: "\n".join(opts) + "\n"}, addresses)


def _v4_subnet(sub: SubnetDHCP, domain: str, lease: int) -> tuple[str, list[str]]:
    """The --dhcp-range and the options-file lines of an IPv4 subnet."""
    cidr = ipaddress.ip_network(sub.cidr)
    tag = f"tag:subnet-{sub.id}"
    opts = []
    router = sub.gateway
    routes = []
    for dest, nexthop in sub.host_routes:
        if ipaddress.ip_network(dest, strict=False).prefixlen == 0:
            router = router or nexthop  # as Neutron: a default host route stands in
        else:
            routes.append(f"{dest},{nexthop}")
    if router:
        opts.append(f"{tag},option:router,{router}")
    if sub.dns_servers:
        opts.append(f"{tag},option:dns-server,{','.join(sub.dns_servers)}")
    if domain:
        opts.append(f"{tag},option:domain-name,{domain}")
    if routes:
        if router:
            routes.append(f"0.0.0.0/0,{router}")
        opts.append(f"{tag},option:classless-static-route,{','.join(routes)}")
        opts.append(f"{tag},249,{','.join(routes)}")
    return (f"--dhcp-range=set:subnet-{sub.id},{cidr.network_address},static,"
            f"{cidr.netmask},{lease}s", opts)


V6_RANGE_MODE = {STATEFUL: "static", STATELESS: "ra-stateless", SLAAC: "ra-only"}


def _v6_subnet(sub: SubnetDHCP, domain: str, lease: int) -> tuple[str, list[str]] | None:
    """The --dhcp-range and options-file lines of an IPv6 subnet; None when its prefix
    length does not allow its mode."""
    cidr = ipaddress.ip_network(sub.cidr)
    if cidr.prefixlen < 64 or (sub.ipv6_mode != STATEFUL and cidr.prefixlen != 64):
        return None
    tag = f"tag:subnet-{sub.id}"
    opts = []
    if sub.dns_servers:
        opts.append(f"{tag},option6:dns-server,{','.join(f'[{s}]' for s in sub.dns_servers)}")
    if domain:
        opts.append(f"{tag},option6:domain-search,{domain}")
    return (f"--dhcp-range=set:subnet-{sub.id},{cidr.network_address},"
            f"{V6_RANGE_MODE[sub.ipv6_mode]},off-link,{cidr.prefixlen},{lease}s", opts)
