"""The `calico` plugin binary driven as a runtime drives it, into namespaces the test makes
(root): what ADD builds in the kernel and the datastore, CHECK, DEL idempotence, undo on
failure, concurrency, delegation to another IPAM plugin, older result versions.

Every test runs twice: with the executable doing the work itself (`alone`), and with the
request handed to a calico-node CNI server (calico.node.cniserver, here in the test process on
a socket of the test's own; `served`), which must give the same results."""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from calico.cni import client
from calico.cni.dataplane import ROUTE_PROTOCOL
from calico.cni.netconf import NetConf, WorkloadIDs
from calico.cni.spec import CmdArgs
from calico.node.cniserver import CNIServer
from tests.unit.cni.driver import (
    CALICO,
    endpoints,
    handle_addresses,
    handle_exists,
    netconf,
    run,
)

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True, params=["alone", "served"])
def path(request, tmp_path, monkeypatch):
    """Which way the plugin's requests are run (see the module docstring)."""
    if request.param == "alone":
        monkeypatch.setenv(client.SOCKET_ENV, "")
        yield None
        return
    server = CNIServer(str(tmp_path / "run" / "cni.sock"))
    server.start()
    monkeypatch.setenv(client.SOCKET_ENV, server.path)
    try:
        yield server
    finally:
        server.close()
    assert server.served > 0  # the requests did go through the socket


def _host_name(conf: dict, container_id: str, ifname: str = "eth0", **cni_args) -> str:
    parsed = NetConf.parse(json.dumps(conf).encode(), {})
    return WorkloadIDs.of(parsed, CmdArgs("ADD", container_id, "", ifname,
                                          dict(cni_args))).host_veth_name()


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _sysctl(path: str) -> str:
    with open(f"/proc/sys/{path.replace('.', '/')}") as f:
        return f.read().strip()


def test_add_check_del(netns, store, tmp_path):
    path, client = store
    ns = netns.add("cniadd")
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "assign_ipv6": "true"},
                   labels={"app": "web"}, mtu=1400)
    cid = "c0ffee01"
    ans = run(CALICO, "ADD", conf, container_id=cid, netns=f"/run/netns/{ns.name}",
              cni_args="IgnoreUnknown=1;LABELS=tier=front")
    assert ans.rc == 0, ans.stdout + ans.stderr
    result = ans.doc
    host = _host_name(conf, cid)
    assert result["interfaces"][0] == {"name": host, "mac": "ee:ee:ee:ee:ee:ee"}
    assert result["interfaces"][1]["sandbox"] == f"/run/netns/{ns.name}"
    v4, v6 = (ip["address"] for ip in result["ips"])
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
                                {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}]
    try:
        # the container side
        links = json.loads(ns.ip("-j", "link", "show", "eth0").stdout)
        assert links[0]["mtu"] == 1400
        assert links[0]["address"] == result["interfaces"][1]["mac"]
        addrs = ns.ip("addr", "show", "eth0").stdout
        assert f"inet {v4} " in addrs and f"inet6 {v6} " in addrs
        routes = ns.ip("route").stdout
        assert "default via 169.254.1.1 dev eth0" in routes
        assert "169.254.1.1 dev eth0" in routes
        assert ns.run("cat", "/proc/sys/net/ipv6/conf/eth0/accept_dad").stdout.strip() == "0"
        # the host side
        assert json.loads(subprocess.run(["ip", "-j", "link", "show", host],
                                         capture_output=True).stdout)[0]["address"] == \
            "ee:ee:ee:ee:ee:ee"
        for key in ("ipv4.conf.{}.proxy_arp", "ipv4.conf.{}.forwarding",
                    "ipv6.conf.{}.proxy_ndp", "ipv6.conf.{}.forwarding"):
            assert _sysctl("net." + key.format(host)) == "1", key
        assert _sysctl(f"net.ipv4.neigh.{host}.proxy_delay") == "0"
        host_routes = subprocess.run(["ip", "route", "show", "dev", host, "proto",
                                      str(ROUTE_PROTOCOL)], capture_output=True,
                                     text=True).stdout
        assert v4.split("/")[0] in host_routes
        # the datastore
        (wep,) = endpoints(client)
        assert wep.spec.interfaceName == host
        assert wep.spec.containerID == cid
        assert wep.metadata.labels["app"] == "web" and wep.metadata.labels["tier"] == "front"
        assert sorted(wep.spec.ipNetworks) == sorted([v4, v6])
        profile = client.get("Profile", "calico-net")
        assert profile.spec.ingress[0].source.selector == "has(calico-net)"

        check = {**conf, "prevResult": result}
        ans = run(CALICO, "CHECK", check, container_id=cid, netns=f"/run/netns/{ns.name}")
        assert ans.rc == 0, ans.stdout
        ns.ip("route", "del", "default")
        ans = run(CALICO, "CHECK", check, container_id=cid, netns=f"/run/netns/{ns.name}")
        assert ans.error["code"] == 103
        assert "default route" in ans.error["details"]
    finally:
        for _ in range(2):  # a second DEL succeeds too
            ans = run(CALICO, "DEL", {**conf, "prevResult": result}, container_id=cid,
                      netns=f"/run/netns/{ns.name}")
            assert ans.rc == 0, ans.stdout
    assert not _link_exists(host)
    assert "eth0" not in ns.ip("link").stdout
    assert endpoints(client) == []
    assert handle_addresses(client, f"calico-net.{cid}") == []


