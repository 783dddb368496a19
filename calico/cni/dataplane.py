"""The veth between a container and its host, as Calico's CNI plugin builds it (the impure edge).

ADD (`setup`):
- a veth pair created in one netlink request: the host side `cali<hash>` in the host's
  (current) namespace with MAC ee:ee:ee:ee:ee:ee, the peer directly in the container's
  namespace under CNI_IFNAME (so no temporary name can clash on the host);
- host side sysctls, as Calico's plugin sets them: IPv4 `proxy_arp=1`, `neigh.proxy_delay=0`,
  `forwarding=1`; IPv6 `disable_ipv6=0`, `proxy_ndp=1`, `forwarding=1`. Proxy ARP is what
  answers the container's ARP for 169.254.1.1 (it needs forwarding on the incoming interface);
- host routes `<addr>/32 dev cali<hash> scope link` (and /128), tagged with Felix's route
  protocol so that Felix adopts them (calico.felix.dataplane.routes.DEFAULT_ROUTE_PROTOCOL);
- in the container: the interface's MTU, IPv6 enabled and `accept_dad=0`, the /32 and /128
  addresses, `169.254.1.1 dev eth0 scope link` + `default via 169.254.1.1`, and `default via
  <host side link-local> dev eth0` for IPv6.

DEL (`teardown`) deletes the container's interface if the namespace is still there and the
host side by name if it is still there; both missing is success. CHECK (`check`) reads the
container's interface back and returns what is wrong, as sentences.

Namespaces: netlink sockets and /proc/sys files belong to the namespace the thread was in when
it opened them, so `_in_netns` switches the calling thread with setns(2) and back. setns(2)
changes only the calling thread, so calico-node's CNI server runs requests on several threads
at once, each switching on its own. Kernel requests go through netlink.py (one socket per
namespace per request).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from socket import AF_INET, AF_INET6

from .netlink import Netlink, NetlinkError

log = logging.getLogger(__name__)

HOST_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY_V4 = "169.254.1.1"
# Felix's route protocol (calico.felix.dataplane.routes.DEFAULT_ROUTE_PROTOCOL; a unit test
# keeps the two equal). Routes we add with it are Felix's to keep or remove.
ROUTE_PROTOCOL = 80
CLONE_NEWNET = 0x40000000
RT_SCOPE_LINK = 253
IFA_F_NODAD = 0x02
LINK_LOCAL_WAIT = 3.0


class DataplaneError(Exception):
    """Setting up, checking or removing the veth failed (the message says which step)."""


class NetnsNotFound(DataplaneError):
    pass


@dataclass(frozen=True)
class VethInfo:
    host_name: str
    container_mac: str
    host_link_local: str  # "" without IPv6


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise DataplaneError(f"setns failed: {os.strerror(err)}")


@contextlib.contextmanager
def _in_netns(path: str) -> Iterator[None]:
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsNotFound(f"network namespace {path} does not exist") from None
    except OSError as err:
        raise DataplaneError(f"cannot open network namespace {path}: {err.strerror}") from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{path.replace('.', '/')}", "w") as f:
            f.write(value)
    except OSError as err:
        raise DataplaneError(f"failed to set {path}={value}: {err.strerror}") from None


def host_sysctls(host_name: str, has_v4: bool, has_v6: bool) -> dict[str, str]:
    """The host side sysctls Calico's plugin sets (interface names may contain '.': none of
    ours do)."""
    values = {}
    if has_v4:
        values.update({f"net.ipv4.conf.{host_name}.proxy_arp": "1",
                       f"net.ipv4.neigh.{host_name}.proxy_delay": "0",
                       f"net.ipv4.conf.{host_name}.forwarding": "1"})
    if has_v6:
        values.update({f"net.ipv6.conf.{host_name}.disable_ipv6": "0",
                       f"net.ipv6.conf.{host_name}.proxy_ndp": "1",
                       f"net.ipv6.conf.{host_name}.forwarding": "1"})
    return values


class LinuxDataplane:
    """Veths, addresses, routes and sysctls through rtnetlink (netlink.py) on the real kernel."""

    def setup(self, netns: str, ifname: str, host_name: str, addresses: Sequence[str],
              mtu: int, allow_ip_forwarding: bool = False, host_routes: bool = True
              ) -> VethInfo:
        """Create and configure the veth; on any failure the host side is deleted again
        (which deletes the container side too) before the error is raised. Without
        `host_routes` (an address-space endpoint: its address may repeat on this host in
        another space), no host route is added: Felix routes its translated address."""
        nets = [ipaddress.ip_interface(a) for a in addresses]
        has_v4 = any(n.version == 4 for n in nets)
        has_v6 = any(n.version == 6 for n in nets)
        with Netlink() as host:
            self._delete_stale(host, host_name)
            try:
                fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise NetnsNotFound(f"network namespace {netns} does not exist") from None
            try:
                with _in_netns(netns):
                    cont = Netlink()  # keeps the container's namespace after we switch back
                with cont:
                    if cont.link(ifname) is not None:
                        raise DataplaneError(f"interface {ifname} already exists in {netns}")
                    host.add_veth(host_name, HOST_MAC, mtu, ifname, fd)
                    try:
                        return self._configure(host, cont, netns, ifname, host_name, nets,
                                               has_v4, has_v6, allow_ip_forwarding,
                                               host_routes)
                    except BaseException:
                        with contextlib.suppress(NetlinkError):
                            index = (host.link(host_name) or {}).get("index")
                            if index:
                                host.delete_link(index)
                        raise
            except NetlinkError as err:
                raise DataplaneError(f"failed to create veth {host_name}/{ifname}: "
                                     f"{err.strerror}") from None
            finally:
                os.close(fd)

    def _configure(self, host: Netlink, cont: Netlink, netns: str, ifname: str,
                   host_name: str, nets: list, has_v4: bool, has_v6: bool,
                   allow_ip_forwarding: bool, host_routes: bool = True) -> VethInfo:
        for key, value in host_sysctls(host_name, has_v4, has_v6).items():
            _write_sysctl(key, value)
        host_idx = host.link(host_name)["index"]
        try:
            host.set_up(host_idx)
        except NetlinkError as err:
            raise DataplaneError(f"failed to set {host_name} up: {err.strerror}") from None
        for net in nets if host_routes else ():
            dst = f"{net.ip}/{net.max_prefixlen}"
            try:
                host.add_route(dst, host_idx, scope=RT_SCOPE_LINK, proto=ROUTE_PROTOCOL)
            except NetlinkError as err:
                if err.errno != errno.EEXIST:
                    raise DataplaneError(f"failed to add host route {dst} dev {host_name}: "
                                         f"{err.strerror}") from None
                if host.route_oif(str(net.ip)) != host_idx:
                    raise DataplaneError(f"a route to {dst} already exists on another "
                                         f"interface than {host_name}") from None
        with _in_netns(netns):
            mac = self._configure_container(cont, ifname, nets, has_v4, has_v6,
                                            allow_ip_forwarding)
        if not has_v6:
            return VethInfo(host_name, mac, "")
        # The host side gets its link-local address once it has carrier, i.e. now that the
        # container side is up.
        link_local = self._wait_link_local(host, host_idx, host_name)
        try:
            cont.add_route("::/0", cont.link(ifname)["index"], gateway=link_local)
        except NetlinkError as err:
            raise DataplaneError(f"failed to add the IPv6 default route via {link_local} "
                                 f"in the container: {err.strerror}") from None
        return VethInfo(host_name, mac, link_local)

    @staticmethod
    def _wait_link_local(host: Netlink, idx: int, name: str) -> str:
        deadline = time.monotonic() + LINK_LOCAL_WAIT
        while True:
            for value, _ in host.addresses(idx, AF_INET6):
                if ipaddress.ip_address(value).is_link_local:
                    return value
            if time.monotonic() > deadline:
                raise DataplaneError(f"host side {name} got no IPv6 link-local address "
                                     "(is IPv6 disabled on this host?)")
            time.sleep(0.005)

    @staticmethod
    def _configure_container(cont: Netlink, ifname: str, nets: list, has_v4: bool,
                             has_v6: bool, allow_ip_forwarding: bool) -> str:
        """Everything in the container but the IPv6 default route (the calling thread is in
        the container's namespace, for the sysctls); returns the MAC."""
        link = cont.link(ifname)
        idx = link["index"]
        step = "configure"
        try:
            if has_v6:
                for scope in ("all", "default", "lo"):
                    _write_sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", "0")
                _write_sysctl(f"net.ipv6.conf.{ifname}.disable_ipv6", "0")
                _write_sysctl(f"net.ipv6.conf.{ifname}.accept_dad", "0")
            if has_v4:
                _write_sysctl("net.ipv4.ip_forward", "1" if allow_ip_forwarding else "0")
            step = "set up"
            cont.set_up(idx)
            for net in nets:
                step = f"add address {net.ip}/{net.max_prefixlen} to"
                flags = IFA_F_NODAD if net.version == 6 else 0
                cont.add_address(idx, str(net.ip), net.max_prefixlen, flags)
            if has_v4:
                step = f"add route {GATEWAY_V4} dev {ifname} scope link in"
                cont.add_route(f"{GATEWAY_V4}/32", idx, scope=RT_SCOPE_LINK)
                step = f"add default route via {GATEWAY_V4} in"
                cont.add_route("0.0.0.0/0", idx, gateway=GATEWAY_V4)
        except NetlinkError as err:
            raise DataplaneError(f"failed to {step} the container's {ifname}: "
                                 f"{err.strerror}") from None
        return link["mac"]

    @staticmethod
    def _delete_stale(host: Netlink, host_name: str) -> None:
        """A host side left by an earlier, interrupted ADD of this endpoint goes first."""
        link = host.link(host_name)
        if link is not None:
            log.warning("deleting stale host interface %s", host_name)
            with contextlib.suppress(NetlinkError):
                host.delete_link(link["index"])

    # ---- DEL and CHECK -------------------------------------------------------------------

    def teardown(self, netns: str, ifname: str, host_name: str) -> None:
        """Delete the veth. A namespace or interface that is already gone is fine."""
        if netns:
            try:
                with _in_netns(netns):
                    cont = Netlink()
                with cont:
                    link = cont.link(ifname)
                    if link is not None:
                        cont.delete_link(link["index"])
            except NetnsNotFound:
                pass
            except NetlinkError as err:
                if err.errno != errno.ENODEV:
                    raise DataplaneError(f"failed to delete {ifname} in {netns}: "
                                         f"{err.strerror}") from None
        with Netlink() as host:
            link = host.link(host_name)
            if link is not None:
                try:
                    host.delete_link(link["index"])
                except NetlinkError as err:
                    if err.errno != errno.ENODEV:
                        raise DataplaneError(f"failed to delete {host_name}: "
                                             f"{err.strerror}") from None

    def host_link_local(self, host_name: str) -> str:
        """The host side's IPv6 link-local address ("" if it has none or does not exist)."""
        with Netlink() as host:
            link = host.link(host_name)
            for value, _ in host.addresses(link["index"], AF_INET6) if link else []:
                if ipaddress.ip_address(value).is_link_local:
                    return value
        return ""

    def host_interface_exists(self, host_name: str) -> bool:
        with Netlink() as host:
            return host.link(host_name) is not None

    def check(self, netns: str, ifname: str, host_name: str,
              addresses: Sequence[str]) -> list[str]:
        """What differs from a correctly set up veth; [] when all is well."""
        problems: list[str] = []
        nets = [ipaddress.ip_interface(a) for a in addresses]
        with Netlink() as host:
            link = host.link(host_name)
            if link is None:
                problems.append(f"host interface {host_name} does not exist")
            elif link["operstate"] not in ("UP", "UNKNOWN"):
                problems.append(f"host interface {host_name} is not up")
        with _in_netns(netns):
            cont = Netlink()
        with cont:
            link = cont.link(ifname)
            if link is None:
                return problems + [f"interface {ifname} does not exist in {netns}"]
            if link["operstate"] not in ("UP", "UNKNOWN"):
                problems.append(f"interface {ifname} is not up")
            have = set(cont.addresses(link["index"]))
            for net in nets:
                if (str(net.ip), net.max_prefixlen) not in have:
                    problems.append(f"{ifname} lacks address {net.ip}/{net.max_prefixlen}")
            routes = cont.routes(link["index"])
            for family, gw in ((4, GATEWAY_V4), (6, None)):
                if not any(n.version == family for n in nets):
                    continue
                af = AF_INET if family == 4 else AF_INET6
                if not any(r["family"] == af and r["dst_len"] == 0
                           and (gw is None or r["gateway"] == gw) for r in routes):
                    problems.append(f"{ifname} has no IPv{family} default route"
                                    + (f" via {gw}" if gw else ""))
        return problems
