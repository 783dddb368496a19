"""Floating IPs (WorkloadEndpoint ipNATs) through the real calico-felix, nftables and packets.

Topology: the harness's host (Felix, workloads on cali<N>) and its fabric router, plus an
"external" client namespace behind the router (192.0.2.10, standing for the outside world).
The router routes the floating range 172.16.1.0/24 to the host, as a BGP peer would once
BIRD advertises the host's /32 route for the floating IP (asserted here as Felix's route).
Each workload runs a small HTTP server answering "<name> <client address>", so a reply says
who answered and from which source address the request arrived.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calico.api.endpoints import workload_endpoint_name
from tests.dataplane.test_felix_harness import (
    ALLOW_ALL,
    HOSTNAME,
    FelixHost,
    ping,
    resource,
    wait_for,
    wl_ip,
)

PROBE = str(Path(__file__).with_name("probe.py"))
FIP, FIP2 = "172.16.1.3", "172.16.1.4"
FIP6 = "2001:db8:f::3"
EXT_IP = "192.0.2.10"
PORT = 8080


def whoami(ns) -> None:
    """Start the HTTP and UDP who-am-i servers in `ns` (killed with the namespace)."""
    name = ns.name.split("-")[2]
    ns.popen(sys.executable, PROBE, "whoami", name, str(PORT))
    ns.popen(sys.executable, PROBE, "udp-whoami", name, str(PORT))


def read_until(proc: subprocess.Popen, want: str) -> list[str]:
    """Lines of `proc` up to and including the first that is `want` (AssertionError if the
    stream ends first)."""
    seen = []
    for line in proc.stdout:
        seen.append(line.strip())
        if seen[-1] == want:
            return seen
    raise AssertionError(f"{want!r} never answered; got {seen[-5:]}")


def fetch(ns, addr: str) -> str:
    """GET http://addr:PORT/ from inside `ns`: the body, or "" if nothing answered."""
    out = ns.run("curl", "-s", "--max-time", "2", f"http://{addr}:{PORT}/", check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def set_nats(felix: FelixHost, n: int, nats: list[tuple[str, str]], *,
             orchestrator: str = "k8s") -> None:
    """(Re)write workload n's endpoint with these (internal, external) ipNATs."""
    spec = {"orchestrator": orchestrator, "node": HOSTNAME, "endpoint": "eth0",
            "interfaceName": f"cali{n}", "ipNetworks": [f"{wl_ip(n)}/32", f"{wl_ip(n, 6)}/128"],
            "profiles": ["allow-all"],
            "ipNATs": [{"internalIP": i, "externalIP": e} for i, e in nats]}
    spec.update({"pod": f"pod{n}"} if orchestrator == "k8s" else {"workload": f"vm{n}"})
    namespace = "default" if orchestrator == "k8s" else "openstack"
    if orchestrator != "k8s":  # the instance's interface changes hands: one endpoint each
        felix.client.delete("WorkloadEndpoint", f"{HOSTNAME}-k8s-pod{n}-eth0", "default")
    endpoint = resource("WorkloadEndpoint", workload_endpoint_name(spec), spec, namespace)
    endpoint["metadata"]["labels"] = {"wl": str(n)}
    felix.client.apply(endpoint)


def fip_routes(felix: FelixHost) -> set[str]:
    return {r for r in felix.felix_routes() if r.startswith(("172.16.", "2001:db8:f:"))}


@pytest.fixture
def lab(netns, tmp_path, request):
    env = getattr(request, "param", {"FELIX_FLOATINGIPS": "Enabled"})
    host = FelixHost(netns, tmp_path, **env)
    ext = netns.add("ext")
    netns.veth(host.fabric, "eth1", ext, "eth0")
    host.fabric.ip("addr", "add", "192.0.2.1/24", "dev", "eth1")
    ext.ip("addr", "add", f"{EXT_IP}/24", "dev", "eth0")
    ext.ip("route", "add", "default", "via", "192.0.2.1")
    host.fabric.sysctl("net.ipv4.ip_forward", "1")
    host.fabric.ip("route", "add", "172.16.1.0/24", "via", "10.0.0.1")
    host.client.create(ALLOW_ALL)
    with host.running():
        for n in (1, 2):
            whoami(host.add_workload(n))
            host.wait_programmed(n)
        wait_for(lambda: fetch(host.workloads[1], wl_ip(2)).startswith("wl2"), 10,
                 "workload servers up")
        yield host, ext


def test_external_local_and_hairpin_traffic_reach_the_instance(lab):
    felix, ext = lab
    wl1, wl2 = felix.workloads[1], felix.workloads[2]
    set_nats(felix, 1, [(wl_ip(1), FIP), (wl_ip(1, 6), FIP6)])
    wait_for(lambda: fip_routes(felix) == {f"{FIP}@cali1", f"{FIP6}@cali1"}, 10,
             "floating IP routes")
    wait_for(lambda: fetch(ext, FIP) != "", 10, "floating IP answering")
    # From outside: DNATed to the instance, the client's own address preserved (no SNAT).
    assert fetch(ext, FIP) == f"wl1 {EXT_IP}"
    # From a process on the host (nat output), from another instance, and hairpin: the
    # instance reaching its own floating IP sees the floating IP as the source.
    assert fetch(felix.host, FIP).startswith("wl1 ")
    assert fetch(wl2, FIP) == f"wl1 {wl_ip(2)}"
    assert fetch(wl1, FIP) == f"wl1 {FIP}"
    # Not a floating IP: nothing answers.
    assert fetch(ext, FIP2) == ""
    # IPv6: from a host process, another instance, and hairpin (the reply comes from FIP6).
    for src in (felix.host, wl2, wl1):
        assert ping(src, FIP6), f"{src} -> {FIP6}"


def test_restarted_felix_changes_nothing_and_keeps_the_mapping(lab):
    felix, ext = lab
    set_nats(felix, 1, [(wl_ip(1), FIP), (wl_ip(1, 6), FIP6)])
    wait_for(lambda: fetch(ext, FIP).startswith("wl1"), 10, "floating IP on wl1")
    felix.kill9()
    felix.start_felix()
    felix.wait_ready()
    wait_for(lambda: "Dataplane programmed" in felix.log(), 10, "restarted Felix programmed")
    assert re.search(r"Dataplane programmed .* nftables 0 lines", felix.log()), felix.log()
    assert fetch(ext, FIP) == f"wl1 {EXT_IP}"


def test_policy_applies_to_the_translated_traffic(lab):
    felix, ext = lab
    set_nats(felix, 1, [(wl_ip(1), FIP)])
    wait_for(lambda: fetch(ext, FIP) != "", 10, "floating IP answering")
    felix.client.create(resource("GlobalNetworkPolicy", "no-outside", {
        "selector": "wl == '1'", "types": ["Ingress"],
        "ingress": [{"action": "Deny", "source": {"nets": ["192.0.2.0/24"]}},
                    {"action": "Allow"}]}))
    wait_for(lambda: fetch(ext, FIP) == "", 10, "deny from outside in force")
    assert fetch(felix.workloads[2], FIP) == f"wl1 {wl_ip(2)}"  # others still allowed


def test_moving_the_floating_ip_moves_the_traffic(lab):
    felix, ext = lab
    set_nats(felix, 1, [(wl_ip(1), FIP)])
    wait_for(lambda: fetch(ext, FIP).startswith("wl1"), 10, "floating IP on wl1")
    set_nats(felix, 1, [])
    set_nats(felix, 2, [(wl_ip(2), FIP)])
    moved = wait_for(lambda: fetch(ext, FIP).startswith("wl2"), 10, "floating IP on wl2")
    print(f"floating IP moved in {moved:.2f} s")
    assert fip_routes(felix) == {f"{FIP}@cali2"}
    assert fetch(felix.workloads[2], FIP) == f"wl2 {FIP}"  # hairpin follows it too
    set_nats(felix, 2, [])
    wait_for(lambda: fetch(ext, FIP) == "", 10, "floating IP released")
    assert fip_routes(felix) == set()


def test_a_continuous_flow_follows_the_moved_floating_ip(lab):
    """One UDP flow (same ports throughout, so one conntrack entry) from outside: after the
    move its next datagrams reach the new instance, because Felix forgets the old DNAT."""
    felix, ext = lab
    set_nats(felix, 1, [(wl_ip(1), FIP)])
    wait_for(lambda: fetch(ext, FIP).startswith("wl1"), 10, "floating IP on wl1")
    stream = ext.popen(sys.executable, PROBE, "udp-stream", FIP, str(PORT), "30",
                       stdout=subprocess.PIPE, text=True)
    try:
        read_until(stream, "wl1")
        moved_at = time.monotonic()
        set_nats(felix, 1, [])
        set_nats(felix, 2, [(wl_ip(2), FIP)])
        read_until(stream, "wl2")
        print(f"the flow followed the floating IP in {time.monotonic() - moved_at:.2f} s")
    finally:
        stream.kill()
        stream.wait()


@pytest.mark.parametrize("lab", [{"FELIX_FLOATINGIPS": "Disabled"}], indirect=True)
def test_floating_ips_disabled_leaves_other_orchestrators_nats_alone(lab):
    felix, ext = lab
    set_nats(felix, 1, [(wl_ip(1), FIP)])  # k8s: not programmed
    set_nats(felix, 2, [(wl_ip(2), FIP2)], orchestrator="openstack")  # OpenStack: always
    wait_for(lambda: fetch(ext, FIP2).startswith("wl2"), 10, "OpenStack floating IP")
    # The k8s mapping was written first, so Felix has processed it by now.
    assert fetch(ext, FIP) == ""
    assert fip_routes(felix) == {f"{FIP2}@cali2"}
    assert "172.16.1.3" not in felix.ruleset()
