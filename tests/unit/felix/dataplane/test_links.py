"""LinkTable change detection and the IP-in-IP manager against a fake kernel."""

from __future__ import annotations

from calico.felix import messages as m
from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.links import LinkTable, is_workload_interface
from calico.felix.dataplane.netlink import Link
from tests.unit.felix.dataplane.test_routes_fake_kernel import FakeKernel


def test_link_table_reports_only_meaningful_changes():
    table = LinkTable()
    assert table.update(Link(5, "cali1", True))
    assert not table.update(Link(5, "cali1", True, mtu=9000))  # MTU alone: no change
    assert table.update(Link(5, "cali1", False))
    assert table.update(Link(6, "cali1", False))  # re-created under the same name
    assert not table.remove("cali1", index=5)  # a stale delete for the old index
    assert table.name_of(6) == "cali1"
    assert table.replace_all([Link(7, "cali2", True)]) == {"cali1", "cali2"}


def test_workload_prefixes():
    assert is_workload_interface("cali12345", ("cali", "tap"))
    assert is_workload_interface("tap0f0e", ("cali", "tap"))
    assert not is_workload_interface("eth0", ("cali", "tap"))
    assert not is_workload_interface("eth0", ("",))


def pool(mode: str = "Always", cidr: str = "10.65.0.0/16", disabled: bool = False):
    return m.IPAMPoolUpdate(id="p1", cidr=cidr, ipip_mode=mode, disabled=disabled)


def run(kernel: FakeKernel, *msgs) -> HostNetworkManager:
    hn = HostNetworkManager(kernel, "host1")
    for msg in msgs:
        hn.on_message(msg)
    hn.apply()
    return hn


def test_ipip_device_with_default_mtu_and_tunnel_address():
    kernel = FakeKernel()
    run(kernel, m.HostMetadataUpdate("host1", "192.168.0.10/24"),
        m.ConfigUpdate({"IpInIpTunnelAddr": "10.65.3.1"}), pool())
    tunl = next(ln for ln in kernel.links() if ln.name == "tunl0")
    assert tunl.mtu == 1480 and tunl.up
    assert kernel.addresses(tunl.index) == [(tunl.index, "10.65.3.1/32")]


def test_ipip_mtu_follows_fabric_or_config():
    kernel = FakeKernel()
    kernel.add_link("eth1", mtu=9000)
    kernel.addrs.add((kernel.index("eth1"), "172.16.0.5/24"))
    run(kernel, m.HostMetadataUpdate("host1", "172.16.0.5/24"), pool("CrossSubnet"))
    assert next(ln for ln in kernel.links() if ln.name == "tunl0").mtu == 8980
    run(kernel, m.ConfigUpdate({"ipipMTU": "1400"}), pool())
    assert next(ln for ln in kernel.links() if ln.name == "tunl0").mtu == 1400


def test_ipip_not_wanted_removes_address():
    kernel = FakeKernel()
    hn = run(kernel, m.ConfigUpdate({"IpInIpTunnelAddr": "10.65.3.1"}), pool())
    hn.on_message(pool(mode="Never"))
    hn.apply()
    tunl = next(ln for ln in kernel.links() if ln.name == "tunl0")
    assert kernel.addresses(tunl.index) == []
    assert not run(FakeKernel(), pool(disabled=True)).ipip.enabled()
    assert not run(FakeKernel(), pool(cidr="fd00::/64")).ipip.enabled()


def test_ipip_unsupported_kernel_is_reported_not_raised():
    kernel = FakeKernel()
    kernel.ipip_supported = False
    hn = run(kernel, pool())
    assert "Operation not supported" in hn.ipip.error
