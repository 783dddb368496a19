"""Pure pieces of the lab: ToR configurations, CNI network config, names, pid records."""

import os
import subprocess
import time
import tomllib

import pytest

from calico.lab import tor
from calico.lab.lab import Lab
from calico.lab.proc import LabError, alive, spawn, start_time
from calico.lab.workloads import netconf
from tests.conftest import require_programs

HOSTS = [{"name": "host1", "address": "198.18.0.11/24", "address6": "fd00:198:18::11/64"},
         {"name": "host2", "address": "198.18.0.12/24", "address6": None}]


def test_gobgp_config_peers_every_host_per_family():
    doc = tomllib.loads(tor.gobgp_config("198.18.0.1", "198.18.0.1", "fd00:198:18::1", HOSTS))
    assert doc["global"]["config"]["as"] == tor.TOR_ASN
    got = [(n["config"]["neighbor-address"], n["afi-safis"][0]["config"]["afi-safi-name"])
           for n in doc["neighbors"]]
    assert got == [("198.18.0.11", "ipv4-unicast"), ("fd00:198:18::11", "ipv6-unicast"),
                   ("198.18.0.12", "ipv4-unicast")]


def test_bird_tor_config_is_valid(tmp_path):
    require_programs("bird")
    conf = tmp_path / "tor.conf"
    conf.write_text(tor.bird_config("198.18.0.1", "198.18.0.1", "fd00:198:18::1", HOSTS))
    proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_netconf_for_each_datastore():
    local = netconf("host1", {"DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": "/x.db"},
                    True, "/l", {"group": "red"})
    assert local["datastore_path"] == "/x.db" and local["ipam"]["assign_ipv6"] == "true"
    assert local["args"]["cni"]["labels"] == [{"key": "group", "value": "red"}]
    etcd = netconf("host1", {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": "http://a:1"},
                   False, "/l", {})
    assert etcd["etcd_endpoints"] == "http://a:1" and "datastore_path" not in etcd


@pytest.mark.parametrize("name", ["", "a_b", "x" * 13, "a/b"])
def test_lab_names(name):
    with pytest.raises(LabError):
        Lab(name)


def test_state_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CALICO_LAB_STATE_DIR", str(tmp_path))
    lab = Lab("x1")
    assert lab.dir == str(tmp_path / "x1") and lab.prefix == "calab-x1-"
    with pytest.raises(LabError, match="is not up"):
        lab.load()


def test_pid_records_detect_reuse():
    me = {"pid": os.getpid(), "start": start_time(os.getpid())}
    assert alive(me)
    assert not alive({**me, "start": me["start"] + 1})
    assert not alive(None)


def test_a_dead_child_is_not_alive(tmp_path):
    """A daemon killed while the lab's Python process is its parent stays a zombie until
    reaped; `alive` must say dead (else `start_node` after a kill -9 starts nothing)."""
    rec = spawn(["sleep", "30"], str(tmp_path / "log"))
    assert alive(rec)
    os.kill(rec["pid"], 9)
    deadline = time.monotonic() + 5
    while alive(rec) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(rec)
    assert start_time(rec["pid"]) is None  # reaped


@pytest.mark.parametrize("kwargs", [{"subnets": 0}, {"subnets": 2, "tor": "gobgp"},
                                    {"subnets": 2, "ipv6": True}, {"subnets": 51}])
def test_subnets_setting_is_checked_before_anything_is_built(kwargs, tmp_path, monkeypatch):
    monkeypatch.setenv("CALICO_LAB_STATE_DIR", str(tmp_path))
    with pytest.raises(LabError, match="--subnets"):
        Lab("sub").up(**kwargs)
    assert not os.listdir(tmp_path)
