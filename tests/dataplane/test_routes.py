"""Host-network managers on real namespaces with real packets.

Topology: a "host" namespace with an uplink veth to a "fabric" namespace (so the host has a
default route, as a real host does: proxy ARP only answers for targets the host can route
elsewhere), and one workload namespace per endpoint, joined to the host by a veth whose host
end is `cali<N>` (MAC ee:ee:ee:ee:ee:ee, as Calico's CNI plugin sets it). The workload side is
set up as the CNI plugin would: its address as a /32 (/128), `169.254.1.1 dev eth0 scope
link`, `default via 169.254.1.1`, and for IPv6 `default via` the host veth's link-local.
The managers run in this process, switched into the host namespace by NetlinkKernel(netns).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from calico.felix import messages as m
from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.netlink import NetlinkKernel
from calico.felix.dataplane.routes import DEFAULT_ROUTE_PROTOCOL as PROTO
from tests.fixtures.netns import Netns, ping, sh

HOST_MAC = "ee:ee:ee:ee:ee:ee"
HOST_LL = "fe80::ecee:eeff:feee:eeee"  # EUI-64 of HOST_MAC


class FelixLoop:
    """A stand-in for the Felix main loop: messages in, apply() on every wake-up."""

    def __init__(self, host: Netns) -> None:
        self.woken = threading.Event()
        self.lock = threading.Lock()
        self.kernel = NetlinkKernel(host.name)
        self.hn = HostNetworkManager(self.kernel, "host1", wake=self.woken.set)
        self._stop = threading.Event()
        self.hn.start()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def send(self, *msgs) -> None:
        with self.lock:
            for msg in msgs:
                self.hn.on_message(msg)
        self.woken.set()

    def resync(self) -> None:
        with self.lock:
            self.hn.resync()

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = self.hn.seconds_until_refresh()
            self.woken.wait(0.5 if timeout is None else min(timeout, 0.5))
            self.woken.clear()
            try:
                with self.lock:
                    self.hn.apply()
            except BaseException as e:  # surfaced by the test's assertions
                self.errors.append(e)

    def close(self) -> None:
        self._stop.set()
        self.woken.set()
        self._thread.join(timeout=5)
        self.hn.stop()
        self.kernel.close()


@pytest.fixture
def host(netns):
    host, fabric = netns.add("host"), netns.add("fabric")
    host.sysctl("net.ipv6.conf.default.accept_dad", "0")
    netns.veth(host, "eth0", fabric, "eth0")
    host.ip("addr", "add", "10.0.0.1/24", "dev", "eth0")
    fabric.ip("addr", "add", "10.0.0.2/24", "dev", "eth0")
    host.ip("route", "add", "default", "via", "10.0.0.2")
    return host


@pytest.fixture
def felix(host):
    loop = FelixLoop(host)
    yield loop
    loop.close()
    assert not loop.errors, loop.errors


def add_workload(netns, host: Netns, n: int) -> tuple[Netns, str]:
    """A workload namespace joined to the host by cali<n>; returns it and its eth0 MAC."""
    wl = netns.add(f"wl{n}")
    sh("ip", "link", "add", f"cali{n}", "netns", host.name, "address", HOST_MAC, "type", "veth",
       "peer", "name", "eth0", "netns", wl.name)
    host.ip("link", "set", f"cali{n}", "up")
    wl.ip("link", "set", "eth0", "up")
    wl.sysctl("net.ipv6.conf.eth0.accept_dad", "0")
    wl.ip("addr", "add", f"10.65.0.{n}/32", "dev", "eth0")
    wl.ip("-6", "addr", "add", f"fd00::{n}/128", "dev", "eth0", "nodad")
    wl.ip("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    wl.ip("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
    wl.ip("-6", "route", "add", "default", "via", HOST_LL, "dev", "eth0")
    mac = json.loads(wl.ip("-j", "link", "show", "eth0").stdout)[0]["address"]
    return wl, mac


def endpoint(n: int, mac: str = "") -> m.WorkloadEndpointUpdate:
    return m.WorkloadEndpointUpdate(
        id=m.WorkloadEndpointID("default", f"wl{n}"), interface=f"cali{n}", mac=mac,
        ipv4_nets=(f"10.65.0.{n}/32",), ipv6_nets=(f"fd00::{n}/128",))


def remove(n: int) -> m.WorkloadEndpointRemove:
    return m.WorkloadEndpointRemove(m.WorkloadEndpointID("default", f"wl{n}"))


def our_routes(host: Netns, family: str = "-4") -> set[str]:
    out = json.loads(host.ip(family, "-j", "route", "show", "proto", str(PROTO)).stdout)
    return {f'{r["dst"]}@{r["dev"]}' for r in out}


def wait_for(predicate, timeout: float = 3.0) -> float:
    """Poll until predicate() is true; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


