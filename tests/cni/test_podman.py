"""Podman (CNI backend) running busybox containers on a Calico network: addresses from our
IPAM, WorkloadEndpoints in the local datastore, release on `podman rm`, parallel starts, and
two containers reaching each other through the host routes the plugin programs."""

import ipaddress
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.unit.cni.driver import POOL_V4, POOL_V6, endpoints, handle_addresses

from .conftest import NETWORK

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _name(tag: str) -> str:
    return f"cpt-{tag}-{uuid.uuid4().hex[:6]}"


def _endpoint_for(podman, container_id: str):
    found = [w for w in endpoints(podman.client) if w.spec.containerID == container_id]
    return found[0] if found else None


def test_container_gets_its_address_and_rm_releases_it(podman):
    name = _name("one")
    cid = podman.start(name)
    try:
        net = podman.inspect(name)["NetworkSettings"]["Networks"][NETWORK]
        v4, v6 = net["IPAddress"], net["GlobalIPv6Address"]
        assert ipaddress.ip_address(v4) in ipaddress.ip_network(POOL_V4)
        assert ipaddress.ip_address(v6) in ipaddress.ip_network(POOL_V6)
        assert net["Gateway"] == "169.254.1.1"
        handle = f"{NETWORK}.{cid}"
        assert sorted(handle_addresses(podman.client, handle)) == sorted([v4, v6])

        wep = _endpoint_for(podman, cid)
        assert wep is not None
        assert wep.name == f"node--1-cni-{cid}-eth0"
        assert sorted(wep.spec.ipNetworks) == sorted([f"{v4}/32", f"{v6}/128"])
        assert wep.spec.mac == net["MacAddress"]
        assert wep.spec.profiles == [NETWORK]
        assert wep.spec.interfaceName.startswith("cali")
        assert wep.metadata.labels["projectcalico.org/orchestrator"] == "cni"

        inside = podman.exec(name, "ip", "route").stdout.decode()
        assert "default via 169.254.1.1 dev eth0" in inside
        assert "169.254.1.1 dev eth0" in inside
        assert "default via fe80::ecee:eeff:feee:eeee dev eth0" in \
            podman.exec(name, "ip", "-6", "route").stdout.decode()
        profile = podman.client.get("Profile", NETWORK)
        assert profile.spec.labelsToApply == {NETWORK: ""}
    finally:
        podman.run("rm", "-f", "-t", "0", name)
    assert handle_addresses(podman.client, handle) == []
    assert _endpoint_for(podman, cid) is None


def test_twenty_containers_in_parallel_get_distinct_addresses(podman):
    names = [_name(f"p{i}") for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(podman.start, names))
    try:
        addresses = [podman.inspect(n)["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
                     for n in names]
        assert len(set(addresses)) == 20, addresses
        assert all(ipaddress.ip_address(a) in ipaddress.ip_network(POOL_V4)
                   for a in addresses)
        weps = {w.spec.containerID for w in endpoints(podman.client)}
        assert set(ids) <= weps
    finally:
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(lambda n: podman.run("rm", "-f", "-t", "0", n), names))
    for cid in ids:
        assert handle_addresses(podman.client, f"{NETWORK}.{cid}") == []
    assert not ({w.spec.containerID for w in endpoints(podman.client)} & set(ids))


def test_two_containers_ping_each_other_through_the_host(podman):
    """The plugin's own host routes (/32 dev cali..., Felix's protocol) and proxy ARP carry
    the traffic; no Felix runs here."""
    a, b = _name("a"), _name("b")
    podman.start(a)
    podman.start(b)
    try:
        addr_b = podman.inspect(b)["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        addr_a = podman.inspect(a)["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        ping = podman.exec(a, "ping", "-c", "2", "-W", "2", addr_b, check=False)
        assert ping.returncode == 0, ping.stdout.decode() + ping.stderr.decode()
        ping = podman.exec(b, "ping", "-c", "1", "-W", "2", addr_a, check=False)
        assert ping.returncode == 0, ping.stdout.decode() + ping.stderr.decode()
    finally:
        podman.run("rm", "-f", "-t", "0", a, b)


def test_stop_then_start_again(podman):
    """Stop calls DEL (with prevResult); start calls ADD again in a new namespace."""
    name = _name("restart")
    cid = podman.start(name)
    try:
        podman.run("stop", "-t", "0", name)
        assert handle_addresses(podman.client, f"{NETWORK}.{cid}") == []
        assert _endpoint_for(podman, cid) is None
        podman.run("start", name)
        net = podman.inspect(name)["NetworkSettings"]["Networks"][NETWORK]
        assert handle_addresses(podman.client, f"{NETWORK}.{cid}") != []
        assert _endpoint_for(podman, cid) is not None
        assert net["IPAddress"]
    finally:
        podman.run("rm", "-f", "-t", "0", name)
    assert handle_addresses(podman.client, f"{NETWORK}.{cid}") == []


def test_requested_address(podman):
    """`podman run --ip` reaches calico-ipam through the `ips` capability."""
    name = _name("ip")
    cid = podman.start(name, "--ip", "10.77.250.7")
    try:
        net = podman.inspect(name)["NetworkSettings"]["Networks"][NETWORK]
        assert net["IPAddress"] == "10.77.250.7"
        assert "10.77.250.7" in handle_addresses(podman.client, f"{NETWORK}.{cid}")
    finally:
        podman.run("rm", "-f", "-t", "0", name)
    assert handle_addresses(podman.client, f"{NETWORK}.{cid}") == []
