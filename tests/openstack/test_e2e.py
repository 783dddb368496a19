"""Acceptance of the OpenStack integration, end to end: openstacksdk -> a real Neutron with our
ML2 driver -> the datastore -> calico-node (Felix + BIRD) on two lab hosts -> packets between
"VMs" that got their addresses from calico-dhcp-agent's dnsmasq.

Topology (e2e_sdk.py, e2e_cloud.py): network + subnet 10.65.0.0/24 (inside the lab's pool);
groups `web` (ICMP echo and TCP 22 from `web`) and `other` (nothing in); ports
vm1 (host1, web), vm2 (host2, web), vm3 (host1, other). Each VM listens on TCP 22 and 8080.
Everything is torn down after the module, also when a test or the set-up fails. Stage
timings are printed: run with -s to see them.
"""

from __future__ import annotations

import json
import time

import pytest

from calico.datastore.client import ResourceClient
from calico.ipam import IPAM
from calico.openstack import names
from tests.openstack.e2e_cloud import Cloud, started, wait

pytestmark = [pytest.mark.root, pytest.mark.slow]

VMS = [{"name": "vm1", "host": "host1", "group": "web", "ip": "10.65.0.10"},
       {"name": "vm2", "host": "host2", "group": "web", "ip": "10.65.0.70"},
       {"name": "vm3", "host": "host1", "group": "other", "ip": "10.65.0.20"}]
WEP = "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def cloud(neutron_venv, tmp_path_factory):
    begun = time.monotonic()
    try:
        with started(neutron_venv, tmp_path_factory.mktemp("os-e2e"), VMS, TIMES) as cloud:
            yield cloud
    finally:
        TIMES["total, teardown included"] = time.monotonic() - begun
        print("\nOpenStack e2e timings:\n" + "\n".join(
            f"  {k}: {v:.2f}s" for k, v in TIMES.items()))


def endpoints(cloud: Cloud) -> dict[str, dict]:
    backend = cloud.lab.backend()
    try:
        kvs, _ = backend.list(WEP)
    finally:
        backend.close()
    return {json.loads(kv.value)["spec"]["endpoint"]: json.loads(kv.value) for kv in kvs}


def port(cloud: Cloud, name: str) -> dict:
    from tests.openstack.harness import NeutronAPI

    return NeutronAPI(cloud.neutron.url).get(f"/v2.0/ports/{cloud.topo['ports'][name]['id']}"
                                             )["port"]


def host_route(cloud: Cloud, host: str, ip: str) -> str:
    return cloud.host_ns(host).ip("route", "show", f"{ip}/32").stdout.strip()


def test_ports_bound_as_taps_and_turn_active(cloud):
    for vm in VMS:
        p = port(cloud, vm["name"])
        assert p["binding:vif_type"] == "tap" and p["binding:host_id"] == vm["host"]
    t = wait(lambda: all(port(cloud, vm["name"])["status"] == "ACTIVE" for vm in VMS), 30,
             "every port ACTIVE (Felix endpoint report -> driver status relay)", cloud,
             interval=0.2)
    TIMES["taps plugged -> all 3 ports ACTIVE"] = t
    # The driver told Felix about taps (its default prefix is `cali` only) and to report.
    backend = cloud.lab.backend()
    try:
        felix = ResourceClient(backend).get("FelixConfiguration", "default").spec
    finally:
        backend.close()
    assert felix.endpointReportingEnabled and "tap" in felix.interfacePrefix.split(",")
    eps = endpoints(cloud)
    for vm in VMS:
        ep = eps[cloud.topo["ports"][vm["name"]]["id"]]
        assert ep["spec"]["node"] == vm["host"]
        assert cloud.vms[vm["name"]].tap in host_route(cloud, vm["host"], vm["ip"])


def test_vms_get_their_addresses_over_dhcp(cloud):
    t0 = time.monotonic()
    for vm in VMS:
        lease = cloud.vms[vm["name"]].dhcp()
        assert lease["ip"] == vm["ip"] and lease["mask"] == "24"
        assert lease["router"] == "10.65.0.1"
    TIMES["DHCP (udhcpc) for 3 VMs"] = time.monotonic() - t0
    for vm in cloud.vms.values():
        vm.serve(22, 8080)


def test_same_group_reaches_allowed_ports_only(cloud):
    vm1, vm2 = cloud.vms["vm1"], cloud.vms["vm2"]
    t = wait(lambda: vm1.connects("10.65.0.70", 22), 20,
             "vm1 (host1) -> vm2 (host2) TCP 22, same group", cloud, interval=0.2)
    TIMES["first cross-host TCP 22 after DHCP"] = t
    assert vm2.connects("10.65.0.10", 22), "vm2 -> vm1 TCP 22"
    assert vm1.pings("10.65.0.70") and vm2.pings("10.65.0.10"), "ICMP within group web"
    assert not vm1.connects("10.65.0.70", 8080), "TCP 8080 is not allowed by group web"
    assert not vm2.connects("10.65.0.10", 8080)


def test_other_group_blocked_until_remote_group_rule(cloud):
    vm1, vm3 = cloud.vms["vm1"], cloud.vms["vm3"]
    web, other = cloud.topo["groups"]["web"], cloud.topo["groups"]["other"]
    assert not vm3.connects("10.65.0.10", 22), "vm3 (other) -> vm1 (web) TCP 22"
    assert not vm3.pings("10.65.0.10"), "vm3 (other) -> vm1 (web) ICMP"
    assert not vm3.connects("10.65.0.70", 22), "vm3 (other) -> vm2 (web) TCP 22"
    t0 = time.monotonic()
    cloud.sdk("allow", web, other, "22")
    t = wait(lambda: vm3.connects("10.65.0.10", 22, timeout=0.5), 20,
             "vm3 -> vm1 TCP 22 after the remote_group_id rule", cloud)
    TIMES["remote_group_id rule -> traffic allowed"] = time.monotonic() - t0
    assert t < 20
    assert vm3.connects("10.65.0.70", 22), "vm3 -> vm2 (other host) TCP 22"
    assert not vm3.connects("10.65.0.10", 8080), "the new rule opened only TCP 22"
    assert not vm3.pings("10.65.0.10"), "... and not ICMP"
    # Group `other` has no ingress rule: nothing reaches vm3, its own group's included.
    assert not vm1.connects("10.65.0.20", 22)


def test_deleting_a_port_removes_endpoint_route_and_address(cloud):
    vm2 = cloud.topo["ports"]["vm2"]
    backend = cloud.lab.backend()
    try:
        assigned = IPAM(backend, "host2").get_assignment("10.65.0.70")
        assert assigned is not None and assigned.handle_id == vm2["id"]
        t0 = time.monotonic()
        cloud.sdk("delete-port", vm2["id"])
        wait(lambda: vm2["id"] not in endpoints(cloud), 15, "vm2's endpoint deleted", cloud)
        # The tap is still there (Nova unplugs it later): Felix must drop the route anyway.
        wait(lambda: not host_route(cloud, "host2", "10.65.0.70"), 15,
             "host2's route to vm2 removed", cloud)
        TIMES["port delete -> endpoint and route gone"] = time.monotonic() - t0
        assert IPAM(backend, "host2").get_assignment("10.65.0.70") is None
        assert IPAM(backend, "host1").get_assignment("10.65.0.10") is not None
    finally:
        backend.close()
    assert not cloud.vms["vm1"].connects("10.65.0.70", 22, timeout=0.5)
    assert names.tap_name(vm2["id"]) in cloud.host_ns("host2").ip("link", "show").stdout
