"""Acceptance for installing on a real host: `pip install` of the wheel built from this tree
gives every command (tests/fixtures/wheel.py: a new venv that sees only the runtime
dependencies); that venv's `calico-node install` writes into a temporary root; every unit
passes `systemd-analyze verify`; then a lab host is started the way systemd would start it —
the unit's own ExecStart, Environment= and EnvironmentFile=, working directory `/`, in the
host's network namespace, against the lab's etcd — and its workloads reach the other hosts'
and back. calico-node and Felix of that host log to the files the operator named in
calico.env: one line per event with time, level, component and the resource concerned, and
Felix's file is reopened after it is rotated away."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

from calico.lab.proc import spawn, stop_daemon
from tests.conftest import require_programs
from tests.fixtures.wheel import ROOT, InstalledWheel, install_wheel

from .conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNITS = ("calico-node.service", "calico-dhcp-agent.service")
COMMANDS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
# `2026-12-04 18:00:00.123 [INFO][felix 4242] calico.felix: message`
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
                      r"\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\]\[(?P<component>[a-z-]+) \d+\] "
                      r"[\w.-]+: \S")


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


def read(path: str) -> str:
    """A file's text; empty while it does not exist (yet)."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def log_lines(path: str, *components: str) -> list[str]:
    """A daemon's log file, every line checked: time, level, component, logger, message."""
    lines = read(path).splitlines()
    assert lines, f"{path} is empty"
    for line in lines:
        m = LOG_LINE.match(line)
        assert m and m.group("component") in components, f"{path}: {line!r}"
    return lines


def run_clean(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """A command as an operator's shell runs it: systemd's PATH, nothing of this test's
    Python environment, working directory `/` (so nothing is imported from this tree)."""
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", **kwargs.pop("env", {})}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", **kwargs)


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> InstalledWheel:
    return install_wheel(str(tmp_path_factory.mktemp("wheel")))


