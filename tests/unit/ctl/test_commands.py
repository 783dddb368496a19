"""calicoctl validate and ipam split (issue #21 item 10) against the local store."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from calico.ctl.ipamsplit import split_cidr
from calico.ctl.main import _register_optional_groups, cli
from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend

GOOD = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: a}
spec: {cidr: 10.0.0.0/16}
"""
BAD = GOOD.replace("name: a", "name: b").replace("10.0.0.0/16", "10.0.0.0/99")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CALICO_DATASTORE_PATH", str(tmp_path / "calico.db"))
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    _register_optional_groups()
    return tmp_path


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_validate_is_offline_and_reports_as_calico(env):
    res = run("validate", "-f", "-", input=GOOD + "---\n" + GOOD.replace("name: a", "name: c"))
    assert res.exit_code == 0
    assert res.stdout == "Successfully validated 2 'IPPool' resource(s)\n"
    res = run("validate", "-f", "-", input=GOOD + "---\n" + BAD)
    assert res.exit_code == 1
    assert res.stdout == "Partial success: validated the first 1 out of 2 'IPPool' resources:\n"
    assert 'spec.cidr: "10.0.0.0/99" is not a valid CIDR' in res.stderr
    assert "hit error: [" in res.stderr
    res = run("validate", "-f", "-", input=BAD)
    assert res.exit_code == 1
    assert "failed to validate 'IPPool' resource: [" in res.stderr
    assert not os.path.exists(env / "calico.db")  # nothing connected to a datastore


def test_validate_as_a_subprocess(env, tmp_path):
    path = tmp_path / "pool.yaml"
    path.write_text(GOOD)
    out = subprocess.run([sys.executable, "-m", "calico.ctl.main", "validate", "-f", str(path)],
                         capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode == 0 and out.stdout == "Successfully validated 1 'IPPool' resource(s)\n"


def test_split_cidr():
    assert split_cidr("10.0.0.0/16", 2) == ["10.0.0.0/17", "10.0.128.0/17"]
    assert split_cidr("fd00:65::/48", 4)[-1] == "fd00:65:0:c000::/50"
    assert split_cidr("10.0.1.5/24", 2) == ["10.0.1.0/25", "10.0.1.128/25"]
    for parts, why in ((3, "not a valid power of 2: 3"), (1, "not a valid power of 2: 1"),
                       (512, "not large enough to be split into 512 parts")):
        with pytest.raises(ValueError, match=why):
            split_cidr("10.0.0.0/24", parts)


def _lock(env, ready: bool) -> ResourceClient:
    client = ResourceClient(LocalBackend(str(env / "calico.db")))
    client.apply({"apiVersion": "projectcalico.org/v3", "kind": "ClusterInformation",
                  "metadata": {"name": "default"}, "spec": {"datastoreReady": ready}})
    return client


def test_ipam_split(env):
    pool = GOOD.replace("metadata: {name: a}", "metadata: {name: a, labels: {team: x}}") \
        .replace("{cidr: 10.0.0.0/16}", "{cidr: 10.0.0.0/16, natOutgoing: true}")
    assert run("apply", "-f", "-", input=pool).exit_code == 0
    client = _lock(env, True)
    res = run("ipam", "split", "2", "--name", "a")
    assert res.exit_code == 1
    assert "datastore is not locked. Run the `calicoctl datastore migrate lock` command" \
        in res.output
    _lock(env, False)
    res = run("ipam", "split", "2", "--cidr", "10.0.0.0/16")
    assert res.exit_code == 0, res.output
    assert res.stdout == ("IP Pool a was successfully split into 2 smaller pools."
                          "Created split-a-0 with CIDR 10.0.0.0/17.\n"
                          "Created split-a-1 with CIDR 10.0.128.0/17.\n"
                          "Please refer to the documentation for final steps.")
    pools = {p.name: p.to_dict() for p in client.list("IPPool").items}
    assert set(pools) == {"split-a-0", "split-a-1"}
    assert pools["split-a-1"]["spec"]["cidr"] == "10.0.128.0/17"
    assert pools["split-a-1"]["spec"]["natOutgoing"] is True
    assert not pools["split-a-1"]["spec"].get("disabled")
    assert pools["split-a-1"]["metadata"]["labels"] == {"team": "x"}


def test_ipam_split_refusals_write_nothing(env):
    assert run("apply", "-f", "-", input=GOOD.replace("10.0.0.0/16", "10.0.0.0/26")
               ).exit_code == 0
    client = _lock(env, False)
    before = client.backend.revision()
    for args, why in ((["3", "--name", "a"], "not a valid power of 2: 3"),
                      (["x", "--name", "a"], "x is not a valid number"),
                      (["2"], "no name or CIDR provided"),
                      (["2", "--name", "nope"], "unable to find IP pool with name nope"),
                      (["2", "--cidr", "10.9.0.0/16"], "covering the specified CIDR 10.9.0.0/16"),
                      # /27 children would be smaller than the pool's /26 blocks
                      (["2", "--name", "a"], "split-a-0")):
        res = run("ipam", "split", *args)
        assert res.exit_code == 1 and why in res.output, (args, res.output)
    assert client.backend.revision() == before
    assert [p.name for p in client.list("IPPool").items] == ["a"]


SPACES = """\
apiVersion: projectcalico.org/v3
kind: AddressSpace
metadata: {name: blue}
---
apiVersion: projectcalico.org/v3
kind: AddressSpace
metadata: {name: green}
spec: {translationPrefix: "fd00:64::/96"}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: blue}
spec: {cidr: 10.200.0.0/24, addressSpace: blue}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: green}
spec: {cidr: 10.200.0.0/24, addressSpace: green}
"""


def test_address_spaces_apply_get_delete(env):
    """Our extension through calicoctl: spaces and the pools that name them in one manifest
    (spaces first), the table, one-line refusals, delete in order."""
    res = run("apply", "-f", "-", input=SPACES)
    assert res.exit_code == 0, res.stderr
    res = run("get", "addressspaces")
    assert res.stdout.split() == ["NAME", "PREFIX", "blue", "64:ff9b:1::/96",
                                  "green", "fd00:64::/96"]
    res = run("get", "ippool", "blue", "-o", "yaml")
    assert "addressSpace: blue" in res.stdout
    res = run("create", "-f", "-", input=SPACES.split("---\n")[2].replace(
        "name: blue", "name: blue2").replace("10.200.0.0/24", "10.200.0.0/25"))
    assert res.exit_code == 1
    assert 'IPPool "blue2": spec.cidr: "10.200.0.0/25" overlaps with IPPool "blue"' in res.stderr
    res = run("delete", "addressspace", "blue")
    assert res.exit_code == 1 and 'IPPool "blue" is in address space "blue"' in res.stderr
    assert run("delete", "ippool", "blue").exit_code == 0
    assert run("delete", "addressspace", "blue").exit_code == 0
    assert run("get", "addressspaces").stdout.split() == ["NAME", "PREFIX", "green",
                                                          "fd00:64::/96"]