def test_del_after_the_namespace_is_gone(netns, store, tmp_path):
    path, client = store
    ns = netns.add("cnigone")
    conf = netconf(path, str(tmp_path))
    assert run(CALICO, "ADD", conf, netns=f"/run/netns/{ns.name}").rc == 0
    subprocess.run(["ip", "netns", "del", ns.name], check=True)
    netns.namespaces.remove(ns)
    ans = run(CALICO, "DEL", conf, netns=f"/run/netns/{ns.name}")
    assert ans.rc == 0, ans.stdout
    assert endpoints(client) == []
    assert not handle_exists(client, "calico-net.c0ffee01")
    assert not _link_exists(_host_name(conf, "c0ffee01"))


def test_failed_add_after_ipam_leaks_nothing(netns, store, tmp_path):
    """eth0 already exists in the namespace: the veth cannot be made after IPAM assigned."""
    path, client = store
    ns = netns.add("cnifail")
    ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "assign_ipv6": "true"})
    ans = run(CALICO, "ADD", conf, netns=f"/run/netns/{ns.name}")
    assert ans.error["code"] == 102
    assert "eth0 already exists" in ans.error["details"]
    assert handle_addresses(client, "calico-net.c0ffee01") == []
    assert endpoints(client) == []
    assert not _link_exists(_host_name(conf, "c0ffee01"))


def test_concurrent_adds_get_distinct_addresses(netns, store, tmp_path):
    path, client = store
    conf = netconf(path, str(tmp_path))
    spaces = [netns.add(f"cnic{i}") for i in range(6)]

    def add(i: int):
        return run(CALICO, "ADD", conf, container_id=f"par{i}",
                   netns=f"/run/netns/{spaces[i].name}")

    n = len(spaces)
    with ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(add, range(n)))
    assert all(a.rc == 0 for a in answers), [a.stdout for a in answers if a.rc]
    addresses = {a.doc["ips"][0]["address"] for a in answers}
    assert len(addresses) == n
    assert len(endpoints(client)) == n
    with ThreadPoolExecutor(max_workers=n) as pool:
        dels = list(pool.map(lambda i: run(CALICO, "DEL", conf, container_id=f"par{i}",
                                           netns=f"/run/netns/{spaces[i].name}"), range(n)))
    assert all(d.rc == 0 for d in dels)
    assert endpoints(client) == []


