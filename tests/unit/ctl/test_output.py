"""calicoctl get output, byte for byte as Calico's calicoctl prints it (issue #21 items 6-8).

The expected texts are written out from Calico's printer rules (go-yaml-wrapper's sorted keys
and quoting, encoding/json field order, text/tabwriter with minwidth 5 and padding 3 on
tab-terminated cells), not captured from our own output.
"""

import json
import os
import subprocess
import sys

import yaml

from calico.datastore.local import LocalBackend
from tests.fixtures.calicoctl import POOLS, PROFILE


def _revision(tmp_path):
    return LocalBackend(str(tmp_path / "calico.db")).revision()


def test_empty_list_yaml_and_json(ctl, tmp_path):
    assert ctl("apply", "-f", "-", input=PROFILE).exit_code == 0  # the store exists, no pools
    res = ctl("get", "ippool", "-o", "yaml")
    assert res.exit_code == 0
    rev = _revision(tmp_path)
    assert res.stdout == ("apiVersion: projectcalico.org/v3\nitems: []\nkind: IPPoolList\n"
                          f'metadata:\n  resourceVersion: "{rev}"\n')
    res = ctl("get", "ippool", "-o", "json")
    assert res.stdout == ('{\n  "kind": "IPPoolList",\n  "apiVersion": "projectcalico.org/v3",\n'
                          f'  "metadata": {{\n    "resourceVersion": "{rev}"\n  }},\n'
                          '  "items": []\n}\n')


def test_list_revision_is_the_stores(ctl, tmp_path):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    doc = yaml.safe_load(ctl("get", "ippool", "-o", "yaml").stdout)
    assert doc["metadata"]["resourceVersion"] == str(_revision(tmp_path))
    assert [i["metadata"]["name"] for i in doc["items"]] == ["default-ipv4", "pool-b"]


def test_yaml_keys_sorted_and_quoted_as_yaml_v2(ctl):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    out = ctl("get", "ippool", "pool-b", "-o", "yaml").stdout
    lines = out.splitlines()
    assert lines[0] == "apiVersion: projectcalico.org/v3"
    assert lines[1] == "kind: IPPool"
    assert lines[2] == "metadata:"
    meta = lines[3:lines.index("spec:")]
    assert meta[0].startswith('  creationTimestamp: "')  # a timestamp is quoted
    assert meta[1:4] == ["  labels:", "    app: web", '    zone: "1"']
    assert meta[4] == "  name: pool-b"
    assert meta[5].startswith('  resourceVersion: "')
    spec = lines[lines.index("spec:") + 1:]
    keys = [s.split(":")[0].strip() for s in spec if s.startswith("  ") and
            not s.startswith("   ") and not s.startswith("  -")]
    assert keys == sorted(keys)
    assert "  nodeSelector: rack == 'a'" in spec


def test_json_field_order_is_gos(ctl):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    out = ctl("get", "ippool", "pool-b", "-o", "json").stdout
    doc = json.loads(out)
    assert list(doc) == ["kind", "apiVersion", "metadata", "spec"]
    assert list(doc["metadata"]) == ["name", "uid", "resourceVersion", "creationTimestamp",
                                     "labels"]
    assert list(doc["metadata"]["labels"]) == ["app", "zone"]
    assert '"nodeSelector": "rack == \'a\'"' in out


def test_several_names_print_a_bare_sequence(ctl):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    out = ctl("get", "ippool", "default-ipv4", "pool-b", "-o", "yaml").stdout
    assert out.startswith("- apiVersion: projectcalico.org/v3\n  kind: IPPool\n")
    assert [d["metadata"]["name"] for d in yaml.safe_load(out)] == ["default-ipv4", "pool-b"]
    out = ctl("get", "ippool", "default-ipv4", "pool-b", "-o", "json").stdout
    assert out.startswith("[\n  {\n    \"kind\": \"IPPool\",")


