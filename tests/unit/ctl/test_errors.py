"""calicoctl's errors carry the phrases scripts written for Calico's calicoctl look for
(issue #21 item 9), with our detail after them."""

import yaml
from click.testing import CliRunner

from calico.ctl.main import _register_optional_groups, cli

POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec: {cidr: 10.0.0.0/16}
"""
TWO = POOL + "---\n" + POOL.replace("p1", "p2").replace("10.0.0.0", "10.1.0.0")


def test_create_existing(ctl):
    assert ctl("create", "-f", "-", input=TWO).exit_code == 0
    res = ctl("create", "-f", "-", input=POOL)
    assert res.exit_code == 1
    assert "resource already exists: IPPool(p1)" in res.stderr
    assert "failed to create 'IPPool' resource: [" in res.stderr
    res = ctl("create", "-f", "-", input=TWO)
    assert "failed to create any 'IPPool' resources: [" in res.stderr
    res = ctl("create", "-f", "-", input=TWO.replace("p2", "p3").replace("10.1.", "10.3."))
    assert res.exit_code == 1
    assert "Partial success: created the first 1 out of 2 'IPPool' resources:" in res.stdout
    assert "hit error: [" in res.stderr and "resource already exists: IPPool(p1)" in res.stderr


def test_stale_resource_version_is_an_update_conflict(ctl):
    assert ctl("apply", "-f", "-", input=POOL).exit_code == 0
    doc = yaml.safe_load(ctl("get", "ippool", "p1", "-o", "yaml").stdout)
    doc["metadata"]["labels"] = {"a": "b"}
    assert ctl("replace", "-f", "-", input=yaml.safe_dump(doc)).exit_code == 0
    doc["metadata"]["labels"] = {"a": "c"}
    res = ctl("replace", "-f", "-", input=yaml.safe_dump(doc))  # the old resourceVersion
    assert res.exit_code == 1
    assert "update conflict: IPPool(p1)" in res.stderr
    assert "failed to replace 'IPPool' resource: [" in res.stderr


def test_missing_resource(ctl):
    profile = "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: x}\n"
    assert ctl("apply", "-f", "-", input=profile).exit_code == 0  # the store exists
    res = ctl("delete", "ippool", "nope")
    assert res.exit_code == 1
    assert "Failed to delete 'IPPool' resource: resource does not exist: IPPool(nope)" \
        in res.stderr
    res = ctl("replace", "-f", "-", input=POOL)
    assert res.exit_code == 1 and "resource does not exist: IPPool(p1)" in res.stderr
    res = ctl("patch", "ippool", "nope", "-p", '{"spec": {"disabled": true}}')
    assert res.exit_code == 1 and "resource does not exist: IPPool(nope)" in res.stderr


def test_unknown_flags_in_cobras_words(ctl):
    res = ctl("get", "-x", "ippool")
    assert res.exit_code == 1
    assert "Error: unknown shorthand flag: 'x' in -x" in res.output
    res = ctl("apply", "--bogus", "-f", "-")
    assert res.exit_code != 0 and "Error: unknown flag: --bogus" in res.output
    _register_optional_groups()
    res = CliRunner().invoke(cli, ["ipam", "show", "-Z"])
    assert res.exit_code != 0 and "unknown shorthand flag: 'Z' in -Z" in res.output


def test_phrase_helpers():
    from calico.ctl.errors import cobra_flag_error, failed_summary, identifier, not_supported

    assert identifier("NetworkPolicy", "x", "ns") == "NetworkPolicy(ns/x)"
    assert str(not_supported("delete", "ClusterInformation(default)", "resource is readonly")) \
        == "operation delete is not supported on ClusterInformation(default): resource is readonly"
    assert cobra_flag_error("-xf") == "unknown shorthand flag: 'x' in -xf"
    assert cobra_flag_error("--nope") == "unknown flag: --nope"
    assert failed_summary("apply", {"IPPool", "Profile"}, 2, ["a", "b"]) == \
        "failed to apply any resources: [a b]"
