"""Live migration on a lab, with real packets: Nova's flow through openstacksdk against the
real Neutron with our driver, Felix + BIRD on two hosts, and a 10 ms ping measuring the gap.

vmc (the client, host1) pings vmm (host1) every 10 ms while vmm migrates to host2:
1. pre-migration: `migrating_to: host2` in vmm's binding profile (cloud_sdk.py
   migrate-start); "libvirt" creates the destination's tap on host2 with the VM paused (its
   eth0 up, no address yet). The driver writes vmm's endpoint on host2 too, so host2's Felix
   routes vmm's address to the new tap *before* the switch-over (checked);
2. switch-over: the source VM stops (its eth0 down) and the destination resumes (address
   and routes on its eth0) — the moment every live migration loses packets;
3. post-migration: the binding moves to host2 (migrate-finish); only now does the driver
   delete the source endpoint, host1's Felix drops its local route, and host1 reaches vmm
   through host2 (BGP).
The test prints the longest run of lost pings (the traffic gap), the total lost and the
timeline; it asserts only that traffic resumes and that host2 was programmed before the
switch-over. Namespaces: the lab's and `cpt-<pid>-...`, always deleted.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from tests.openstack.e2e_cloud import Cloud, started, wait

pytestmark = [pytest.mark.root, pytest.mark.slow]

VMS = [{"name": "vmc", "host": "host1", "group": "web", "ip": "10.65.0.10"},
       {"name": "vmm", "host": "host1", "group": "web", "ip": "10.65.0.20"}]
MOVER_IP = "10.65.0.20"
INTERVAL = 0.01
POLICY = '"create_port:binding:profile": "rule:admin_only"\n' \
         '"update_port:binding:profile": "rule:admin_only"\n'


@pytest.fixture(scope="module")
def cloud(neutron_venv, tmp_path_factory):
    work = tmp_path_factory.mktemp("os-migration")
    (work / "policy.yaml").write_text(POLICY)  # Nova's `service` role; noauth is admin only
    with started(neutron_venv, work, VMS, neutron_extra=f"[oslo_policy]\npolicy_file = "
                                                        f"{work / 'policy.yaml'}\n") as cloud:
        for vm in cloud.vms.values():
            vm.dhcp()
        yield cloud


def route(cloud: Cloud, host: str) -> str:
    return cloud.host_ns(host).ip("route", "show", f"{MOVER_IP}/32").stdout.strip()


def longest_gap(seqs: list[int]) -> tuple[int, int]:
    """(longest run of missing sequence numbers, total missing) between first and last."""
    got = sorted(set(seqs))
    missing = [b - a - 1 for a, b in zip(got, got[1:], strict=False)]
    return max(missing, default=0), sum(missing)


def test_live_migration_traffic_gap(cloud):
    vmc, vmm = cloud.vms["vmc"], cloud.vms["vmm"]
    mover = cloud.topo["ports"]["vmm"]
    wait(lambda: vmc.pings(MOVER_IP), 30, "vmc -> vmm before the migration", cloud,
         interval=0.02)
    ping = vmc.ns.popen("ping", "-n", "-i", str(INTERVAL), "-W", "1", MOVER_IP,
                        stdout=subprocess.PIPE, text=True)
    timeline: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        time.sleep(0.5)
        cloud.sdk("migrate-start", mover["id"], "host2", script="cloud_sdk.py")
        timeline["migrating_to set"] = time.monotonic() - t0
        dst = cloud.plug("vmm-dst", "host2", mover)  # paused: eth0 up, no address
        wait(lambda: dst.tap in route(cloud, "host2"), 30,
             "host2 routes vmm to the destination tap before the switch-over", cloud, interval=0.02)
        timeline["host2 programmed (route to the new tap)"] = time.monotonic() - t0
        assert vmc.pings(MOVER_IP), "the source still answers before the switch-over"
        time.sleep(0.5)
        # Switch-over: the source stops, the destination resumes with the same address.
        vmm.ns.ip("link", "set", "eth0", "down")
        dst.ns.ip("addr", "add", f"{MOVER_IP}/24", "dev", "eth0")
        dst.ns.ip("route", "add", "default", "via", "10.65.0.1", "dev", "eth0")
        timeline["switch-over"] = time.monotonic() - t0
        cloud.sdk("migrate-finish", mover["id"], "host2", script="cloud_sdk.py")
        timeline["binding moved to host2"] = time.monotonic() - t0
        wait(lambda: vmm.tap not in route(cloud, "host1"), 30,
             "host1's local route to the source tap removed", cloud, interval=0.02)
        timeline["host1 no longer routes to the source tap (checked)"] = time.monotonic() - t0
        wait(lambda: dst.pings(vmc.lease["ip"], timeout=0.5), 30,
             "vmm (on host2) reaches vmc after the migration", cloud, interval=0.02)
        timeline["traffic resumed (checked)"] = time.monotonic() - t0
        time.sleep(1.0)
    finally:
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=10)
    seqs = [int(m.group(1)) for m in re.finditer(r"icmp_seq=(\d+)", out)]
    assert seqs, f"no ping replies at all:\n{out[-2000:]}"
    gap, lost = longest_gap(seqs)
    sent = re.search(r"(\d+) packets transmitted", out)
    assert sent, out[-2000:]
    elapsed = time.monotonic() - t0
    print(f"\nlive migration host1 -> host2, ping every {INTERVAL * 1000:.0f} ms "
          f"({int(sent.group(1))} sent in {elapsed:.1f}s: the achieved interval is "
          f"{elapsed / int(sent.group(1)) * 1000:.1f} ms under load): longest gap {gap} pings "
          f"({gap * INTERVAL * 1000:.0f} ms nominal), {lost} lost\n" + "\n".join(
              f"  {k}: {v:.3f}s" for k, v in timeline.items()))
    # The last second of pings (after traffic resumed) was answered, not the gap's tail.
    assert max(seqs) > int(sent.group(1)) - 1.0 / INTERVAL, out[-2000:]
