"""Acceptance for local workload peering (BGPPeer `localWorkloadSelector`, BGPConfiguration
`localWorkloadPeeringIPV4`): a workload running its own BGP speaker (GoBGP, AS 65010) peers
with its host from the peering address, and a prefix it announces reaches its host's kernel
via the workload and the other host's kernel via that host."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from calico.datastore.client import ResourceClient
from calico.lab.proc import netns_exec, sh

from .conftest import bird_routes, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]
PEERING_IP = "169.254.0.179"
ANNOUNCED = "10.200.0.0/24"
API_PORT = "50061"


@pytest.fixture(scope="module")
def lab(make_lab):
    return make_lab("w", hosts=2)


def apply(lab, kind, name, spec):
    backend = lab.backend()
    try:
        ResourceClient(backend).apply({"apiVersion": "projectcalico.org/v3", "kind": kind,
                                       "metadata": {"name": name}, "spec": spec})
    finally:
        backend.close()


def gobgp_conf(address: str) -> str:
    return "\n".join([
        "[global.config]", "  as = 65010", f'  router-id = "{address}"',
        "[[neighbors]]", "  [neighbors.config]", f'    neighbor-address = "{PEERING_IP}"',
        "    peer-as = 64512", "  [neighbors.transport.config]",
        f'    local-address = "{address}"', "  [neighbors.ebgp-multihop.config]",
        "    enabled = true", "    multihop-ttl = 2", "  [neighbors.timers.config]",
        "    connect-retry = 1", "  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
        '      afi-safi-name = "ipv4-unicast"', ""])


@pytest.fixture
def speaker(lab, tmp_path):
    """The workload `vm1` on host1, with GoBGP running inside it."""
    sh("ip", "-n", lab.host("host1")["netns"], "addr", "add", f"{PEERING_IP}/32", "dev", "lo")
    rec = lab.add_workload("host1", "vm1", {"bgp": "yes"})
    sh("ip", "-n", rec["netns"], "link", "set", "lo", "up")  # for GoBGP's API
    conf = tmp_path / "gobgpd.toml"
    conf.write_text(gobgp_conf(rec["addresses"][0]))
    proc = subprocess.Popen(["ip", "netns", "exec", rec["netns"], "gobgpd", "-f", str(conf),
                             "-t", "toml", "--api-hosts", f"127.0.0.1:{API_PORT}",
                             "--pprof-disable"], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "gobgpd.log", "w"))
    try:
        yield rec
    finally:
        proc.terminate()
        proc.wait(10)


def test_workload_peers_with_its_host_and_its_routes_spread(lab, speaker):
    addr = speaker["addresses"][0]
    apply(lab, "BGPConfiguration", "default", {"localWorkloadPeeringIPV4": PEERING_IP})
    apply(lab, "BGPPeer", "vms", {"localWorkloadSelector": "bgp == 'yes'",
                                  "asNumber": "65010"})
    wait_until(lambda: ("local workload", addr, True) in
               [(p["type"], p["address"], p["established"]) for p in lab.peers("host1")],
               20, f"host1's session with the workload at {addr} Established")
    assert not [p for p in lab.peers("host2") if p["type"] == "local workload"]
    deadline = time.monotonic() + 10
    while True:  # GoBGP's API comes up with the daemon
        out = netns_exec(speaker["netns"], "gobgp", "-p", API_PORT, "global", "rib", "add",
                         ANNOUNCED, "-a", "ipv4", check=False)
        if out.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: bird_routes(lab, "host1").get(ANNOUNCED) == addr, 10,
               f"{ANNOUNCED} via the workload in host1's kernel")
    wait_until(lambda: bird_routes(lab, "host2").get(ANNOUNCED) == "198.18.0.11", 10,
               f"{ANNOUNCED} via host1 in host2's kernel")
    assert os.path.exists(f"{lab.host('host1')['run_dir']}/bird.conf")
