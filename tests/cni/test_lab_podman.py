"""Acceptance: podman on a lab host, our CNI plugin attaching its container to Calico.

A 2-host lab (local datastore, IPv4 + IPv6, calico-node → Felix + BIRD on each host). Podman
runs in host1's network namespace (lab_podman.py says how and why `nsenter --net`), with a
conflist naming our `calico` plugin, nodename host1 and the lab's datastore. The container
joins the lab's network `calico-lab` (so it shares the lab workloads' Profile) and carries
`role=podman` from the conflist's `labels`. Then:

- it is a WorkloadEndpoint of host1: the veth and /32 in host1's namespace, none in the
  machine's own, and host2 learns its block from host1 over BGP;
- it reaches a lab workload on host2 and back (ping v4 + v6, TCP both ways);
- a GlobalNetworkPolicy selecting `role == 'podman'` (calicoctl apply on the lab datastore)
  blocks that traffic, a second one allows TCP to the workload only, deleting both opens it
  again; a workload on host1 without the label is never affected;
- `podman rm` (DEL in host1) releases the addresses and removes the endpoint, the veth and
  the route, and `calicoctl ipam check` is clean.

The lab is named `e<pid>pm`, so tests/e2e's stale-lab cleanup also removes it after a crash;
it is always torn down. Run with `-s` to see the timings.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time

import pytest

from calico.datastore.client import ResourceClient
from calico.lab.lab import POOL_V4, POOL_V6, Lab
from calico.lab.proc import netns_exec, sh
from calico.lab.workloads import NETWORK
from tests.conftest import require_programs
from tests.e2e.conftest import _cleanup_stale, bird_routes, wait_until
from tests.unit.cni.driver import handle_addresses

from .lab_podman import Calicoctl, host_podman

pytestmark = [pytest.mark.root, pytest.mark.slow]

PORT = 8080
LABELS = {"role": "podman"}
ISOLATE = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: podman-isolate}
spec:
  order: 100
  selector: role == 'podman'
  types: [Ingress, Egress]
  ingress: [{action: Deny}]
  egress: [{action: Deny}]
"""
ALLOW_DB = f"""apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: podman-to-db}}
spec:
  order: 10
  selector: role == 'podman'
  types: [Egress]
  egress:
  - action: Allow
    protocol: TCP
    destination: {{selector: app == 'db', ports: [{PORT}]}}
"""


def _timed(what: str):
    started = time.monotonic()

    def done() -> None:
        print(f"  {what}: {time.monotonic() - started:.2f}s")
    return done


