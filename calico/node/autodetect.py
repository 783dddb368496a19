"""The node's IPv4/IPv6 address, by Calico's autodetection methods.

`detect(method, version, interfaces)` takes Calico's method text (the value of
IP_AUTODETECTION_METHOD / IP6_AUTODETECTION_METHOD) and returns an address with its prefix
length ("10.0.0.5/24"), or None when nothing matches:

- `first-found` (default): the first address of the first interface that is not one of
  Calico's excluded kinds (docker*, cali*, veth*, lo, tunl*, vxlan.calico*, ...);
- `interface=REGEX[,REGEX...]`: the first address of the first interface whose name matches
  one of the regexes;
- `skip-interface=REGEX[,REGEX...]`: first-found, also skipping interfaces that match;
- `can-reach=DEST`: the source address the kernel picks to reach DEST (an address or a host
  name), with the prefix length of the interface holding it;
- `cidr=CIDR[,CIDR...]`: the first address inside one of the CIDRs.

Interfaces come from an injected function (`kernel_interfaces()` reads `ip -j addr`), listed
in kernel order, each with its addresses; link-local, loopback and multicast addresses never
count, nor do interfaces that are down.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Calico's DEFAULT_INTERFACES_TO_EXCLUDE (node/pkg/lifecycle/startup/autodetection).
EXCLUDED_INTERFACES = (
    r"docker.*", r"cbr.*", r"dummy.*", r"virbr.*", r"lxcbr.*", r"veth.*", r"lo",
    r"cali.*", r"tunl.*", r"flannel.*", r"kube-ipvs.*", r"cni.*", r"vxlan\.calico.*",
    r"vxlan-v6\.calico.*", r"wireguard\.cali.*", r"wg-v6\.cali.*", r"nodelocaldns.*",
    r"podman.*",
)
METHODS = ("first-found", "interface=", "skip-interface=", "can-reach=", "cidr=")


class AutodetectError(ValueError):
    """The method text is not one Calico knows, or its argument is invalid."""


@dataclass(frozen=True)
class Interface:
    name: str
    addresses: tuple[str, ...]  # "10.0.0.5/24", "fd00::5/64"
    up: bool = True


Interfaces = Callable[[], Sequence[Interface]]
Reach = Callable[[str, int], str | None]  # (destination, version) -> local source address


def kernel_interfaces(netns: str | None = None) -> list[Interface]:
    """This namespace's interfaces in index order, from `ip -j addr show`."""
    argv = ["ip", "-j", "addr", "show"]
    if netns:
        argv = ["ip", "-n", netns, "-j", "addr", "show"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result = []
    for link in json.loads(out or "[]"):
        addrs = tuple(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                      if "local" in a and "prefixlen" in a)
        up = link.get("operstate") != "DOWN" and "UP" in link.get("flags", ["UP"])
        result.append(Interface(link["ifname"], addrs, up))
    return result


def kernel_reach(dest: str, version: int) -> str | None:
    """The source address for `dest`: a UDP connect (no packet is sent)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    try:
        infos = socket.getaddrinfo(dest, 80, family, socket.SOCK_DGRAM)
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(infos[0][4])
            return s.getsockname()[0]
    except OSError:
        return None


def _usable(addr: str, version: int) -> bool:
    iface = ipaddress.ip_interface(addr)
    ip = iface.ip
    return (iface.version == version and not ip.is_link_local and not ip.is_loopback
            and not ip.is_multicast and not ip.is_unspecified)


def _regexes(text: str, method: str) -> list[re.Pattern]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise AutodetectError(f"{method} needs at least one interface regex")
    try:
        return [re.compile(p) for p in parts]
    except re.error as err:
        raise AutodetectError(f"{method}: invalid regex: {err}") from None


def _first(interfaces: Sequence[Interface], version: int,
           include: Callable[[str], bool]) -> str | None:
    for iface in interfaces:
        if not iface.up or not include(iface.name):
            continue
        for addr in iface.addresses:
            if _usable(addr, version):
                return addr
    return None


def _excluded(name: str) -> bool:
    return any(re.fullmatch(p, name) for p in EXCLUDED_INTERFACES)


def detect(method: str, version: int, interfaces: Interfaces = kernel_interfaces,
           reach: Reach = kernel_reach) -> str | None:
    """The address (with prefix length) `method` selects for IP `version`, or None."""
    method = (method or "first-found").strip()
    if method == "first-found":
        return _first(interfaces(), version, lambda n: not _excluded(n))
    if method.startswith("interface="):
        pats = _regexes(method[len("interface="):], "interface=")
        return _first(interfaces(), version, lambda n: any(p.match(n) for p in pats))
    if method.startswith("skip-interface="):
        pats = _regexes(method[len("skip-interface="):], "skip-interface=")
        return _first(interfaces(), version,
                      lambda n: not _excluded(n) and not any(p.match(n) for p in pats))
    if method.startswith("cidr="):
        try:
            nets = [ipaddress.ip_network(c.strip(), strict=False)
                    for c in method[len("cidr="):].split(",") if c.strip()]
        except ValueError as err:
            raise AutodetectError(f"cidr=: {err}") from None
        if not nets:
            raise AutodetectError("cidr= needs at least one CIDR")
        for iface in interfaces():
            for addr in iface.addresses:
                ip = ipaddress.ip_interface(addr).ip
                if iface.up and _usable(addr, version) and any(
                        ip.version == n.version and ip in n for n in nets):
                    return addr
        return None
    if method.startswith("can-reach="):
        dest = method[len("can-reach="):].strip()
        if not dest:
            raise AutodetectError("can-reach= needs a destination address or host name")
        source = reach(dest, version)
        if source is None:
            return None
        for iface in interfaces():
            for addr in iface.addresses:
                if str(ipaddress.ip_interface(addr).ip) == source:
                    return addr
        return f"{source}/{32 if version == 4 else 128}"
    raise AutodetectError(f'"{method}" is not an autodetection method (expected one of '
                          f"{', '.join(m + ('...' if m.endswith('=') else '') for m in METHODS)})")
