"""calicoctl against the embedded datastore: Calico's commands, flags and messages."""

import glob
import os

import pytest
import yaml

from calico import api
from calico.datastore.local import LocalBackend

# calicoctl refuses to write ClusterInformation (Calico manages it): that fixture is for the API.
FIXTURES = sorted(p for p in glob.glob(os.path.join(os.path.dirname(__file__), "..", "..",
                                                    "fixtures", "manifests", "*", "*.yaml"))
                  if not p.endswith("clusterinformation.yaml"))


GNP = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-dns
spec:
  selector: all()
  egress:
  - action: Allow
    protocol: UDP
    destination:
      ports: [53]
"""


def test_apply_get_delete(ctl):
    res = ctl("apply", "-f", "-", input=GNP)
    assert res.exit_code == 0, res.output
    assert "Successfully applied 1 'GlobalNetworkPolicy' resource(s)" in res.output
    res = ctl("get", "gnp", "-o", "wide")
    assert res.output.split("\n")[0].split() == ["NAME", "TIER", "ORDER", "SELECTOR"]
    assert "allow-dns" in res.output
    res = ctl("get", "globalnetworkpolicy", "allow-dns", "-o", "json")
    assert '"types": [\n      "Egress"' in res.output
    res = ctl("delete", "gnp", "allow-dns")
    assert res.exit_code == 0 and "Successfully deleted 1" in res.output
    res = ctl("delete", "gnp", "allow-dns")
    assert res.exit_code == 1 and "resource does not exist" in res.output
    assert ctl("delete", "gnp", "allow-dns", "--skip-not-exists").exit_code == 0


def test_invalid_document_is_rejected_alone(ctl):
    bad = GNP.replace("[53]", "[53, 70000]").replace("allow-dns", "bad-one")
    res = ctl("apply", "-f", "-", input=GNP + "---\n" + bad)
    assert res.exit_code == 1
    assert ('Failed to apply GlobalNetworkPolicy "bad-one": spec.egress[0].destination.ports[1]:'
            ' 70000 is not a valid port (1-65535)') in res.output
    assert "Traceback" not in res.output
    assert "applied GlobalNetworkPolicy \"allow-dns\"" in res.output
    assert "bad-one" not in ctl("get", "gnp").output


def test_syntax_error_writes_nothing(ctl):
    res = ctl("apply", "-f", "-", input=GNP + "---\nkind: [unclosed\n")
    assert res.exit_code == 1 and "invalid YAML/JSON" in res.output
    assert "allow-dns" not in ctl("get", "gnp").output


def test_create_existing_and_skip_exists(ctl):
    assert ctl("create", "-f", "-", input=GNP).exit_code == 0
    res = ctl("create", "-f", "-", input=GNP)
    assert res.exit_code == 1 and "already exists" in res.output
    assert ctl("create", "--skip-exists", "-f", "-", input=GNP).exit_code == 0


def test_replace_with_stale_resource_version_conflicts(ctl):
    ctl("apply", "-f", "-", input=GNP)
    doc = yaml.safe_load(ctl("get", "gnp", "allow-dns", "-o", "yaml").output)
    ctl("label", "gnp", "allow-dns", "team=a")
    res = ctl("replace", "-f", "-", input=yaml.safe_dump(doc))
    assert res.exit_code == 1 and "update conflict: GlobalNetworkPolicy(allow-dns)" in res.output


def test_namespaces(ctl):
    np = GNP.replace("GlobalNetworkPolicy", "NetworkPolicy")
    assert ctl("apply", "-n", "prod", "-f", "-", input=np).exit_code == 0
    assert "allow-dns" not in ctl("get", "np").output  # default namespace
    assert "allow-dns" in ctl("get", "np", "-n", "prod").output
    out = ctl("get", "np", "-A").output
    assert out.split("\n")[0].split() == ["NAMESPACE", "NAME", "TIER"]
    res = ctl("get", "gnp", "-n", "prod")
    assert res.exit_code == 1 and "GlobalNetworkPolicy is not namespaced" in res.output


def test_patch_and_label(ctl):
    ctl("apply", "-f", "-", input=GNP)
    res = ctl("patch", "gnp", "allow-dns", "-p", '{"spec": {"order": 10}}')
    assert res.exit_code == 0, res.output
    assert "10" in ctl("get", "gnp", "-o", "wide").output
    res = ctl("patch", "gnp", "allow-dns", "-p", '{"spec": {"order": "high"}}')
    assert res.exit_code == 1 and "spec.order" in res.output
    assert ctl("label", "gnp", "allow-dns", "team=a").exit_code == 0
    res = ctl("label", "gnp", "allow-dns", "team=b")
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert ctl("label", "gnp", "allow-dns", "team=b", "--overwrite").exit_code == 0
    assert "team: b" in ctl("get", "gnp", "allow-dns", "-o", "yaml").output
    assert ctl("label", "gnp", "allow-dns", "team", "--remove").exit_code == 0


def test_unknown_kind_and_format(ctl):
    res = ctl("get", "widgets")
    assert res.exit_code == 1 and "resource type 'widgets' is not supported" in res.output
    res = ctl("get", "gnp", "-o", "xml")
    assert res.exit_code == 1 and "unrecognized output format" in res.output


def test_directory_input(ctl, tmp_path):
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "a.yaml").write_text(GNP)
    (d / "b.yml").write_text(GNP.replace("allow-dns", "second"))
    (d / "ignored.txt").write_text("not yaml: [")
    res = ctl("apply", "-f", str(d))
    assert res.exit_code == 0 and "Successfully applied 2" in res.output


@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_fixture_round_trip_changes_nothing(ctl, path, tmp_path):
    """apply, get -o yaml, apply that output: nothing changes, not even a revision."""
    res = ctl("apply", "-f", path)
    assert res.exit_code == 0, res.output
    with open(path) as f:
        kinds = sorted({d["kind"] for d in api.parse_documents(f.read())})
    store = LocalBackend(os.environ["CALICO_DATASTORE_PATH"])
    for kind in kinds:
        scope = ["-A"] if api.KINDS[kind].NAMESPACED else []
        listed = ctl("get", kind, *scope, "-o", "yaml")
        assert listed.exit_code == 0, listed.output
        out = tmp_path / f"{kind}.yaml"
        out.write_text(listed.output)
        before = store.revision()
        res = ctl("apply", "-f", str(out))
        assert res.exit_code == 0, res.output
        assert store.revision() == before
        assert ctl("get", kind, *scope, "-o", "yaml").output == listed.output