def test_table_cells_padded_like_tabwriter(ctl):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    out = ctl("get", "ippool").stdout
    assert out == ("NAME           CIDR          " + "SELECTOR".ljust(14) + "\n"
                   "default-ipv4   10.0.0.0/16   " + "all()".ljust(14) + "\n"
                   "pool-b         10.1.0.0/24   rack == 'a'   \n"
                   "\n")


def test_one_table_per_name_and_calicos_line_for_a_missing_one(ctl):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    res = ctl("get", "ippool", "pool-b", "nope", "default-ipv4")
    assert res.exit_code == 1
    assert res.stdout == ("NAME     CIDR          SELECTOR      \n"
                          "pool-b   10.1.0.0/24   rack == 'a'   \n"
                          "\n"
                          "NAME           CIDR          SELECTOR   \n"
                          "default-ipv4   10.0.0.0/16   all()      \n"
                          "\n")
    assert "resource does not exist: IPPool(nope) with error: <nil>" in res.stderr


def test_wide_ippool_has_assignment_mode(ctl):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    lines = ctl("get", "ippool", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == ["NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED",
                                "DISABLEBGPEXPORT", "SELECTOR", "ASSIGNMENTMODE"]
    assert lines[2].split()[:3] == ["pool-b", "10.1.0.0/24", "true"]
    assert lines[2].split()[-1] == "Automatic"


def test_long_nets_cut_at_80(ctl):
    nets = [f"10.{i}.0.0/16" for i in range(20)]
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
           "metadata": {"name": "many"}, "spec": {"nets": nets}}
    assert ctl("apply", "-f", "-", input=json.dumps(doc)).exit_code == 0
    row = ctl("get", "gns", "-o", "wide").stdout.splitlines()[1]
    cell = row.split()[1]
    assert len(cell) == 80 and cell.endswith("...")
    assert cell[:77] == ",".join(nets)[:77]


def test_bgppeer_node_column_shows_the_node_selector(ctl):
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
    assert ctl("apply", "-f", "-", input=peers).exit_code == 0
    out = ctl("get", "bgppeer").stdout
    assert out == ("NAME       PEERIP      NODE          ASN     \n"
                   "everyone   192.0.2.2   (global)      65002   \n"
                   "tor        192.0.2.1   rack == 'a'   65001   \n"
                   "\n")


def test_custom_columns_calico_and_kubectl_forms(ctl):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    out = ctl("get", "ippool", "-o", "custom-columns=NAME,NAT").stdout
    assert out == ("NAME           NAT     \n"
                   "default-ipv4   false   \n"
                   "pool-b         true    \n"
                   "\n")
    out = ctl("get", "ippool", "-o", "custom-columns=POOL:.metadata.name,ZONE:.metadata.labels.zone"
              ).stdout
    assert out == ("POOL           ZONE     \n"
                   "default-ipv4   <none>   \n"
                   "pool-b         1        \n"
                   "\n")
    res = ctl("get", "ippool", "-o", "custom-columns=NAME,BOGUS")
    assert res.exit_code == 1
    assert "Unknown heading BOGUS, valid values are:" in res.output


def test_go_template(ctl, tmp_path):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    tpl = '{{range .items}}{{.metadata.name}}={{.spec.cidr}}{{if .spec.natOutgoing}} nat' \
          '{{else}} plain{{end}}{{"\\n"}}{{end}}'
    assert ctl("get", "ippool", "-o", f"go-template={tpl}").stdout == (
        "default-ipv4=10.0.0.0/16 plain\npool-b=10.1.0.0/24 nat\n")
    # Calico's own form: the data is the list of results, fields by their Go names.
    path = tmp_path / "t.tmpl"
    path.write_text("{{range .}}{{range .Items}}{{.ObjectMeta.Name}} {{.Spec.CIDR}}\n"
                    "{{end}}{{end}}")
    assert ctl("get", "ippool", "-o", f"go-template-file={path}").stdout == (
        "default-ipv4 10.0.0.0/16\npool-b 10.1.0.0/24\n")
    assert ctl("get", "ippool", "pool-b", "-o", "go-template={{.metadata.labels.zone}}"
               ).stdout == "1"
    res = ctl("get", "ippool", "-o", "go-template={{.metadata.name | printf}}")
    assert res.exit_code == 1 and "unsupported template syntax '|'" in res.output


