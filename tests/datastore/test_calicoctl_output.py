"""calicoctl's output and error phrases, byte for byte where scripts parse them (issue #21
items 6-10), as a script runs calicoctl: a subprocess against the local store and against a
real etcd (the `ctl` fixture of tests/datastore/conftest.py).

The expected texts are written out from Calico's printer rules (go-yaml-wrapper's sorted keys
and quoting, encoding/json field order, text/tabwriter with minwidth 5 and padding 3 on
tab-terminated cells, libcalico-go's error strings), not captured from our own output.
"""

import json
import os
import subprocess
import tarfile

import yaml

from calico.version import CALICO_VERSION
from tests.fixtures.calicoctl import CALICOCTL, POOLS, PROFILE, environment, ok


def test_empty_list_is_a_kind_list_at_the_stores_revision(ctl):
    ok(ctl("apply", "-f", "-", input=PROFILE))  # the store has something, but no pools
    yml = ok(ctl("get", "ippool", "-o", "yaml")).stdout
    rev = ctl.revision()
    assert yml == ("apiVersion: projectcalico.org/v3\nitems: []\nkind: IPPoolList\n"
                   f'metadata:\n  resourceVersion: "{rev}"\n')
    assert ok(ctl("get", "ippool", "-o", "json")).stdout == (
        '{\n  "kind": "IPPoolList",\n  "apiVersion": "projectcalico.org/v3",\n'
        f'  "metadata": {{\n    "resourceVersion": "{rev}"\n  }},\n  "items": []\n}}\n')
    ok(ctl("apply", "-f", "-", input=POOLS))
    out = ok(ctl("get", "ippool", "-o", "yaml")).stdout
    rev = ctl.revision()
    assert out.endswith(f'kind: IPPoolList\nmetadata:\n  resourceVersion: "{rev}"\n')
    items = yaml.safe_load(out)["items"]
    assert [i["metadata"]["name"] for i in items] == ["default-ipv4", "pool-b"]
    assert all(0 < int(i["metadata"]["resourceVersion"]) <= rev for i in items)  # its own


def test_yaml_keys_sorted_and_quoted_json_in_gos_field_order(ctl):
    ok(ctl("apply", "-f", "-", input=POOLS))
    lines = ok(ctl("get", "ippool", "pool-b", "-o", "yaml")).stdout.splitlines()
    assert lines[:3] == ["apiVersion: projectcalico.org/v3", "kind: IPPool", "metadata:"]
    meta = lines[3:lines.index("spec:")]
    assert meta[0].startswith('  creationTimestamp: "')  # a timestamp is quoted
    assert meta[1:5] == ["  labels:", "    app: web", '    zone: "1"', "  name: pool-b"]
    assert meta[5].startswith('  resourceVersion: "') and meta[6].startswith("  uid: ")
    spec = [s.split(":")[0].strip() for s in lines[lines.index("spec:") + 1:]
            if s.startswith("  ") and not s.startswith(("   ", "  -"))]
    assert spec == sorted(spec) and "  nodeSelector: rack == 'a'" in lines
    out = ok(ctl("get", "ippool", "pool-b", "-o", "json")).stdout
    doc = json.loads(out)
    assert list(doc) == ["kind", "apiVersion", "metadata", "spec"]
    assert list(doc["metadata"]) == ["name", "uid", "resourceVersion", "creationTimestamp",
                                     "labels"]
    assert '"nodeSelector": "rack == \'a\'"' in out


def test_several_names_or_documents_print_a_bare_sequence(ctl, tmp_path):
    ok(ctl("apply", "-f", "-", input=POOLS))
    out = ok(ctl("get", "ippool", "default-ipv4", "pool-b", "-o", "yaml")).stdout
    assert out.startswith("- apiVersion: projectcalico.org/v3\n  kind: IPPool\n")
    assert [d["metadata"]["name"] for d in yaml.safe_load(out)] == ["default-ipv4", "pool-b"]
    out = ok(ctl("get", "ippool", "default-ipv4", "pool-b", "-o", "json")).stdout
    assert out.startswith('[\n  {\n    "kind": "IPPool",')
    path = tmp_path / "pools.yaml"
    path.write_text(POOLS)
    docs = yaml.safe_load(ok(ctl("get", "-f", str(path), "-o", "yaml")).stdout)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("IPPool", "default-ipv4"), ("IPPool", "pool-b")]


def test_export_strips_metadata_only_when_names_are_given(ctl):
    ok(ctl("apply", "-f", "-", input=POOLS))
    doc = yaml.safe_load(ok(ctl("get", "ippool", "pool-b", "--export", "-o", "yaml")).stdout)
    assert doc["metadata"] == {"name": "pool-b", "labels": {"app": "web", "zone": "1"},
                               "creationTimestamp": None}
    listed = yaml.safe_load(ok(ctl("get", "ippool", "--export", "-o", "yaml")).stdout)
    assert {"resourceVersion", "uid"} <= listed["items"][0]["metadata"].keys()


