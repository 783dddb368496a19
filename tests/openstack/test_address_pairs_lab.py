"""Allowed address pairs on a lab, with real packets: ports made and updated through
openstacksdk against the real Neutron with our driver, Felix + BIRD on two hosts.

vmb (host2) has two allowed address pairs: a single address (10.65.0.100, a VIP) and a
CIDR (10.65.2.0/28, a range behind a router VM). Checked:
- vma (host1) reaches both pairs' addresses on vmb: host2 routes them to vmb's tap and BIRD
  carries the routes to host1;
- vmb may send from its pairs' addresses (vma's UDP listener sees them), while a source in
  no pair (10.65.0.200) is still dropped as a spoof: it is sent *before* a good datagram on
  the same path, so once the good one has arrived the spoofed one was dropped, not late;
- replacing the pairs (10.65.0.101 only) removes the old routes and sources and routes the
  new address (the first batch in which the new source arrives has none of the old ones);
- DHCP still gives vmb its fixed IP only.
vma's group allows UDP 5000 from all of 10.65.0.0/16, so only anti-spoofing can drop the
spoofed source. Namespaces: the lab's and `cpt-<pid>-...`, always deleted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from tests.openstack.e2e_cloud import VM, Cloud, started, wait

pytestmark = [pytest.mark.root, pytest.mark.slow]

VMS = [{"name": "vma", "host": "host1", "group": "web", "ip": "10.65.0.10"},
       {"name": "vmb", "host": "host2", "group": "web", "ip": "10.65.0.20"}]
VIP, RANGE, IN_RANGE, NEW_VIP, SPOOF = ("10.65.0.100", "10.65.2.0/28", "10.65.2.5",
                                        "10.65.0.101", "10.65.0.200")
UDP_PORT = 5000

LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("listening", flush=True)
while True:
    data, (src, _) = s.recvfrom(64)
    print(src, data.decode(), flush=True)
"""

SENDER = """
import socket, sys
dst, port, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for src in sys.argv[4:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.sendto(tag.encode(), (dst, port))
    s.close()
"""


@pytest.fixture(scope="module")
def cloud(neutron_venv, tmp_path_factory):
    with started(neutron_venv, tmp_path_factory.mktemp("os-pairs"), VMS) as cloud:
        for vm in cloud.vms.values():
            vm.dhcp()
        yield cloud


def routes(cloud: Cloud, host: str) -> str:
    return cloud.host_ns(host).ip("route", "show").stdout


class Listener:
    """vma's UDP listener: (source address, batch tag) of every datagram it receives."""

    def __init__(self, vm: VM) -> None:
        self.proc = vm.ns.popen(sys.executable, "-u", "-c", LISTENER, str(UDP_PORT),
                                stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline()
        self.seen: list[tuple[str, str]] = []
        self.batches = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            src, tag = line.split()
            self.seen.append((src, tag))

    def batch_with(self, src: str, sender: VM, dst: str, sources: tuple[str, ...],
                   cloud: Cloud) -> set[str]:
        """Sends `sources` (in order, one batch) until a batch from `src` arrives; returns
        that batch's sources. A source sent before `src` and missing was dropped: the
        datagrams of a batch take one path, in order."""
        assert src == sources[-1]
        deadline = time.monotonic() + 45
        while True:
            self.batches += 1
            tag = f"b{self.batches}"
            sender.ns.run(sys.executable, "-c", SENDER, dst, str(UDP_PORT), tag, *sources,
                          timeout=20)
            time.sleep(0.3)  # pacing only: a batch arriving later is still read below
            batch = {s for s, t in list(self.seen) if t == tag}
            if src in batch:
                return batch
            if time.monotonic() > deadline:
                pytest.fail(f"no datagram from {src}: {self.seen}\n{cloud.diagnostics()}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def test_allowed_address_pairs_routed_and_policed(cloud):
    vma, vmb = cloud.vms["vma"], cloud.vms["vmb"]
    assert vmb.lease["ip"] == "10.65.0.20"  # DHCP serves the fixed IP, never a pair
    port_b = cloud.topo["ports"]["vmb"]["id"]
    cloud.sdk("allow-prefix", cloud.topo["groups"]["web"], "10.65.0.0/16", str(UDP_PORT))
    for addr in (VIP, IN_RANGE, NEW_VIP, SPOOF):  # the VM holds every address it sends from
        vmb.ns.ip("addr", "add", f"{addr}/32", "dev", "eth0")
    assert cloud.sdk("pairs", port_b, json.dumps([VIP, RANGE]))["pairs"] == [VIP, RANGE]

    wait(lambda: f"{VIP} dev {vmb.tap}" in routes(cloud, "host2")
         and f"{RANGE} dev {vmb.tap}" in routes(cloud, "host2"), 45,
         "host2 routes both pairs to vmb's tap", cloud)
    wait(lambda: vma.pings(VIP), 45, "vma (host1) -> vmb's VIP", cloud)
    wait(lambda: vma.pings(IN_RANGE), 45, "vma (host1) -> an address in vmb's CIDR pair",
         cloud)

    listener = Listener(vma)
    try:
        ip_a = vma.lease["ip"]
        batch = listener.batch_with(IN_RANGE, vmb, ip_a, (SPOOF, VIP, IN_RANGE), cloud)
        assert batch == {VIP, IN_RANGE}, batch

        # Replace the pairs: the old ones lose their routes and their source rights.
        assert cloud.sdk("pairs", port_b, json.dumps([NEW_VIP]))["pairs"] == [NEW_VIP]
        wait(lambda: f"{NEW_VIP} dev {vmb.tap}" in routes(cloud, "host2")
             and f"{VIP} dev" not in routes(cloud, "host2")
             and RANGE not in routes(cloud, "host2"), 45,
             "host2 routes the new pair only", cloud)
        wait(lambda: vma.pings(NEW_VIP), 45, "vma (host1) -> vmb's new VIP", cloud)
        batch = listener.batch_with(NEW_VIP, vmb, ip_a, (VIP, IN_RANGE, SPOOF, NEW_VIP), cloud)
        assert batch == {NEW_VIP}, batch
        assert SPOOF not in {s for s, _ in listener.seen}, listener.seen
    finally:
        listener.close()
