"""Acceptance: a GoBGP ToR (AS 64513) on the fabric with the hosts on etcd: it learns exactly
the hosts' block routes, and a route it announces reaches every host's kernel; when only
host1 peers with it, the other hosts' blocks, which host1 learned over the mesh (iBGP), still
reach it through host1 (Calico's export rules: iBGP-learned routes go on to eBGP peers). Also
drives the `calico-lab` command line against the running lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from calico.datastore.client import ResourceClient
from calico.lab.proc import netns_exec
from calico.lab.tor import GOBGP_API_PORT

from .conftest import bird_routes, blocks_of, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.etcd]
ANNOUNCED = "203.0.113.0/24"


@pytest.fixture(scope="module")
def lab(make_lab):
    return make_lab("t", hosts=3, workloads_per_host=1, datastore="etcdv3", tor="gobgp")


def gobgp(lab, *args: str) -> str:
    return netns_exec(lab.state["tor"]["netns"], "gobgp", "-u", "127.0.0.1", "-p",
                      str(GOBGP_API_PORT), *args).stdout


def tor_rib(lab) -> set[str]:
    return set(json.loads(gobgp(lab, "global", "rib", "-a", "ipv4", "-j") or "{}"))


def test_hosts_peer_with_the_tor(lab):
    for h in ("host1", "host2", "host3"):
        types = sorted((p["type"], p["address"], p["established"]) for p in lab.peers(h))
        assert ("global", "198.18.0.1", True) in types


def test_tor_learns_exactly_the_block_routes(lab):
    blocks = set().union(*(blocks_of(lab, h) for h in ("host1", "host2", "host3")))
    assert len(blocks) == 3
    wait_until(lambda: tor_rib(lab) == blocks, 5, f"ToR RIB == {sorted(blocks)}")
    # No /32 of a workload leaks, nothing outside the pool.
    assert all(not r.endswith("/32") for r in tor_rib(lab))


def test_tor_announcement_reaches_host_kernels(lab):
    gobgp(lab, "global", "rib", "add", ANNOUNCED, "-a", "ipv4")
    try:
        waited = wait_until(lambda: all(bird_routes(lab, h).get(ANNOUNCED) == "198.18.0.1"
                                        for h in ("host1", "host2", "host3")), 5,
                            f"{ANNOUNCED} via the ToR in every host's kernel")
        print(f"\nToR announcement in all 3 host kernels after {waited * 1000:.0f} ms")
    finally:
        gobgp(lab, "global", "rib", "del", ANNOUNCED, "-a", "ipv4")
    waited = wait_until(lambda: all(ANNOUNCED not in bird_routes(lab, h)
                                    for h in ("host1", "host2", "host3")), 5,
                        f"{ANNOUNCED} withdrawn")
    print(f"ToR withdrawal out of all 3 host kernels after {waited * 1000:.0f} ms")


def _cli(lab, *args: str) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "calico-lab")
    return subprocess.run([exe, *args, "--name", lab.name] if args[0] != "exec" else
                          [exe, "exec", "--name", lab.name, *args[1:]],
                          capture_output=True, text=True, timeout=60)


def test_command_line(lab):
    st = json.loads(_cli(lab, "status", "-o", "json").stdout)
    assert [h["name"] for h in st["hosts"]] == ["host1", "host2", "host3"]
    assert all(h["running"] and len(h["bgp"]) == 3 for h in st["hosts"])
    assert {w["host"] for w in st["workloads"]} == {"host1", "host2", "host3"}
    assert st["tor"]["kind"] == "gobgp" and st["datastore"]["type"] == "etcdv3"

    out = _cli(lab, "exec", "host1", "--", "calicoctl", "node", "status")
    assert out.returncode == 0, out.stderr
    assert "| 198.18.0.1   | global            | up    |" in out.stdout
    assert "node-to-node mesh" in out.stdout

    add = _cli(lab, "add-workload", "host2", "extra", "--labels", "app=web,tier=1")
    assert add.returncode == 0, add.stderr
    lab.load()
    assert lab.workload("extra")["labels"] == {"app": "web", "tier": "1"}
    wait_until(lambda: lab.ping("host1-w1", lab.workload("extra")["addresses"][0]), 5,
               "host1-w1 -> extra")
    env = _cli(lab, "env").stdout
    assert "export DATASTORE_TYPE=etcdv3" in env
    rm = _cli(lab, "remove-workload", "extra")
    assert rm.returncode == 0, rm.stderr
    lab.load()
    assert "extra" not in [w["name"] for w in lab.state["workloads"]]
    bad = _cli(lab, "add-workload", "host9", "x")
    assert bad.returncode == 1 and "has no host 'host9'" in bad.stderr


def tor_paths(lab, prefixes: set[str]) -> dict[str, set[tuple[str, str]]]:
    """{prefix: (the neighbor that sent it, its next hop) for every path the ToR holds}."""
    rib = json.loads(gobgp(lab, "global", "rib", "-a", "ipv4", "-j") or "{}")
    return {p: {(path["neighbor-ip"], a["nexthop"]) for path in rib.get(p, [])
                for a in path["attrs"] if a.get("type") == 3} for p in prefixes}


def set_tor_peer(lab, **spec) -> None:
    backend = lab.backend()
    try:
        ResourceClient(backend).apply({
            "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": "tor-v4"},
            "spec": {"peerIP": "198.18.0.1", "asNumber": str(lab.state["tor"]["asn"]), **spec}})
    finally:
        backend.close()


def test_ibgp_learned_blocks_reach_the_ebgp_tor_through_the_one_host_peering(lab):
    """host1 sends the ToR the blocks it learned over the mesh; their next hop stays the
    owning host's address (BIRD's third-party next hop: it is on the ToR's segment)."""
    owner = {b: addr for h, addr in (("host2", "198.18.0.12"), ("host3", "198.18.0.13"))
             for b in blocks_of(lab, h)}
    set_tor_peer(lab, node="host1")
    try:
        wait_until(lambda: tor_paths(lab, set(owner)) ==
                   {b: {("198.18.0.11", addr)} for b, addr in owner.items()},
                   20, "host2's and host3's blocks at the ToR, sent by host1 only")
    finally:
        set_tor_peer(lab)
    wait_until(lambda: all(len(paths) == 3 for paths in tor_paths(lab, set(owner)).values()),
               20, "every host sends the ToR every block again")