def test_tables_are_padded_as_tabwriter_pads_them(ctl):
    ok(ctl("apply", "-f", "-", input=POOLS))
    assert ok(ctl("get", "ippool")).stdout == (
        "NAME           CIDR          SELECTOR      \n"
        "default-ipv4   10.0.0.0/16   all()         \n"
        "pool-b         10.1.0.0/24   rack == 'a'   \n"
        "\n")
    wide = ok(ctl("get", "ippool", "-o", "wide")).stdout.splitlines()
    assert wide[0].split() == ["NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED",
                               "DISABLEBGPEXPORT", "SELECTOR", "ASSIGNMENTMODE"]
    assert wide[0].endswith("ASSIGNMENTMODE   ")
    assert wide[2].split()[:3] == ["pool-b", "10.1.0.0/24", "true"]
    assert wide[2].split()[-1] == "Automatic"


def test_one_table_per_name_and_calicos_line_for_a_missing_one(ctl):
    ok(ctl("apply", "-f", "-", input=POOLS))
    res = ctl("get", "ippool", "pool-b", "nope", "default-ipv4")
    assert res.returncode == 1
    assert res.stdout == ("NAME     CIDR          SELECTOR      \n"
                          "pool-b   10.1.0.0/24   rack == 'a'   \n"
                          "\n"
                          "NAME           CIDR          SELECTOR   \n"
                          "default-ipv4   10.0.0.0/16   all()      \n"
                          "\n")
    assert "resource does not exist: IPPool(nope) with error: <nil>" in res.stderr


def test_long_nets_are_cut_and_bgppeer_node_shows_the_selector(ctl):
    nets = [f"10.{i}.0.0/16" for i in range(20)]
    gns = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
           "metadata": {"name": "many"}, "spec": {"nets": nets}}
    ok(ctl("apply", "-f", "-", input=json.dumps(gns)))
    cell = ok(ctl("get", "gns", "-o", "wide")).stdout.splitlines()[1].split()[1]
    assert cell == ",".join(nets)[:77] + "..."
    peers = """\
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 192.0.2.1, asNumber: 65001, nodeSelector: rack == 'a'}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: everyone}
spec: {peerIP: 192.0.2.2, asNumber: 65002}
"""
    ok(ctl("apply", "-f", "-", input=peers))
    assert ok(ctl("get", "bgppeer")).stdout == ("NAME       PEERIP      NODE          ASN     \n"
                                                "everyone   192.0.2.2   (global)      65002   \n"
                                                "tor        192.0.2.1   rack == 'a'   65001   \n"
                                                "\n")


def test_custom_columns_and_go_templates(ctl, tmp_path):
    ok(ctl("apply", "-f", "-", input=POOLS))
    assert ok(ctl("get", "ippool", "-o", "custom-columns=NAME,NAT")).stdout == (
        "NAME           NAT     \ndefault-ipv4   false   \npool-b         true    \n\n")
    assert ok(ctl("get", "ippool", "-o", "custom-columns=POOL:.metadata.name,"
                  "ZONE:.metadata.labels.zone")).stdout == (
        "POOL           ZONE     \ndefault-ipv4   <none>   \npool-b         1        \n\n")
    res = ctl("get", "ippool", "-o", "custom-columns=NAME,BOGUS")
    assert res.returncode == 1 and "Unknown heading BOGUS, valid values are:" in res.stderr
    tpl = ('{{range .items}}{{.metadata.name}}={{.spec.cidr}}{{if .spec.natOutgoing}} nat'
           '{{else}} plain{{end}}{{"\\n"}}{{end}}')
    assert ok(ctl("get", "ippool", "-o", f"go-template={tpl}")).stdout == (
        "default-ipv4=10.0.0.0/16 plain\npool-b=10.1.0.0/24 nat\n")
    path = tmp_path / "t.tmpl"
    path.write_text("{{range .}}{{range .Items}}{{.ObjectMeta.Name}} {{.Spec.CIDR}}\n"
                    "{{end}}{{end}}")
    assert ok(ctl("get", "ippool", "-o", f"go-template-file={path}")).stdout == (
        "default-ipv4 10.0.0.0/16\npool-b 10.1.0.0/24\n")


TWO = POOLS.replace("default-ipv4", "p1")