def test_export_strips_metadata_only_for_names(ctl):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    doc = yaml.safe_load(ctl("get", "ippool", "pool-b", "--export", "-o", "yaml").stdout)
    assert doc["metadata"] == {"name": "pool-b", "labels": {"app": "web", "zone": "1"},
                               "creationTimestamp": None}
    listed = yaml.safe_load(ctl("get", "ippool", "--export", "-o", "yaml").stdout)
    assert "resourceVersion" in listed["items"][0]["metadata"]


def test_get_as_a_subprocess(tmp_path):
    """The installed entry point, as a script runs it."""
    env = {**os.environ, "CALICO_DATASTORE_PATH": str(tmp_path / "calico.db")}
    env.pop("DATASTORE_TYPE", None)
    ctl = [sys.executable, "-m", "calico.ctl.main"]
    subprocess.run([*ctl, "apply", "-c", "/nonexistent", "-f", "-"], input=PROFILE, env=env,
                   capture_output=True, text=True, check=True)
    out = subprocess.run([*ctl, "get", "-c", "/nonexistent", "ippool", "-o", "yaml"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("apiVersion: projectcalico.org/v3\nitems: []\nkind: IPPoolList\n")


def test_tiers_list_by_order(ctl):
    tiers = "".join(f"---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: {n}}}\n"
                    f"spec: {{order: {o}}}\n" for n, o in (("a", 300), ("b", 100), ("c", 200)))
    assert ctl("apply", "-f", "-", input=tiers).exit_code == 0
    out = ctl("get", "tiers").stdout
    assert [line.split()[0] for line in out.splitlines()[1:] if line] == ["b", "c", "a"]
    assert out.splitlines()[0] == "NAME   ORDER   "


def test_several_documents_of_f_print_a_bare_sequence(ctl, tmp_path):
    assert ctl("apply", "-f", "-", input=POOLS).exit_code == 0
    path = tmp_path / "pools.yaml"
    path.write_text(POOLS)
    docs = yaml.safe_load(ctl("get", "-f", str(path), "-o", "yaml").stdout)
    assert isinstance(docs, list) and [d["kind"] for d in docs] == ["IPPool", "IPPool"]
    tables = ctl("get", "-f", str(path)).stdout
    assert tables.count("NAME ") == 2  # one table per document


def test_long_strings_fold_at_80_columns_and_read_back(ctl, tmp_path):
    selector = " && ".join(f"label{i} == 'value{i}'" for i in range(8))
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
           "metadata": {"name": "long"}, "spec": {"selector": selector}}
    assert ctl("apply", "-f", "-", input=json.dumps(doc)).exit_code == 0
    out = ctl("get", "gnp", "long", "-o", "yaml").stdout
    line = next(v for v in out.splitlines() if v.startswith("  selector: "))
    assert line == "  selector: label0 == 'value0' && label1 == 'value1' && label2 == 'value2' && label3"
    assert yaml.safe_load(out)["spec"]["selector"] == selector
    before = _revision(tmp_path)
    assert ctl("apply", "-f", "-", input=out).exit_code == 0
    assert _revision(tmp_path) == before  # the folded text is the same resource


def test_felix_struct_parameters_in_go_field_order(ctl):
    felix = """\
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec:
  routeTableRanges: [{max: 250, min: 1}]
  failsafeInboundHostPorts: [{port: 22, protocol: TCP}]
"""
    assert ctl("apply", "-f", "-", input=felix).exit_code == 0
    doc = json.loads(ctl("get", "felixconfig", "default", "-o", "json").stdout)
    assert list(doc["spec"]["routeTableRanges"][0]) == ["min", "max"]
    assert list(doc["spec"]["failsafeInboundHostPorts"][0])[:2] == ["protocol", "port"]
