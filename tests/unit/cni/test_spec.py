"""The CNI protocol as a runtime sees it, without root: VERSION, errors and their codes for
bad environments and configs, and that a refused ADD leaves nothing behind."""

import json

import pytest

from calico.cni import spec
from calico.cni.netconf import NetConf, WorkloadIDs
from calico.cni.spec import CmdArgs, CNIError, Interface, IPConfig, Result, Route

from .driver import CALICO, CALICO_IPAM, endpoints, make_store, netconf, run


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "calico.db")
    return path, make_store(path)


@pytest.mark.parametrize("binary", [CALICO, CALICO_IPAM])
def test_version(binary):
    ans = run(binary, "VERSION", {"cniVersion": "1.0.0"}, container_id=None, ifname=None,
              netns="dummy", path=None)
    assert ans.rc == 0, ans.stdout + ans.stderr
    assert ans.doc == {"cniVersion": "1.0.0", "supportedVersions":
                       ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


def test_missing_command_is_an_invalid_environment_error():
    ans = run(CALICO, None, {"cniVersion": "1.0.0", "name": "n"})
    assert ans.error["code"] == 4
    assert "CNI_COMMAND" in ans.error["msg"]


@pytest.mark.parametrize("missing", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_missing_env_for_add(tmp_path, missing):
    kwargs = {"CNI_CONTAINERID": "container_id", "CNI_NETNS": "netns", "CNI_IFNAME": "ifname",
              "CNI_PATH": "path"}
    ans = run(CALICO, "ADD", netconf(str(tmp_path / "s.db"), str(tmp_path)),
              in_process=missing != "CNI_NETNS", **{kwargs[missing]: None})
    assert ans.error["code"] == 4
    assert missing in ans.error["msg"]
    assert ans.error["cniVersion"] == "1.0.0"


def test_del_does_not_need_a_netns(store, tmp_path):
    ans = run(CALICO, "DEL", netconf(store[0], str(tmp_path)), netns=None)
    assert ans.rc == 0, ans.stdout + ans.stderr
    assert ans.stdout == ""


def test_unknown_command():
    ans = run(CALICO, "FROB", {"cniVersion": "1.0.0", "name": "n"})
    assert ans.error["code"] == 4
    assert "FROB" in ans.error["msg"]


@pytest.mark.parametrize("stdin", ["", "{not json", "[1, 2]", "\xff"])
def test_undecodable_config(stdin):
    ans = run(CALICO, "ADD", stdin, in_process=stdin != "")
    assert ans.error["code"] == 6


def test_unsupported_version_is_code_1():
    ans = run(CALICO, "ADD", {"cniVersion": "2.0.0", "name": "n", "type": "calico"})
    assert ans.error["code"] == 1
    assert "2.0.0" in ans.error["msg"]


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"mtu": "big"}, "mtu"),
    ({"ipam": {"type": "calico-ipam", "assign_ipv4": "maybe"}}, "ipam.assign_ipv4"),
    ({"ipam": {"type": "calico-ipam", "ipv4_pools": "10.0.0.0/8"}}, "ipam.ipv4_pools"),
    ({"datastore_type": "kubernetes"}, "datastore"),
    ({"datastore_type": "etcdv3", "etcd_endpoints": "127.0.0.1:2379"}, "datastore"),
    ({"labels": {"app": 3}}, "labels.app"),
    ({"ipam": {"assign_ipv4": "true"}}, "ipam.type"),
])
def test_invalid_config_is_code_7_naming_the_field(store, tmp_path, change, field):
    conf = netconf(store[0], str(tmp_path), **change)
    ans = run(CALICO, "ADD", conf, in_process=True)
    assert ans.error["code"] == 7, ans.doc
    assert field in ans.error["msg"] + ans.error.get("details", "")


def test_invalid_network_name_for_a_profile(store, tmp_path):
    ans = run(CALICO, "ADD", netconf(store[0], str(tmp_path), name="Not_A_Profile"))
    assert ans.error["code"] == 7
    assert "Profile" in ans.error["details"] or "profiles" in ans.error["details"]


def test_bad_cni_args(store, tmp_path):
    ans = run(CALICO, "ADD", netconf(store[0], str(tmp_path)), cni_args="IgnoreUnknown=1;junk")
    assert ans.error["code"] == 4
    assert "CNI_ARGS" in ans.error["msg"]


def test_bad_container_id(store, tmp_path):
    ans = run(CALICO, "ADD", netconf(store[0], str(tmp_path)), container_id="-x/y")
    assert ans.error["code"] == 4


def test_add_into_a_missing_netns_is_code_3_and_leaks_nothing(store, tmp_path):
    path, client = store
    ans = run(CALICO, "ADD", netconf(path, str(tmp_path)), netns="/run/netns/cpt-nonexistent")
    assert ans.error["code"] == 3
    assert endpoints(client) == []
    items, _ = client.backend.list("/calico/ipam/v2/handle/")
    assert items == []


def test_check_needs_0_4_0_and_prev_result(store, tmp_path):
    ans = run(CALICO, "CHECK", netconf(store[0], str(tmp_path), version="0.3.1"))
    assert ans.error["code"] == 1
    ans = run(CALICO, "CHECK", netconf(store[0], str(tmp_path)))
    assert ans.error["code"] == 7
    assert "prevResult" in ans.error["msg"]