def test_two_workloads_ping_each_other(netns, host, felix):
    wl1, mac1 = add_workload(netns, host, 1)
    wl2, mac2 = add_workload(netns, host, 2)
    felix.send(endpoint(1, mac1), endpoint(2, mac2))
    wait_for(lambda: our_routes(host) == {"10.65.0.1@cali1", "10.65.0.2@cali2"})
    assert our_routes(host, "-6") == {"fd00::1@cali1", "fd00::2@cali2"}
    assert host.run("sysctl", "-n", "net.ipv4.conf.cali1.proxy_arp").stdout.strip() == "1"
    assert host.run("sysctl", "-n", "net.ipv6.conf.cali2.proxy_ndp").stdout.strip() == "1"
    assert "PERMANENT" in host.ip("neigh", "show", "10.65.0.2", "dev", "cali2").stdout
    assert ping(wl1, "10.65.0.2", count=2)
    assert ping(wl2, "10.65.0.1")
    assert ping(wl1, "fd00::2", count=2)
    assert ping(wl2, "fd00::1")


def test_removing_endpoint_removes_its_routes(netns, host, felix):
    wl1, mac1 = add_workload(netns, host, 1)
    _, mac2 = add_workload(netns, host, 2)
    felix.send(endpoint(1, mac1), endpoint(2, mac2))
    wait_for(lambda: len(our_routes(host)) == 2)
    assert ping(wl1, "10.65.0.2")
    felix.send(remove(2))
    wait_for(lambda: our_routes(host) == {"10.65.0.1@cali1"})
    assert our_routes(host, "-6") == {"fd00::1@cali1"}
    assert "10.65.0.2" not in host.ip("neigh", "show", "dev", "cali2").stdout
    assert not ping(wl1, "10.65.0.2", timeout=1)


def test_interface_created_after_endpoint_is_programmed_within_a_second(netns, host, felix):
    felix.send(endpoint(3))
    time.sleep(0.2)
    assert our_routes(host) == set()
    add_workload(netns, host, 3)
    took = wait_for(lambda: our_routes(host) == {"10.65.0.3@cali3"}, timeout=1.0)
    assert took < 1.0
    wait_for(lambda: host.run("sysctl", "-n", "net.ipv4.conf.cali3.rp_filter")
             .stdout.strip() == "1", timeout=1.0)


def test_oper_down_interface_loses_routes_until_up(netns, host, felix):
    wl1, mac1 = add_workload(netns, host, 1)
    felix.send(endpoint(1, mac1))
    wait_for(lambda: our_routes(host) == {"10.65.0.1@cali1"})
    wl1.ip("link", "set", "eth0", "down")  # host side stays admin up, loses carrier
    wait_for(lambda: our_routes(host) == set())
    wl1.ip("link", "set", "eth0", "up")
    wait_for(lambda: our_routes(host) == {"10.65.0.1@cali1"})
    assert our_routes(host, "-6") == {"fd00::1@cali1"}


def test_route_deleted_by_hand_comes_back_on_refresh(netns, host, felix):
    _, mac1 = add_workload(netns, host, 1)
    felix.send(m.ConfigUpdate({"routeRefreshInterval": "1s"}), endpoint(1, mac1))
    wait_for(lambda: our_routes(host) == {"10.65.0.1@cali1"})
    host.ip("route", "del", "10.65.0.1/32", "dev", "cali1")
    host.ip("neigh", "del", "10.65.0.1", "dev", "cali1")
    host.run("sysctl", "-qw", "net.ipv4.conf.cali1.proxy_arp=0")
    wait_for(lambda: our_routes(host) == {"10.65.0.1@cali1"}, timeout=3)
    wait_for(lambda: "PERMANENT" in host.ip("neigh", "show", "10.65.0.1", "dev", "cali1").stdout)
    wait_for(lambda: host.run("sysctl", "-n", "net.ipv4.conf.cali1.proxy_arp")
             .stdout.strip() == "1")


def test_stray_route_of_ours_is_removed_and_other_protocols_untouched(netns, host, felix):
    _, mac1 = add_workload(netns, host, 1)
    host.ip("route", "add", "10.65.0.99/32", "dev", "cali1", "proto", str(PROTO))
    host.ip("route", "add", "10.65.0.50/32", "dev", "cali1", "proto", "bird")
    host.ip("route", "add", "10.99.0.0/24", "dev", "cali1", "proto", "static")
    host.ip("route", "add", "10.65.0.1/32", "dev", "eth0", "proto", "static", "metric", "5")
    felix.resync()  # a restarted Felix finds the stray at its first read-back
    felix.send(endpoint(1, mac1))
    wait_for(lambda: our_routes(host) == {"10.65.0.1@cali1"})
    felix.send(remove(1))
    wait_for(lambda: our_routes(host) == set())
    felix.resync()
    time.sleep(0.3)
    others = host.ip("route", "show").stdout
    assert "10.65.0.50 dev cali1 proto bird" in others
    assert "10.99.0.0/24 dev cali1 proto static" in others
    assert "10.65.0.1 dev eth0 proto static scope link metric 5" in others
