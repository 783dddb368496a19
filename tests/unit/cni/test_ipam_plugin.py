"""calico-ipam driven as a runtime (or the calico plugin) drives it; no root needed."""

import pytest

from .driver import CALICO_IPAM, handle_addresses, handle_exists, make_store, netconf, run

HANDLE = "calico-net.c0ffee01"


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "calico.db")
    return path, make_store(path)


def test_add_then_del_twice(store, tmp_path):
    path, client = store
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "assign_ipv6": "true"})
    ans = run(CALICO_IPAM, "ADD", conf)
    assert ans.rc == 0, ans.stdout + ans.stderr
    addresses = [ip["address"] for ip in ans.doc["ips"]]
    assert addresses[0].startswith("10.77.") and addresses[0].endswith("/32")
    assert addresses[1].startswith("fd00:77:") and addresses[1].endswith("/128")
    assert "interfaces" not in ans.doc
    assert sorted(handle_addresses(client, HANDLE)) == sorted(a.split("/")[0]
                                                              for a in addresses)
    for _ in range(2):
        ans = run(CALICO_IPAM, "DEL", conf)
        assert ans.rc == 0, ans.stdout + ans.stderr
        assert handle_addresses(client, HANDLE) == []
        assert not handle_exists(client, HANDLE)


def test_result_in_an_older_version(store, tmp_path):
    ans = run(CALICO_IPAM, "ADD", netconf(store[0], str(tmp_path), version="0.3.1"))
    assert ans.rc == 0, ans.stdout
    assert ans.doc["cniVersion"] == "0.3.1"
    assert ans.doc["ips"][0]["version"] == "4"


def test_explicit_ip_from_cni_args(store, tmp_path):
    path, client = store
    ans = run(CALICO_IPAM, "ADD", netconf(path, str(tmp_path)),
              cni_args="IgnoreUnknown=1;IP=10.77.9.9")
    assert ans.rc == 0, ans.stdout
    assert [ip["address"] for ip in ans.doc["ips"]] == ["10.77.9.9/32"]
    # the same address for another container is refused, with IPAM's reason
    ans = run(CALICO_IPAM, "ADD", netconf(path, str(tmp_path)), container_id="other",
              cni_args="IP=10.77.9.9")
    assert ans.error["code"] == 100
    assert "already assigned" in ans.error["details"]
    assert handle_addresses(client, "calico-net.other") == []


def test_explicit_ips_are_all_or_nothing(store, tmp_path):
    path, client = store
    conf = netconf(path, str(tmp_path), runtimeConfig={"ips": ["10.77.1.1/32", "10.99.0.1"]})
    ans = run(CALICO_IPAM, "ADD", conf)
    assert ans.error["code"] == 100
    assert "10.99.0.1" in ans.error["details"]
    assert handle_addresses(client, HANDLE) == []


def test_pools_by_name_and_cidr(tmp_path):
    path = str(tmp_path / "calico.db")
    client = make_store(path, v6=None)
    client.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                   "metadata": {"name": "other"}, "spec": {"cidr": "10.88.0.0/16"}})
    for pools in (["other"], ["10.88.0.0/16"]):
        conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "ipv4_pools": pools})
        ans = run(CALICO_IPAM, "ADD", conf)
        assert ans.doc["ips"][0]["address"].startswith("10.88."), ans.stdout
        assert run(CALICO_IPAM, "DEL", conf).rc == 0
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "ipv4_pools": ["nope"]})
    ans = run(CALICO_IPAM, "ADD", conf)
    assert ans.error["code"] == 100
    assert "nope" in ans.error["details"]


def test_exhausted_pool_releases_the_ipv4_address(tmp_path):
    path = str(tmp_path / "calico.db")
    client = make_store(path, v6=None)  # no IPv6 pool: the IPv6 half must fail
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "assign_ipv6": "true"})
    ans = run(CALICO_IPAM, "ADD", conf)
    assert ans.error["code"] == 100
    assert handle_addresses(client, HANDLE) == []


def test_nothing_requested(store, tmp_path):
    conf = netconf(store[0], str(tmp_path), ipam={"type": "calico-ipam",
                                                  "assign_ipv4": "false"})
    ans = run(CALICO_IPAM, "ADD", conf)
    assert ans.error["code"] == 100


def test_check(store, tmp_path):
    path, _ = store
    conf = netconf(path, str(tmp_path))
    added = run(CALICO_IPAM, "ADD", conf).doc
    ans = run(CALICO_IPAM, "CHECK", {**conf, "prevResult": added})
    assert ans.rc == 0, ans.stdout
    run(CALICO_IPAM, "DEL", conf)
    ans = run(CALICO_IPAM, "CHECK", {**conf, "prevResult": added})
    assert ans.error["code"] == 103


def test_address_space_same_address_twice_and_its_errors(tmp_path):
    """Our extension: `address_space` in the netconf allocates in that space's pools."""
    path = str(tmp_path / "calico.db")
    client = make_store(path, v6=None)
    for space in ("blue", "green"):
        client.create({"apiVersion": "projectcalico.org/v3", "kind": "AddressSpace",
                       "metadata": {"name": space}, "spec": {}})
        client.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                       "metadata": {"name": space}, "spec": {"cidr": "10.200.0.0/24",
                                                             "addressSpace": space}})
    for space, cid in (("blue", "a1"), ("green", "b1")):
        ans = run(CALICO_IPAM, "ADD", netconf(path, str(tmp_path), address_space=space),
                  container_id=cid, cni_args="IP=10.200.0.5")
        assert ans.rc == 0, ans.stdout
        assert [ip["address"] for ip in ans.doc["ips"]] == ["10.200.0.5/32"]
    ans = run(CALICO_IPAM, "ADD", netconf(path, str(tmp_path), address_space="blue"),
              container_id="a9", cni_args="IP=10.200.0.5")
    assert 'already assigned in address space "blue"' in ans.error["details"]
    ans = run(CALICO_IPAM, "ADD", netconf(path, str(tmp_path), address_space="blue"),
              container_id="a8", cni_args="IP=10.77.0.5")
    assert 'not in any enabled IP pool of address space "blue"' in ans.error["details"]
    ans = run(CALICO_IPAM, "ADD", netconf(path, str(tmp_path), address_space="blue"),
              container_id="a7")
    assert ans.doc["ips"][0]["address"].startswith("10.200.0.")
