"""DHCP in full, end to end: openstacksdk -> a real Neutron (with the `dns` extension) and our
driver -> calico-dhcp-agent's dnsmasq on two lab hosts (IPv4 and IPv6) -> "VMs" that
configure themselves as a cloud image would: busybox udhcpc for IPv4, isc-dhcp-client's
`dhclient -6` for DHCPv6, the kernel's SLAAC (accept_ra=1) for SLAAC subnets.

Topology (dhcp_sdk.py): `dhcp-net` (MTU 1400, dns_domain example.org.; IPv4 subnet with two
DNS servers and a host route, DHCPv6-stateful subnet) holds vm1 (host1) and vm2 (host2);
`slaac-net` (SLAAC subnet) holds vm3 (host2), `stateless-net` (DHCPv6-stateless subnet) vm4
(host1). All in group `v6web`: IPv6 ICMP and TCP 22 in.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import require_programs, require_root
from tests.openstack.e2e_cloud import Cloud, cleanup_stale

pytestmark = [pytest.mark.root, pytest.mark.slow]

VMS = [{"name": "vm1", "host": "host1", "network": "dhcp", "ip": "10.65.0.10",
        "ip6": "fd00:65:0:1::10"},
       {"name": "vm2", "host": "host2", "network": "dhcp", "ip": "10.65.0.70",
        "ip6": "fd00:65:0:1::70"},
       {"name": "vm3", "host": "host2", "network": "slaac"},
       {"name": "vm4", "host": "host1", "network": "stateless"}]


def wait(cond, timeout: float, what: str, cloud: Cloud, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g}s\n{cloud.diagnostics()}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def cloud(neutron_venv, tmp_path_factory):
    require_root()
    require_programs("bird", "dnsmasq", "busybox", "dhclient", "ip", "nft", "ping")
    cleanup_stale()
    cloud = Cloud(neutron_venv, tmp_path_factory.mktemp("os-dhcp"),
                  neutron_extension_drivers="port_security,dns",
                  neutron_service_plugins="router")  # the dns extension needs it
    try:
        cloud.up(hosts=2, ipv6=True)
        cloud.topo = cloud.sdk("topology", json.dumps(VMS), script="dhcp_sdk.py")
        for vm in VMS:
            cloud.plug(vm["name"], vm["host"], cloud.topo["ports"][vm["name"]])
        yield cloud
    finally:
        cloud.down()


def subnet_records(cloud: Cloud) -> str:
    backend = cloud.lab.backend()
    try:
        kvs, _ = backend.list("/calico/dhcp/v2/")
    finally:
        backend.close()
    return "\n".join(f"{kv.key} {kv.value}" for kv in kvs)


def test_ipv4_lease_gives_mtu_dns_domain_and_host_routes(cloud):
    vm1 = cloud.vms["vm1"]
    lease = vm1.dhcp()
    dnsmasq = subprocess.run(["pgrep", "-a", "dnsmasq"], capture_output=True, text=True).stdout
    seen = f"lease {lease}\nsubnet records:\n{subnet_records(cloud)}\ndnsmasq:\n{dnsmasq}"
    assert lease["ip"] == "10.65.0.10" and lease["mask"] == "24", seen
    assert lease["router"] == "10.65.0.1", seen
    assert lease["mtu"] == "1400", seen
    assert lease["dns"].split() == ["192.0.2.53", "192.0.2.54"]
    assert lease["domain"] == "example.org"
    routes = "192.0.2.0/24 10.65.0.1 0.0.0.0/0 10.65.0.1"
    assert lease["staticroutes"] == routes and lease["msstaticroutes"] == routes
    # ... and what landed in the namespace.
    assert "mtu 1400" in vm1.ns.ip("link", "show", "eth0").stdout
    table = vm1.ns.ip("-4", "route", "show").stdout
    assert "192.0.2.0/24 via 10.65.0.1 dev eth0" in table
    assert "default via 10.65.0.1 dev eth0" in table
    cloud.vms["vm2"].dhcp()


def ra_default_route(vm) -> str:
    """The VM's IPv6 default route, learnt from the host's router advertisement."""
    return vm.ns.ip("-6", "route", "show", "default").stdout.strip()


def tap_link_local(cloud: Cloud, vm) -> str:
    out = cloud.host_ns(vm.host).ip("-6", "-o", "addr", "show", "dev", vm.tap, "scope",
                                    "link").stdout
    return out.split()[3].split("/")[0]


def test_dhcpv6_stateful_address_dns_and_domain(cloud):
    for name, ip6 in (("vm1", "fd00:65:0:1::10"), ("vm2", "fd00:65:0:1::70")):
        vm = cloud.vms[name]
        lease = vm.dhcp6()
        assert lease["new_ip6_address"] == ip6
        assert lease["new_dhcp6_name_servers"] == "fd00::53"
        assert lease["new_dhcp6_domain_search"] == "example.org."
        # (no SLAAC address beside it: a stateful subnet's prefix is not autonomous)
        assert wait(vm.global_v6, 10, f"{name}: its address past DAD", cloud) == [ip6]
        # The RA: the host's tap is the router; no on-link prefix. (Its MTU is checked on
        # vm3: here the DHCPv4 lease has already set eth0's MTU to 1400.)
        route = wait(lambda vm=vm: ra_default_route(vm), 90, f"{name}: an RA default route",
                     cloud)
        assert f"via {tap_link_local(cloud, vm)} dev eth0 proto ra" in route
        assert "fd00:65:0:1::/64" not in vm.ns.ip("-6", "route", "show").stdout


def test_slaac_address_from_the_hosts_router_advertisement(cloud):
    vm3 = cloud.vms["vm3"]
    want = cloud.topo["ports"]["vm3"]["ips"]
    assert len(want) == 1 and want[0].startswith("fd00:65:0:2:")  # Neutron's EUI-64
    assert wait(lambda: vm3.global_v6(), 90, "vm3: a SLAAC address", cloud) == want
    route = wait(lambda: ra_default_route(vm3), 30, "vm3: an RA default route", cloud)
    assert f"via {tap_link_local(cloud, vm3)} dev eth0 proto ra" in route
    # The RA's MTU option (vm3 has no DHCPv4: its link MTU is still 1500).
    assert "mtu 1500" in vm3.ns.ip("link", "show", "eth0").stdout
    assert vm3.ns.run("sysctl", "-n", "net.ipv6.conf.eth0.mtu").stdout.strip() == "1400"
    assert "fd00:65:0:2::/64" not in vm3.ns.ip("-6", "route", "show").stdout  # off-link


def test_dhcpv6_stateless_slaac_address_and_dhcpv6_information(cloud):
    vm4 = cloud.vms["vm4"]
    want = cloud.topo["ports"]["vm4"]["ips"]
    assert len(want) == 1 and want[0].startswith("fd00:65:0:3:")
    assert wait(vm4.global_v6, 90, "vm4: its SLAAC address", cloud) == want
    info = vm4.dhcp6(stateless=True)  # an information request: DNS, no address
    assert "new_ip6_address" not in info
    assert info["new_dhcp6_name_servers"] == "fd00::53"
    assert vm4.global_v6() == want


def test_ipv6_between_hosts_with_security_groups(cloud):
    vm1, vm2, vm3 = (cloud.vms[n] for n in ("vm1", "vm2", "vm3"))
    slaac_ip = cloud.topo["ports"]["vm3"]["ips"][0]
    for vm in cloud.vms.values():
        vm.serve(22, 8080)
    wait(lambda: vm1.pings("fd00:65:0:1::70"), 30, "vm1 (host1) -> vm2 (host2) ping6", cloud)
    assert vm2.pings("fd00:65:0:1::10"), "vm2 -> vm1 ping6"
    assert vm1.connects("fd00:65:0:1::70", 22), "TCP 22 over IPv6 is allowed by v6web"
    assert not vm1.connects("fd00:65:0:1::70", 8080), "TCP 8080 is not"
    wait(lambda: vm1.pings(slaac_ip), 30, "vm1 -> vm3 (SLAAC address, host2) ping6", cloud)
    assert vm1.connects(slaac_ip, 22) and not vm1.connects(slaac_ip, 8080)
    stateless_ip = cloud.topo["ports"]["vm4"]["ips"][0]
    wait(lambda: vm3.pings(stateless_ip), 30, "vm3 (host2) -> vm4 (host1) ping6", cloud)
    assert vm3.connects(stateless_ip, 22) and not vm3.connects(stateless_ip, 8080)
    # v6web allows no IPv4 in: the same port over IPv4 is dropped.
    assert not vm1.connects("10.65.0.70", 22)


def test_a_network_mtu_change_reaches_the_next_lease(cloud):
    cloud.sdk("set-mtu", cloud.topo["networks"]["dhcp"], "1300", script="dhcp_sdk.py")
    wait(lambda: subnet_records(cloud).count('"mtu":1300') == 2, 15,
         "both subnet records of dhcp-net carrying the new MTU", cloud)
    vm2 = cloud.vms["vm2"]

    def next_lease_has_it() -> bool:
        (cloud.dir / "vm2.lease").unlink(missing_ok=True)
        return vm2.dhcp().get("mtu") == "1300"
    # The agent restarts dnsmasq with the new MTU; the next lease carries it.
    wait(next_lease_has_it, 30, "a lease with MTU 1300", cloud)
    assert "mtu 1300" in vm2.ns.ip("link", "show", "eth0").stdout
