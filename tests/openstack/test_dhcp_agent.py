"""calico-dhcp-agent with a real dnsmasq: a "VM" namespace gets its address over its tap.

Two namespaces made by the test: `host` (the compute host: the tap, the agent, dnsmasq) and
`vm` (the VM: the tap's peer as eth0 with the port's MAC, busybox udhcpc). The datastore
holds what the Neutron driver would write: the subnet record and the VM's endpoint.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.openstack import names
from calico.openstack.endpoints import endpoint_resource
from tests.conftest import require_programs, require_root
from tests.fixtures.netns import netns_set, ping

PORT = "5e0a1c2b-3d4e-4f50-8a6b-7c8d9e0f1a2b"
MAC = "fa:16:3e:12:34:56"
NET = "6ccfacab-1112-4074-bcf7-836737f5eb21"

SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
env | grep -E '^(ip|subnet|router|dns|mask)=' > {out}
ip addr add $ip/$mask dev $interface
ip route add default via $router dev $interface
"""


def test_vm_gets_its_address_over_the_tap(tmp_path):
    require_root()
    require_programs("dnsmasq", "busybox", "ip")
    db = str(tmp_path / "calico.db")
    store = LocalBackend(db)
    store.put(names.subnet_key("sub-1"), json.dumps({
        "network_id": NET, "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
        "host_routes": [], "dns_servers": ["192.0.2.53"]}))
    port = {"id": PORT, "device_id": "vm-1", "device_owner": "compute:nova",
            "binding:host_id": "host-a", "mac_address": MAC, "network_id": NET,
            "project_id": "p", "security_groups": [],
            "fixed_ips": [{"subnet_id": "sub-1", "ip_address": "10.65.0.5"}]}
    ResourceClient(store).create(endpoint_resource(port, {"sub-1": "10.65.0.1"}))
    tap = names.tap_name(PORT)
    out = tmp_path / "lease.env"
    script = tmp_path / "udhcpc.sh"
    script.write_text(SCRIPT.format(out=out))
    script.chmod(0o755)
    env = {**os.environ, "DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": db}
    # dnsmasq drops to user nobody: its state dir must be reachable (pytest's are 0700).
    state = tempfile.mkdtemp(prefix="calico-dhcp-")
    os.chmod(state, 0o755)
    with netns_set() as nets:
        host, vm = nets.add("dhcphost"), nets.add("dhcpvm")
        nets.veth(host, tap, vm, "eth0")
        vm.ip("link", "set", "eth0", "address", MAC)
        host.sysctl(f"net.ipv4.conf.{tap}.proxy_arp", "1")  # what Felix sets up for a tap
        host.ip("route", "add", "10.65.0.5/32", "dev", tap)
        agent = host.popen(sys.executable, "-m", "calico.openstack.dhcp.agent",
                           "--host", "host-a", "--state-dir", state,
                           env=env, stdout=subprocess.DEVNULL,
                           stderr=open(tmp_path / "agent.log", "w"))
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                res = vm.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "3",
                             "-T", "1", "-s", str(script), check=False, timeout=20)
                if res.returncode == 0 and out.exists():
                    break
                time.sleep(0.5)
            log = (tmp_path / "agent.log").read_text()
            assert out.exists(), f"no DHCP lease; agent log:\n{log}"
            lease = dict(line.split("=", 1) for line in out.read_text().split())
            assert lease["ip"] == "10.65.0.5"
            assert lease["mask"] == "24" and lease["subnet"] == "255.255.255.0"
            assert lease["router"] == "10.65.0.1"
            assert lease["dns"] == "192.0.2.53"
            assert ping(vm, "10.65.0.1"), "the gateway is not reachable from the VM"
        finally:
            agent.terminate()
            agent.wait(10)
            shutil.rmtree(state, ignore_errors=True)
    store.close()
