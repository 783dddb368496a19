"""Two Neutron networks with the same subnet and gateway on one host (address spaces, #19):
calico-dhcp-agent's two dnsmasqs and `ns-` interfaces (both holding 10.0.0.1) do not
collide, and each VM gets its own network's lease for the same address 10.0.0.5.

Namespaces made by the test: `host` (both taps, the agent, dnsmasq) and one per VM. As on a
host whose endpoints are in address spaces, the host has no IPv4 route to either VM (Felix
routes only the translated IPv6 address): dnsmasq's replies leave by the tap they answer.
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
from calico.openstack.spaces import endpoint_in_space, space_doc
from tests.conftest import require_programs, require_root
from tests.fixtures.netns import netns_set

SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
env | grep -E '^(ip|subnet|router|dns|mask|domain)=' > {out}
"""
VMS = {  # name: (port id, MAC, network id, DNS server: tells the networks' leases apart)
    "a": ("5e0a1c2b-3d4e-4f50-8a6b-7c8d9e0f1a2b", "fa:16:3e:12:34:56",
          "6ccfacab-1112-4074-bcf7-836737f5eb21", "192.0.2.10"),
    "b": ("7f1b2d3c-4e5f-4061-9b7c-8d9e0f1a2b3c", "fa:16:3e:65:43:21",
          "7ddfacab-2223-4185-bcf7-947848f6fc32", "192.0.2.20"),
}


def _write(store: LocalBackend) -> None:
    client = ResourceClient(store)
    for vm, (port_id, mac, net, dns) in VMS.items():
        store.put(names.subnet_key(f"sub-{vm}"), json.dumps({
            "network_id": net, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
            "host_routes": [], "dns_servers": [dns]}))
        client.create(space_doc(names.NO_REGION, net))
        port = {"id": port_id, "device_id": f"vm-{vm}", "device_owner": "compute:nova",
                "binding:host_id": "host-a", "mac_address": mac, "network_id": net,
                "project_id": f"project-{vm}", "security_groups": [],
                "fixed_ips": [{"subnet_id": f"sub-{vm}", "ip_address": "10.0.0.5"}]}
        doc = endpoint_resource(port, {f"sub-{vm}": "10.0.0.1"})
        client.create(endpoint_in_space(doc, f"openstack-{net}"))


def _lease(vm_ns, script, out) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not out.exists():
        vm_ns.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "3", "-T", "1",
                  "-s", str(script), check=False, timeout=20)
        time.sleep(0.5)
    assert out.exists(), "no DHCP lease"
    return dict(line.split("=", 1) for line in out.read_text().split())


def test_two_networks_with_one_subnet_on_one_host(tmp_path):
    require_root()
    require_programs("dnsmasq", "busybox", "ip")
    db = str(tmp_path / "calico.db")
    store = LocalBackend(db)
    _write(store)
    env = {**os.environ, "DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": db}
    state = tempfile.mkdtemp(prefix="calico-dhcp-")
    os.chmod(state, 0o755)  # dnsmasq drops to user nobody
    with netns_set() as nets:
        host = nets.add("dhcpovh")
        vms = {}
        for vm, (port_id, mac, _net, _dns) in VMS.items():
            vms[vm] = nets.add(f"dhcpov{vm}")
            tap = names.tap_name(port_id)
            nets.veth(host, tap, vms[vm], "eth0")
            vms[vm].ip("link", "set", "eth0", "address", mac)
            host.sysctl(f"net.ipv4.conf.{tap}.proxy_arp", "1")
        agent = host.popen(sys.executable, "-m", "calico.openstack.dhcp.agent",
                           "--host", "host-a", "--state-dir", state, env=env,
                           stdout=subprocess.DEVNULL,
                           stderr=open(tmp_path / "agent.log", "w"))
        try:
            for vm, (_port, _mac, _net, dns) in VMS.items():
                script = tmp_path / f"udhcpc-{vm}.sh"
                out = tmp_path / f"lease-{vm}.env"
                script.write_text(SCRIPT.format(out=out))
                script.chmod(0o755)
                try:
                    lease = _lease(vms[vm], script, out)
                except AssertionError:
                    raise AssertionError(f"VM {vm}: no lease; agent log:\n"
                                         + (tmp_path / "agent.log").read_text()) from None
                assert (lease["ip"], lease["router"], lease["dns"]) == (
                    "10.0.0.5", "10.0.0.1", dns), f"VM {vm} got another network's lease"
            holders = {line.split()[1] for line in host.ip(
                "-4", "-o", "addr", "show").stdout.splitlines() if " 10.0.0.1/32 " in line}
            assert holders == {f"ns-{net[:11]}" for _p, _m, net, _d in VMS.values()}
        finally:
            agent.terminate()
            agent.wait(10)
            shutil.rmtree(state, ignore_errors=True)
    store.close()