def test_check_of_a_missing_endpoint(store, tmp_path):
    prev = {"cniVersion": "1.0.0", "ips": [{"address": "10.77.0.5/32"}]}
    ans = run(CALICO, "CHECK", netconf(store[0], str(tmp_path), prevResult=prev))
    assert ans.error["code"] == 103
    assert "does not exist" in ans.error["msg"]


def test_delegated_ipam_plugin_missing_from_cni_path(store, tmp_path):
    conf = netconf(store[0], str(tmp_path), ipam={"type": "no-such-ipam"})
    ans = run(CALICO, "DEL", conf, path=str(tmp_path))
    assert ans.error["code"] == 7
    assert "no-such-ipam" in ans.error["msg"]


# ---- in-process: results, CNI_ARGS, identities ------------------------------------------

def _result() -> Result:
    return Result(interfaces=[Interface("cali1", "ee:ee:ee:ee:ee:ee"),
                              Interface("eth0", "aa:bb:cc:dd:ee:ff", "/run/netns/x")],
                  ips=[IPConfig("10.0.0.1/32", "169.254.1.1", 1),
                       IPConfig("fd00::1/128", "", 1)],
                  routes=[Route("0.0.0.0/0", "169.254.1.1"), Route("::/0", "fe80::1")])


def test_result_1_0_0_has_no_ip_versions():
    doc = _result().to_json("1.0.0")
    assert doc["cniVersion"] == "1.0.0"
    assert doc["ips"][0] == {"address": "10.0.0.1/32", "gateway": "169.254.1.1",
                             "interface": 1}
    assert doc["interfaces"][1]["sandbox"] == "/run/netns/x"


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_result_0_3_and_0_4_carry_ip_versions(version):
    doc = _result().to_json(version)
    assert doc["cniVersion"] == version
    assert [ip["version"] for ip in doc["ips"]] == ["4", "6"]
    assert Result.from_json(doc) == _result()


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_result_legacy_shape(version):
    doc = _result().to_json(version)
    assert doc["ip4"] == {"ip": "10.0.0.1/32", "gateway": "169.254.1.1",
                          "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]}
    assert doc["ip6"]["ip"] == "fd00::1/128"
    assert "ips" not in doc
    back = Result.from_json(doc)
    assert [ip.address for ip in back.ips] == ["10.0.0.1/32", "fd00::1/128"]


def test_result_from_garbage():
    with pytest.raises(CNIError) as err:
        Result.from_json({"ips": [{"address": "not-an-ip"}]})
    assert err.value.code == 6


def test_cni_args_parsing():
    assert spec.parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.1") == {
        "IgnoreUnknown": "1", "K8S_POD_NAME": "web", "IP": "10.0.0.1"}
    assert spec.parse_cni_args("") == {}


def _args(**cni_args: str) -> CmdArgs:
    return CmdArgs("ADD", "0123456789abcdef", "/run/netns/x", "eth0", dict(cni_args))


def _conf(tmp_path) -> NetConf:
    return NetConf.parse(json.dumps(netconf(str(tmp_path / "s.db"), str(tmp_path))).encode(),
                         {})


def test_identity_cni(tmp_path):
    ids = WorkloadIDs.of(_conf(tmp_path), _args(K8S_POD_NAME="web"))  # podman: name only
    assert (ids.orchestrator, ids.namespace) == ("cni", "default")
    assert ids.endpoint_name() == "node--1-cni-0123456789abcdef-eth0"
    assert ids.handle_id("calico-net") == "calico-net.0123456789abcdef"
    assert ids.host_veth_name().startswith("cali") and len(ids.host_veth_name()) == 15


def test_identity_k8s_uses_calicos_veth_name(tmp_path):
    import hashlib

    ids = WorkloadIDs.of(_conf(tmp_path), _args(K8S_POD_NAMESPACE="ns1", K8S_POD_NAME="web-0"))
    assert (ids.orchestrator, ids.namespace, ids.pod) == ("k8s", "ns1", "web-0")
    assert ids.endpoint_name() == "node--1-k8s-web--0-eth0"
    assert ids.host_veth_name() == "cali" + hashlib.sha1(b"ns1.web-0").hexdigest()[:11]


def test_route_protocol_is_felixs():
    from calico.cni.dataplane import ROUTE_PROTOCOL
    from calico.felix.dataplane.routes import DEFAULT_ROUTE_PROTOCOL

    assert ROUTE_PROTOCOL == DEFAULT_ROUTE_PROTOCOL


def test_install_writes_executable_wrappers(tmp_path):
    import os
    import subprocess

    from calico.cni import install

    paths = install(str(tmp_path / "bin"))
    assert sorted(os.path.basename(p) for p in paths) == ["calico", "calico-ipam"]
    for path in paths:
        assert os.access(path, os.X_OK)
        out = subprocess.run([path], input=b'{"cniVersion":"1.0.0"}', capture_output=True,
                             env={"CNI_COMMAND": "VERSION"})
        assert json.loads(out.stdout)["cniVersion"] == "1.0.0"
