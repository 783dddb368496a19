"""A region end to end: `openstack_region = r1` in the driver's `[calico]` section, Felix's
`OpenstackRegion: r1` (FelixConfiguration `default`; each Felix restarts to take it) and the
DHCP agents' `--region r1`, on a lab with calico-node (Felix + BIRD) on two hosts.

Without the region agreeing everywhere, ports would never turn ACTIVE (Felix would report
where the driver does not look), VMs would get no lease (the agent would read another
namespace's endpoints) and policy would not select them. With it: ports ACTIVE from Felix's
reports under `/calico/felix/v2/region-r1/`, DHCP leases, and traffic allowed by the
security group between VMs on different hosts. Namespaces: the lab's and `cpt-<pid>-...`,
always deleted.
"""

from __future__ import annotations

import pytest

from calico.openstack import names
from tests.openstack.e2e_cloud import started, wait
from tests.openstack.harness import NeutronAPI

pytestmark = [pytest.mark.root, pytest.mark.slow]

REGION = names.Region("r1")
VMS = [{"name": "vm1", "host": "host1", "group": "web", "ip": "10.65.0.10"},
       {"name": "vm2", "host": "host2", "group": "web", "ip": "10.65.0.70"}]
WEP = f"/calico/resources/v3/projectcalico.org/workloadendpoints/{REGION.namespace}/"


@pytest.fixture(scope="module")
def cloud(neutron_venv, tmp_path_factory):
    with started(neutron_venv, tmp_path_factory.mktemp("os-region"), VMS,
                 region=REGION.name) as cloud:
        yield cloud


def test_ports_active_leases_and_traffic_in_the_region(cloud):
    api = NeutronAPI(cloud.neutron.url)
    ports = {vm["name"]: cloud.topo["ports"][vm["name"]]["id"] for vm in VMS}
    wait(lambda: all(api.get(f"/v2.0/ports/{p}")["port"]["status"] == "ACTIVE"
                     for p in ports.values()), 60,
         "both ports ACTIVE from Felix's reports in region r1", cloud)
    backend = cloud.lab.backend()
    try:
        assert len(backend.list(WEP)[0]) == 2
        assert backend.list(f"{REGION.felix_status_prefix}host1/workload/")[0]
        assert backend.get(REGION.subnet_key(cloud.topo["subnet"])) is not None
    finally:
        backend.close()
    for vm in VMS:
        lease = cloud.vms[vm["name"]].dhcp()
        assert lease["ip"] == vm["ip"] and lease["router"] == "10.65.0.1"
    vm1, vm2 = cloud.vms["vm1"], cloud.vms["vm2"]
    wait(lambda: vm1.pings("10.65.0.70"), 30, "vm1 (host1) -> vm2 (host2) ICMP", cloud)
    assert vm2.pings("10.65.0.10")
