"""Address spaces on a real Neutron (#19): two projects both use 10.0.0.0/24, with real
packets through Felix's translator, BIRD and calico-dhcp-agent on a two-host IPv6 lab.

The driver runs with `[calico] address_spaces = per_network`, so each project's network is
an AddressSpace. VMs: a1 (project a, host1, 10.0.0.5), b1 (project b, host1, 10.0.0.5),
a2 (a, host2, 10.0.0.6), b2 (b, host2, 10.0.0.6). Checked:
- each VM gets its fixed IP by DHCP (udhcpc through the translator, which passes DHCP);
- a1 reaches 10.0.0.6 and is answered by a2 (a TCP server that replies with its VM's name),
  b1 by b2; so nothing crosses between the projects;
- the driver wrote one space per network, distinct translation prefixes.
Namespaces: the lab's and `cpt-<pid>-...`, always deleted.
"""

from __future__ import annotations

import json
import sys

import pytest

from calico.datastore.client import ResourceClient
from tests.openstack.e2e_cloud import Cloud, cleanup_stale, wait

pytestmark = [pytest.mark.root, pytest.mark.slow]

VMS = [{"name": "a1", "host": "host1", "project": "a", "ip": "10.0.0.5"},
       {"name": "b1", "host": "host1", "project": "b", "ip": "10.0.0.5"},
       {"name": "a2", "host": "host2", "project": "a", "ip": "10.0.0.6"},
       {"name": "b2", "host": "host2", "project": "b", "ip": "10.0.0.6"}]
PORT = 7000

NAMED_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[2].encode() + b"\\n"); c.close()
"""

ASK = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as c:
        print(c.recv(16).decode().strip())
except OSError as err:
    print("error", err)
"""


@pytest.fixture(scope="module")
def cloud(neutron_venv, tmp_path_factory):
    from tests.conftest import require_programs, require_root
    from tests.openstack.e2e_cloud import PROGRAMS

    require_root()
    require_programs(*PROGRAMS)
    cleanup_stale()
    cloud = Cloud(neutron_venv, tmp_path_factory.mktemp("os-spaces"),
                  calico_options={"address_spaces": "per_network"})
    try:
        cloud.up(hosts=2, ipv6=True)
        cloud.topo = cloud.sdk("topology", json.dumps(VMS), script="spaces_sdk.py")
        for vm in VMS:
            cloud.plug(vm["name"], vm["host"], cloud.topo["ports"][vm["name"]])
        yield cloud
    finally:
        cloud.down()


def answer(cloud: Cloud, name: str, ip: str) -> str:
    return cloud.vms[name].ns.run(sys.executable, "-c", ASK, ip, str(PORT),
                                  timeout=20).stdout.strip()


def test_two_projects_with_one_subnet(cloud):
    backend = cloud.lab.backend()
    try:
        spaces = {s.name: s.spec.translationPrefix
                  for s in ResourceClient(backend).list("AddressSpace").items}
    finally:
        backend.close()
    nets = cloud.topo["networks"]
    assert sorted(spaces) == sorted(f"openstack-{nets[p]}" for p in ("a", "b"))
    assert len(set(spaces.values())) == 2

    for vm in VMS:
        lease = cloud.vms[vm["name"]].dhcp(timeout=60)
        assert (lease["ip"], lease["router"]) == (vm["ip"], "10.0.0.1"), vm["name"]
    for name in ("a2", "b2"):
        server = cloud.vms[name].ns.popen(sys.executable, "-u", "-c", NAMED_SERVER,
                                          str(PORT), name, stdout=-1, text=True)
        cloud.vms[name].server = server
        assert server.stdout is not None and server.stdout.readline()
    for src, dst in (("a1", "a2"), ("b1", "b2")):
        wait(lambda src=src, dst=dst: answer(cloud, src, "10.0.0.6") == dst, 60,
             f"{src} -> 10.0.0.6 answered by {dst}", cloud)
    # Both again, now that both paths are up: each is still answered by its own project.
    assert (answer(cloud, "a1", "10.0.0.6"), answer(cloud, "b1", "10.0.0.6")) == ("a2", "b2")
