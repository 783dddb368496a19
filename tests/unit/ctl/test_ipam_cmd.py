"""`calicoctl ipam` against the embedded datastore: show, release, check --fix, configure."""

import re

import pytest
from click.testing import CliRunner

from calico import api
from calico.api.endpoints import workload_endpoint_name
from calico.ctl.main import _register_optional_groups, cli
from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.ipam import IPAM, workload_attrs

POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.66.0.0/24, blockSize: 28}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    path = str(tmp_path / "calico.db")
    monkeypatch.setenv("CALICO_DATASTORE_PATH", path)
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    _register_optional_groups()
    runner = CliRunner()
    cfg = str(tmp_path / "none.cfg")

    def run(*args):
        res = runner.invoke(cli, ["ipam", args[0], "-c", cfg, *args[1:]],
                            catch_exceptions=False)
        return res
    backend = LocalBackend(path)
    client = ResourceClient(backend)
    client.apply(api.load(POOL)[0])
    client.apply({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                  "metadata": {"name": "h1"}, "spec": {}})
    return run, backend, client


def _workload(client, ipam, name):
    spec = {"node": "h1", "orchestrator": "cni", "containerID": name, "endpoint": "eth0",
            "interfaceName": f"cali{name}"}
    wep_name = workload_endpoint_name(spec)
    (ip,), _ = ipam.auto_assign(1, 0, handle_id=name,
                                attrs=workload_attrs("h1", "default", wep_name))
    client.create({"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
                   "metadata": {"name": wep_name, "namespace": "default"},
                   "spec": {**spec, "ipNetworks": [f"{ip}/32"]}})
    return ip, wep_name


def test_show_release_and_ip(env):
    run, backend, client = env
    ipam = IPAM(backend, "h1")
    ip, _ = _workload(client, ipam, "a1")
    out = run("show", "--show-blocks").output
    assert re.search(r"\| IP Pool  \| 10\.66\.0\.0/24 +\| +256 \| 1 \(0%\) +\| 255 \(100%\)", out)
    assert re.search(r"\| Block    \| 10\.66\.0\.\d+/28 +\| +16 \| 1 \(6%\)", out)
    out = run("show", "--ip", ip).output
    assert f"IP {ip} is in use" in out and "Handle: a1" in out
    res = run("release", "--ip", ip)
    assert res.exit_code == 0 and f"Successfully released IP address {ip}" in res.output
    assert "is not assigned" in run("show", "--ip", ip).output
    assert run("release", "--ip", ip).exit_code == 1


def test_check_finds_and_fixes_leaks(env):
    run, backend, client = env
    ipam = IPAM(backend, "h1")
    kept, _ = _workload(client, ipam, "keep")
    leaked, wep = _workload(client, ipam, "gone")
    client.delete("WorkloadEndpoint", wep, "default")  # deleted without releasing: a leak
    res = run("check", "--grace", "0")
    assert res.exit_code == 1
    assert f"leaked: {leaked}" in res.output and f"leaked: {kept}" not in res.output
    assert "Found 1 problem(s)." in res.output
    res = run("check", "--grace", "0", "--fix")
    assert res.exit_code == 0 and f"released {leaked}" in res.output
    res = run("check", "--grace", "0")
    assert res.exit_code == 0 and "No problems found." in res.output
    assert ipam.get_assignment(kept) is not None


def test_configure_strict_affinity(env):
    run, backend, _ = env
    assert run("configure", "--strictaffinity=true").exit_code == 0
    assert IPAM(backend, "h1").get_config().strict_affinity is True
    assert "| StrictAffinity     | true  |" in run("show", "--show-configuration").output
    res = run("configure")
    assert res.exit_code == 1 and "nothing to configure" in res.output
