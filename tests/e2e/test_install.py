"""Acceptance for `calico-node install`: install into a temporary root, check every unit with
`systemd-analyze verify`, then start a lab host the way systemd would start it — the unit's
own ExecStart, Environment= and EnvironmentFile=, in the host's network namespace, against
the lab's etcd — and show that its workloads reach the other hosts' and back."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from calico.lab.proc import spawn, stop_daemon
from tests.conftest import require_programs

from .conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

CALICO_NODE = os.path.join(os.path.dirname(sys.executable), "calico-node")
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNITS = ("calico-node.service", "calico-dhcp-agent.service")


def unit_service(path: str) -> dict[str, list[str]]:
    """The [Service] section of a unit file: key -> values, in order."""
    section, out = None, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]":
                key, _, value = line.partition("=")
                out.setdefault(key, []).append(value)
    return out


def unit_environment(root: str, service: dict[str, list[str]]) -> dict[str, str]:
    """What systemd gives the service: its default PATH, then Environment=, then the
    EnvironmentFile= files (under the staging root), which override Environment=."""
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8"}
    for value in service.get("Environment", []):
        for item in shlex.split(value):
            key, _, val = item.partition("=")
            env[key] = val
    for value in service.get("EnvironmentFile", []):
        path = os.path.join(root, value.lstrip("-").lstrip("/"))
        if not os.path.exists(path) and value.startswith("-"):
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, _, val = line.partition("=")
                    env[key.strip()] = val.strip().strip('"')
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("root"))
    argv = [CALICO_NODE, "install", "--root", root, "--cni", "--openstack",
            "--datastore-type", "etcdv3", "--etcd-endpoints", "http://127.0.0.1:2379"]
    first = subprocess.run(argv, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 0 and "wrote" not in again.stdout, again.stdout
    return root


def test_every_unit_passes_systemd_analyze_verify(installed):
    require_programs("systemd-analyze")
    units = [os.path.join(installed, "etc/systemd/system", u) for u in UNITS]
    res = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True,
                         text=True)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
    for unit in units:
        service = unit_service(unit)
        assert service["Restart"] == ["always"]
        exe = shlex.split(service["ExecStart"][0])[0]
        assert os.access(exe, os.X_OK), exe


def test_cni_files_are_where_runtimes_look(installed):
    for plugin in ("calico", "calico-ipam"):
        assert os.access(os.path.join(installed, "opt/cni/bin", plugin), os.X_OK)
    version = subprocess.run([os.path.join(installed, "opt/cni/bin/calico")],
                             env={**os.environ, "CNI_COMMAND": "VERSION"},
                             capture_output=True, text=True, input="{}")
    assert '"supportedVersions"' in version.stdout, version.stdout + version.stderr
    assert os.path.exists(os.path.join(installed, "etc/cni/net.d/10-calico.conflist"))


def test_host_started_by_its_unit_joins_the_lab(installed, make_lab):
    lab = make_lab("i", hosts=3, datastore="etcdv3")
    host = lab.host("host3")
    lab.stop_node("host3")
    # The operator's edit of the installed environment file for this host.
    with open(os.path.join(installed, "etc/calico/calico.env"), "a") as f:
        f.write(f"NODENAME=host3\nIP={host['address']}\nIP6=none\n"
                f"CALICO_RUN_DIR={host['run_dir']}\n")
    service = unit_service(os.path.join(installed, "etc/systemd/system/calico-node.service"))
    env = unit_environment(installed, service)
    assert env["DATASTORE_TYPE"] == "etcdv3" and env["NODENAME"] == "host3"
    argv = shlex.split(service["ExecStart"][0])
    host["node"] = spawn(argv, os.path.join(host["run_dir"], "unit-calico-node.log"),
                         env=env, netns=host["netns"])
    lab.save()
    try:
        lab.wait_established(60.0, hosts=["host3"])
        lab.add_workload("host1", "w1")
        lab.add_workload("host3", "w3")
        for src, dst in (("w1", "w3"), ("w3", "w1")):
            for addr in lab.workload(dst)["addresses"]:
                wait_until(lambda s=src, a=addr: lab.ping(s, a), 10.0,
                           f"{src} -> {dst} ({addr})")
    finally:
        stop_daemon(host.get("node"))