def test_wheel_gives_every_command_with_only_the_runtime_dependencies(package):
    where = run_clean([package.python, "-c", "import calico; print(calico.__file__)"])
    assert where.stdout.startswith(package.venv), where.stdout + where.stderr
    scripts = run_clean([package.python, "-c", "from importlib.metadata import distribution; "
                         "print(' '.join(e.name for e in distribution('calico-py')"
                         ".entry_points if e.group == 'console_scripts'))"])
    assert set(scripts.stdout.split()) == COMMANDS, scripts.stderr
    for command in sorted(COMMANDS - {"calico", "calico-ipam"}):
        res = run_clean([os.path.join(package.bin_dir, command), "--help"])
        usage = f"usage: {command}"
        assert res.returncode == 0 and usage in res.stdout.lower(), (command, res)
    for plugin in ("calico", "calico-ipam"):
        res = run_clean([os.path.join(package.bin_dir, plugin)], input="{}",
                        env={"CNI_COMMAND": "VERSION"})
        assert '"supportedVersions"' in res.stdout, (plugin, res)
    names = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in package.requires}
    assert names == {"pydantic", "pyyaml", "click", "prometheus-client", "pyroute2"}
    assert "rich" not in {d.lower() for d in package.deps}
    assert run_clean([package.python, "-c", "import rich"]).returncode == 1
    # pip's own check: every runtime requirement of the installed wheel is satisfied.
    check = subprocess.run([sys.executable, "-m", "pip", "--python", package.python, "check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory, package):
    root = str(tmp_path_factory.mktemp("root"))
    argv = [os.path.join(package.bin_dir, "calico-node"), "install", "--root", root, "--cni",
            "--openstack", "--datastore-type", "etcdv3", "--etcd-endpoints",
            "http://127.0.0.1:2379"]
    first = run_clean(argv)
    assert first.returncode == 0, first.stderr
    again = run_clean(argv)
    assert again.returncode == 0 and "wrote" not in again.stdout, again.stdout
    return root


def test_every_unit_passes_systemd_analyze_verify(installed, package):
    require_programs("systemd-analyze")
    units = [os.path.join(installed, "etc/systemd/system", u) for u in UNITS]
    res = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True,
                         text=True)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
    for unit in units:
        service = unit_service(unit)
        assert service["Restart"] == ["always"]
        exe = shlex.split(service["ExecStart"][0])[0]
        assert os.path.dirname(exe) == package.bin_dir and os.access(exe, os.X_OK), exe


def test_cni_files_are_where_runtimes_look(installed):
    for plugin in ("calico", "calico-ipam"):
        assert os.access(os.path.join(installed, "opt/cni/bin", plugin), os.X_OK)
    version = run_clean([os.path.join(installed, "opt/cni/bin/calico")], input="{}",
                        env={"CNI_COMMAND": "VERSION"})
    assert '"supportedVersions"' in version.stdout, version.stdout + version.stderr
    assert os.path.exists(os.path.join(installed, "etc/cni/net.d/10-calico.conflist"))


def test_host_started_by_its_unit_joins_the_lab(installed, make_lab):
    lab = make_lab("i", hosts=3, datastore="etcdv3")
    host = lab.host("host3")
    lab.stop_node("host3")
    node_log = os.path.join(host["run_dir"], "unit-calico-node-file.log")
    felix_log = os.path.join(host["run_dir"], "unit-felix.log")
    # The operator's edit of the installed environment file for this host.
    with open(os.path.join(installed, "etc/calico/calico.env"), "a") as f:
        f.write(f"NODENAME=host3\nIP={host['address']}\nIP6=none\n"
                f"CALICO_RUN_DIR={host['run_dir']}\nCALICO_LOGFILEPATH={node_log}\n"
                f"FELIX_LOGFILEPATH={felix_log}\n")
    service = unit_service(os.path.join(installed, "etc/systemd/system/calico-node.service"))
    env = unit_environment(installed, service)
    assert env["DATASTORE_TYPE"] == "etcdv3" and env["NODENAME"] == "host3"
    argv = shlex.split(service["ExecStart"][0])
    host["node"] = spawn(argv, os.path.join(host["run_dir"], "unit-calico-node.log"),
                         env=env, netns=host["netns"], cwd="/")
    lab.save()
    try:
        lab.wait_established(60.0, hosts=["host3"])
        lab.add_workload("host1", "w1")
        lab.add_workload("host3", "w3")
        for src, dst in (("w1", "w3"), ("w3", "w1")):
            for addr in lab.workload(dst)["addresses"]:
                wait_until(lambda s=src, a=addr: lab.ping(s, a), 10.0,
                           f"{src} -> {dst} ({addr})")
        check_logs(lab, node_log, felix_log)
    finally:
        stop_daemon(host.get("node"))


def check_logs(lab, node_log: str, felix_log: str) -> None:
    """calico-node's (with its children's) and Felix's files: one line per event, naming the
    Node or endpoint; Felix's file rotated away (as logrotate does) is followed by a new one
    at the path."""
    # calico-node and the BGP daemon it supervises share CALICO_LOGFILEPATH.
    lines = log_lines(node_log, "calico-node", "bgp-daemon", "tunnel-addrs")
    assert any("[calico-node " in line and "Node host3" in line for line in lines)
    assert any("[bgp-daemon " in line and "node host3" in line for line in lines)
    wait_until(lambda: "-cni-w3-eth0" in read(felix_log), 10.0, "w3 in Felix's log")
    os.rename(felix_log, felix_log + ".1")
    lab.add_workload("host3", "w4")
    wait_until(lambda: "-cni-w4-eth0" in read(felix_log), 10.0,
               "Felix logging w4 to a new file after rotation")
    assert any("-cni-w3-eth0" in line for line in log_lines(felix_log + ".1", "felix"))
    assert not any("-cni-w3-eth0" in line for line in log_lines(felix_log, "felix"))
