"""The package's promises: every command is an entry point, runtime dependencies are only
what the daemons need, and the daemons import without the lab's extras."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

COMMANDS = {"calicoctl", "calico", "calico-ipam", "calico-node", "calico-felix",
            "calico-dhcp-agent", "calico-lab"}
DAEMON_MODULES = ["calico.felix.daemon", "calico.node.command", "calico.node.main",
                  "calico.node.install", "calico.cni.main", "calico.ctl.main",
                  "calico.ctl.ipam", "calico.ctl.node", "calico.bgp.daemon",
                  "calico.openstack.dhcp.agent"]


def test_every_command_is_an_entry_point():
    assert set(PROJECT["scripts"]) == COMMANDS


def test_runtime_dependencies_are_the_daemons_only():
    names = {d.split(">")[0].split("<")[0].split("=")[0].strip().lower()
             for d in PROJECT["dependencies"]}
    assert names == {"pydantic", "pyyaml", "click", "prometheus-client", "pyroute2"}
    assert PROJECT["optional-dependencies"]["lab"] == ["rich>=13"]


def test_daemons_import_without_the_lab_extra():
    # `sys.modules[name] = None` makes every import of it fail, as if it were not installed.
    code = ("import sys, importlib\nsys.modules['rich'] = None\n"
            f"for m in {DAEMON_MODULES!r}:\n    importlib.import_module(m)\nprint('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