def test_older_result_version_and_k8s_identity(netns, store, tmp_path):
    path, client = store
    ns = netns.add("cnik8s")
    conf = netconf(path, str(tmp_path), version="0.3.1")
    args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0"
    ans = run(CALICO, "ADD", conf, netns=f"/run/netns/{ns.name}", cni_args=args)
    assert ans.rc == 0, ans.stdout
    assert ans.doc["cniVersion"] == "0.3.1"
    assert ans.doc["ips"][0]["version"] == "4"
    (wep,) = endpoints(client)
    assert (wep.namespace, wep.spec.pod, wep.spec.orchestrator) == ("shop", "web-0", "k8s")
    assert wep.name == "node--1-k8s-web--0-eth0"
    assert client.get("Profile", "calico-net").spec.ingress[0].source is None
    assert run(CALICO, "DEL", conf, netns=f"/run/netns/{ns.name}", cni_args=args).rc == 0
    assert endpoints(client) == []


def test_delegates_to_host_local(netns, store, tmp_path):
    """Another IPAM plugin is run from CNI_PATH; its /24 address is narrowed to /32."""
    path, client = store
    ns = netns.add("cnihl")
    ipam = {"type": "host-local", "subnet": "10.99.0.0/24",
            "dataDir": str(tmp_path / "host-local")}
    conf = netconf(path, str(tmp_path), ipam=ipam)
    ans = run(CALICO, "ADD", conf, netns=f"/run/netns/{ns.name}")
    assert ans.rc == 0, ans.stdout + ans.stderr
    assert ans.doc["ips"][0]["address"].startswith("10.99.0.")
    assert ans.doc["ips"][0]["address"].endswith("/32")
    (wep,) = endpoints(client)
    assert wep.spec.ipNetworks == [ans.doc["ips"][0]["address"]]
    assert run(CALICO, "DEL", conf, netns=f"/run/netns/{ns.name}").rc == 0
    assert endpoints(client) == []
    ans = run(CALICO, "ADD", conf, netns=f"/run/netns/{ns.name}")  # host-local released it
    assert ans.rc == 0
    assert run(CALICO, "DEL", conf, netns=f"/run/netns/{ns.name}").rc == 0


def test_explicit_ip_via_capability(netns, store, tmp_path):
    path, client = store
    ns = netns.add("cniip")
    conf = netconf(path, str(tmp_path), runtimeConfig={"ips": ["10.77.200.5/32"]})
    ans = run(CALICO, "ADD", conf, netns=f"/run/netns/{ns.name}")
    assert ans.rc == 0, ans.stdout
    assert ans.doc["ips"][0]["address"] == "10.77.200.5/32"
    assert "inet 10.77.200.5/32" in ns.ip("addr").stdout
    assert run(CALICO, "DEL", conf, netns=f"/run/netns/{ns.name}").rc == 0


def test_add_for_an_existing_endpoint_joins_the_network(netns, store, tmp_path):
    """Calico's non-k8s behaviour: a second ADD of a live endpoint (another network with the
    same interface) answers from the endpoint and adds that network's profile."""
    path, client = store
    ns = netns.add("cnijoin")
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "assign_ipv6": "true"})
    first = run(CALICO, "ADD", conf, netns=f"/run/netns/{ns.name}")
    assert first.rc == 0, first.stdout
    other = {**conf, "name": "second-net"}
    again = run(CALICO, "ADD", other, netns=f"/run/netns/{ns.name}")
    assert again.rc == 0, again.stdout
    assert again.doc["ips"] == first.doc["ips"]
    assert again.doc["routes"] == first.doc["routes"]
    (wep,) = endpoints(client)
    assert wep.spec.profiles == ["calico-net", "second-net"]
    assert client.get("Profile", "second-net")
    assert run(CALICO, "DEL", conf, netns=f"/run/netns/{ns.name}").rc == 0
    assert endpoints(client) == []