def test_error_messages_carry_calicos_phrases(ctl, tmp_path):
    ok(ctl("create", "-f", "-", input=TWO))
    res = ctl("create", "-f", "-", input=TWO)
    assert res.returncode == 1
    assert "resource already exists: IPPool(p1)" in res.stderr
    assert "failed to create any 'IPPool' resources: [" in res.stderr
    stale = tmp_path / "stale.json"
    stale.write_text(ok(ctl("get", "ippool", "p1", "-o", "json")).stdout)
    ok(ctl("label", "ippool", "p1", "x=y"))
    res = ctl("replace", "-f", str(stale))
    assert res.returncode == 1 and "update conflict: IPPool(p1)" in res.stderr
    res = ctl("delete", "ippool", "nope")
    assert res.returncode == 1 and "resource does not exist: IPPool(nope)" in res.stderr
    res = ctl("get", "-x", "ippool")
    assert res.returncode == 1 and "Error: unknown shorthand flag: 'x' in -x" in res.stderr
    res = ctl("delete", "clusterinformation", "default")
    assert res.returncode == 1
    assert "operation delete is not supported on ClusterInformation" in res.stderr


def test_ipam_split_after_the_datastore_is_locked(ctl):
    ok(ctl("apply", "-f", "-", input=POOLS))
    res = ctl("ipam", "split", "2", "--name", "pool-b")
    assert res.returncode == 1 and "datastore is not locked" in res.stderr + res.stdout
    ok(ctl("datastore", "migrate", "lock"))
    assert ok(ctl("ipam", "split", "2", "--name", "pool-b")).stdout == (
        "IP Pool pool-b was successfully split into 2 smaller pools."
        "Created split-pool-b-0 with CIDR 10.1.0.0/25.\n"
        "Created split-pool-b-1 with CIDR 10.1.0.128/25.\n"
        "Please refer to the documentation for final steps.")
    ok(ctl("datastore", "migrate", "unlock"))
    pools = yaml.safe_load(ok(ctl("get", "ippool", "-o", "yaml")).stdout)["items"]
    by_name = {p["metadata"]["name"]: p for p in pools}
    assert set(by_name) == {"default-ipv4", "split-pool-b-0", "split-pool-b-1"}
    child = by_name["split-pool-b-1"]
    assert child["spec"]["natOutgoing"] is True
    assert child["spec"]["nodeSelector"] == "rack == 'a'"
    assert child["metadata"]["resourceVersion"] == \
        by_name["split-pool-b-0"]["metadata"]["resourceVersion"]  # one transaction


def test_cluster_diags_archives_the_stores_resources(ctl, tmp_path):
    ok(ctl("apply", "-f", "-", input=POOLS))
    out = tmp_path / "out"
    out.mkdir()
    res = ok(ctl("cluster", "diags", "--log-dir", str(tmp_path / "nologs"),
                 "--output", str(out)))
    [archive] = os.listdir(out)
    assert f"Diagnostic bundle available at {out / archive}" in res.stdout
    with tarfile.open(out / archive) as tar:
        top = archive[: -len(".tar.gz")]

        def read(rel):
            return tar.extractfile(f"{top}/{rel}").read().decode()
        pools = yaml.safe_load(read("cluster/ippools.yaml"))
        assert [p["spec"]["cidr"] for p in pools["items"]] == ["10.0.0.0/16", "10.1.0.0/24"]
        assert read("cluster/ippools.txt").startswith("NAME           CIDR ")
        assert json.loads(read("ipam/keys.json"))["revision"] == ctl.revision()


def test_validate_checks_without_writing(ctl, tmp_path):
    ok(ctl("apply", "-f", "-", input=PROFILE))
    before = ctl.revision()
    path = tmp_path / "pools.yaml"
    path.write_text(POOLS + "---\n" + POOLS.split("---\n")[0].replace("10.0.0.0/16", "10.0.0/16"))
    res = subprocess.run([*CALICOCTL, "validate", "-f", str(path)], capture_output=True,
                         text=True, env=environment(ctl.env))  # no -c: Calico's has none
    assert res.returncode == 1
    assert res.stdout == "Partial success: validated the first 2 out of 3 'IPPool' resources:\n"
    assert 'spec.cidr: "10.0.0/16" is not a valid CIDR' in res.stderr
    assert ctl.revision() == before
    assert "default-ipv4" not in ok(ctl("get", "ippool")).stdout


def test_version_prints_calicos_lines(ctl):
    res = ctl("version")  # an empty store: no ClusterInformation yet
    assert res.returncode == 1
    assert res.stdout == f"Client Version:    {CALICO_VERSION}\nGit commit:        unknown\n"
    assert res.stderr == ("Unable to retrieve Cluster Version or Type: resource does not exist: "
                          "ClusterInformation(default) with error: <nil>\n")
    ok(ctl("apply", "-f", "-", input=PROFILE))  # the first write creates it
    assert ok(ctl("version")).stdout == (f"Client Version:    {CALICO_VERSION}\n"
                                         "Git commit:        unknown\n"
                                         f"Cluster Version:   {CALICO_VERSION}\n"
                                         "Cluster Type:      unknown\n")