@pytest.fixture(scope="module")
def lab():
    require_programs("bird", "birdc", "nsenter", "ping")
    _cleanup_stale()
    lab = Lab(f"e{os.getpid()}pm"[:12])
    done = _timed("lab up (2 hosts, sessions Established)")
    try:
        lab.up(hosts=2, ipv6=True)
        done()
        lab.add_workload("host2", "db", {"app": "db"})
        lab.add_workload("host1", "other", {"app": "other"})
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def db_server(lab):
    """A TCP server (busybox nc, one "pong" per connection) in the db workload on host2."""
    proc = subprocess.Popen(["ip", "netns", "exec", lab.workload("db")["netns"], "busybox",
                             "nc", "-ll", "-p", str(PORT), "-e", "echo", "pong"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def podman(lab, tmp_path_factory):
    done = _timed("podman runtime ready (state folder, busybox imported)")
    with host_podman(lab, "host1", NETWORK, LABELS) as runtime:
        done()
        runtime.calicoctl = Calicoctl(lab, str(tmp_path_factory.mktemp("ctl")))
        yield runtime


@pytest.fixture(scope="module")
def container(podman, db_server):
    """A busybox container on host1, answering "pong" on PORT; (name, id, v4, v6)."""
    name = f"cpt-lab-{os.getpid()}"
    done = _timed("podman run (CNI ADD on host1)")
    cid = podman.run("run", "-d", "--name", name, "localhost/busybox:latest", "sh", "-c",
                     f"nc -ll -p {PORT} -e echo pong & exec sleep 600").stdout.decode().strip()
    done()
    net = podman.inspect(name)["NetworkSettings"]["Networks"][NETWORK]
    yield name, cid, net["IPAddress"], net["GlobalIPv6Address"]
    podman.run("rm", "-f", "-t", "0", name, check=False)


def _client(lab):
    ds = lab.backend()
    return ds, ResourceClient(ds)


def _endpoint(lab, cid: str):
    ds, client = _client(lab)
    try:
        return next((w for w in client.list("WorkloadEndpoint").items
                     if w.spec.containerID == cid), None)
    finally:
        ds.close()


# ---- the probes (each gives up after about a second) -------------------------------------

def _ping_from_container(podman, name: str, addr: str) -> bool:
    return podman.exec(name, "ping", "-c", "1", "-W", "1", addr, check=False).returncode == 0


def _tcp_from_container(podman, name: str, addr: str) -> bool:
    out = podman.exec(name, "sh", "-c", f"nc -w 1 {addr} {PORT} </dev/null", check=False)
    return out.stdout.decode().strip() == "pong"


def _tcp_from_workload(lab, workload: str, addr: str) -> bool:
    out = netns_exec(lab.workload(workload)["netns"], "busybox", "nc", "-w", "1", addr,
                     str(PORT), check=False, input="")
    return out.stdout.strip() == "pong"


def _state(lab, podman, container) -> dict[str, bool]:
    name, _, v4, _ = container
    db = lab.workload("db")["addresses"][0]
    return {"ping container->db": _ping_from_container(podman, name, db),
            "tcp container->db": _tcp_from_container(podman, name, db),
            "tcp db->container": _tcp_from_workload(lab, "db", v4),
            "ping other->db": lab.ping("other", db)}


def _wait_state(lab, podman, container, want: dict[str, bool], what: str) -> None:
    seen: dict[str, bool] = {}

    def matches() -> bool:
        seen.update(_state(lab, podman, container))
        return seen == want

    try:
        waited = wait_until(matches, 10, what, interval=0.1)
    except pytest.fail.Exception:
        pytest.fail(f"{what}: want {want}, last seen {seen}")
    # Upper bounds: a round of probes takes ~1 s per blocked probe (ping -W 1, nc -w 1).
    print(f"  {what}: within {waited:.2f}s")


# ---- the scenario ---------------------------------------------------------------------------

def test_container_is_an_endpoint_of_the_lab_host(lab, podman, container):
    name, cid, v4, v6 = container
    assert ipaddress.ip_address(v4) in ipaddress.ip_network(POOL_V4)
    assert ipaddress.ip_address(v6) in ipaddress.ip_network(POOL_V6)
    wep = _endpoint(lab, cid)
    assert wep is not None, "no WorkloadEndpoint for the container"
    assert wep.spec.node == "host1"
    assert wep.spec.orchestrator == "cni"
    assert sorted(wep.spec.ipNetworks) == sorted([f"{v4}/32", f"{v6}/128"])
    assert wep.spec.profiles == [NETWORK]
    assert wep.metadata.labels["role"] == "podman"

    iface = wep.spec.interfaceName
    host_ns = lab.host("host1")["netns"]
    assert sh("ip", "-n", host_ns, "link", "show", iface, check=False).returncode == 0
    assert sh("ip", "link", "show", iface, check=False).returncode != 0, \
        "the host side of the veth is in the machine's own namespace"
    assert f"dev {iface}" in sh("ip", "-n", host_ns, "route", "show", f"{v4}/32").stdout

    waited = wait_until(
        lambda: any(ipaddress.ip_address(v4) in ipaddress.ip_network(p) and via == "198.18.0.11"
                    for p, via in bird_routes(lab, "host2").items()), 5,
        "host2 learns the container's block from host1")
    print(f"  container's block in host2's kernel via host1: {waited:.2f}s after inspect")


def test_container_reaches_a_workload_on_the_other_host(lab, podman, container, db_server):
    name, _, v4, v6 = container
    db4, db6 = lab.workload("db")["addresses"]
    for addr in (db4, db6):
        wait_until(lambda a=addr: _ping_from_container(podman, name, a), 5,
                   f"container -> db ({addr})")
    for addr in (v4, v6):
        wait_until(lambda a=addr: lab.ping("db", a), 5, f"db -> container ({addr})")
    assert _tcp_from_container(podman, name, db4)
    assert _tcp_from_workload(lab, "db", v4)


def test_global_network_policy_blocks_then_allows(lab, podman, container, db_server):
    ctl = podman.calicoctl
    open_ = {"ping container->db": True, "tcp container->db": True,
             "tcp db->container": True, "ping other->db": True}
    _wait_state(lab, podman, container, open_, "all open before any policy")

    ctl("apply", "-f", "-", input=ISOLATE)
    _wait_state(lab, podman, container,
                {**open_, "ping container->db": False, "tcp container->db": False,
                 "tcp db->container": False}, "podman-isolate applied: container cut off")

    ctl("apply", "-f", "-", input=ALLOW_DB)
    _wait_state(lab, podman, container,
                {**open_, "ping container->db": False, "tcp db->container": False},
                "podman-to-db applied: only TCP to db allowed")

    ctl("delete", "globalnetworkpolicy", "podman-isolate")
    ctl("delete", "globalnetworkpolicy", "podman-to-db")
    _wait_state(lab, podman, container, open_, "policies deleted: all open again")


def test_rm_releases_the_address_and_ipam_check_is_clean(lab, podman, container):
    name, cid, v4, _ = container
    wep = _endpoint(lab, cid)
    assert wep is not None
    handle = f"{NETWORK}.{cid}"
    ds, client = _client(lab)
    try:
        assert len(handle_addresses(client, handle)) == 2
    finally:
        ds.close()

    done = _timed("podman rm (CNI DEL on host1)")
    podman.run("rm", "-f", "-t", "0", name)
    done()
    ds, client = _client(lab)
    try:
        # The DEL may be run by podman's cleanup process (conmon's exit command) instead of
        # `rm` itself, which then logs "Network is already cleaned up, skipping" and can
        # return before that DEL has answered: wait for its last step (the host side of
        # the veth goes), boundedly, then check everything.
        host_ns = lab.host("host1")["netns"]
        wait_until(lambda: sh("ip", "-n", host_ns, "link", "show", wep.spec.interfaceName,
                              check=False).returncode != 0, 30, "the DEL finished")
        assert handle_addresses(client, handle) == []
        assert client.backend.get(f"/calico/ipam/v2/handle/{handle}") is None
    finally:
        ds.close()
    assert _endpoint(lab, cid) is None
    assert sh("ip", "-n", host_ns, "route", "show", f"{v4}/32").stdout.strip() == ""

    out = podman.calicoctl("ipam", "check", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found." in out.stdout
    # What remains allocated is the lab's own workloads (db and other, v4 + v6).
    assert "Found 4 IPs allocated." in out.stdout, out.stdout
