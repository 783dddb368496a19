"""SysctlManager (through HostNetworkManager) against a fake kernel."""

from __future__ import annotations

import pytest

from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.sysctls import interface_sysctls
from tests.unit.felix.dataplane.test_routes import Clock, feed
from tests.unit.felix.dataplane.test_routes_fake_kernel import FakeKernel


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hn(kernel: FakeKernel, clock: Clock) -> HostNetworkManager:
    return HostNetworkManager(kernel, "host1", clock=clock)


def test_sysctls_for_workload_interfaces_only(kernel, hn):
    kernel.add_link("cali1")
    kernel.add_link("tapabc")
    kernel.add_link("docker0")
    kernel.add_link("cali2", up=False)
    feed(hn)
    assert kernel.sysctls["net/ipv4/ip_forward"] == "1"
    assert kernel.sysctls["net/ipv6/conf/all/forwarding"] == "1"
    for name in ("cali1", "tapabc"):
        assert kernel.sysctls[f"net/ipv4/conf/{name}/rp_filter"] == "1"
        assert kernel.sysctls[f"net/ipv4/neigh/{name}/proxy_delay"] == "0"
        assert kernel.sysctls[f"net/ipv6/conf/{name}/proxy_ndp"] == "1"
        assert kernel.sysctls[f"net/ipv6/conf/{name}/accept_ra"] == "0"
    assert kernel.sysctls["net/ipv4/conf/docker0/proxy_arp"] == "0"
    assert kernel.sysctls["net/ipv4/conf/cali2/proxy_arp"] == "0"  # down: later
    hn.notify_link(kernel.set_up("cali2", True), True)
    hn.apply()
    assert kernel.sysctls["net/ipv4/conf/cali2/proxy_arp"] == "1"


def test_sysctl_resync_rewrites_only_drift(kernel, hn, clock):
    for i in range(5):
        kernel.add_link(f"cali{i}")
    feed(hn)
    writes = kernel.sysctl_writes
    kernel.sysctls["net/ipv4/conf/cali3/rp_filter"] = "0"
    clock.now += 91
    feed(hn)
    assert kernel.sysctls["net/ipv4/conf/cali3/rp_filter"] == "1"
    assert kernel.sysctl_writes == writes + 1


def test_first_apply_writes_each_drifted_sysctl_once(kernel, hn):
    """Link events and the first resync both see every interface: the resync's read-back
    and fix must leave nothing for a second pass of writes."""
    for i in range(5):
        kernel.add_link(f"cali{i}")
    for link in kernel.links():
        hn.notify_link(link, True)
    wanted = {"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1"}
    for i in range(5):
        wanted.update(interface_sysctls(f"cali{i}"))
    drifted = sum(kernel.sysctls.get(k) != v for k, v in wanted.items())
    assert drifted > 5 * 3
    before = kernel.sysctl_writes
    feed(hn)
    assert kernel.sysctl_writes - before == drifted
    assert all(kernel.sysctls[k] == v for k, v in wanted.items())


def test_address_space_endpoint_interface_gets_rp_filter_0():
    from calico.felix import messages as m
    from calico.felix.dataplane.links import LinkTable
    from calico.felix.dataplane.netlink import Link
    from calico.felix.dataplane.sysctls import SysctlManager

    class Kernel:
        def __init__(self):
            self.written = {}

        def write_sysctls(self, values):
            self.written.update(values)
            return []

    kernel, links = Kernel(), LinkTable()
    mgr = SysctlManager(kernel, links)
    link = Link(3, "calia1", True)
    links.update(link)
    mgr.on_link_change("calia1", None, link)
    mgr.apply()
    assert kernel.written["net/ipv4/conf/calia1/rp_filter"] == "1"
    ep = m.WorkloadEndpointUpdate(m.WorkloadEndpointID("ns", "a1"), "calia1",
                                  address_space="blue")
    mgr.on_message(ep)
    mgr.apply()
    assert kernel.written["net/ipv4/conf/calia1/rp_filter"] == "0"
    mgr.on_message(m.WorkloadEndpointRemove(ep.id))
    mgr.apply()
    assert kernel.written["net/ipv4/conf/calia1/rp_filter"] == "1"
