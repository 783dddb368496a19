"""`calicoctl cluster diags` on the local store: an archive with the resources (as get -o yaml
prints them), the datastore's Felix and IPAM keys, host state and logs; a step that cannot run
(no BIRD here) is recorded in errors.txt and does not stop the rest."""

import json
import os
import tarfile

import yaml
from click.testing import CliRunner

from calico.ctl.main import _register_optional_groups, cli

POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec: {cidr: 10.7.0.0/16}
"""


def test_diags_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("CALICO_DATASTORE_PATH", str(tmp_path / "calico.db"))
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    _register_optional_groups()
    runner = CliRunner()
    cfg = ["-c", str(tmp_path / "none.cfg")]
    assert runner.invoke(cli, ["apply", *cfg, "-f", "-"], input=POOL).exit_code == 0
    logs = tmp_path / "logs" / "host1"
    logs.mkdir(parents=True)
    (logs / "felix.log").write_text("felix says hello\n")
    (logs / "other.txt").write_text("not a log\n")
    out = tmp_path / "out"
    out.mkdir()
    res = runner.invoke(cli, ["cluster", "diags", *cfg, "--log-dir", str(tmp_path / "logs"),
                              "--output", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("==== Begin collecting diagnostics. ====\n")
    archives = os.listdir(out)
    assert len(archives) == 1 and archives[0].startswith("calico-diagnostics-")
    assert f"Diagnostic bundle available at {out / archives[0]}" in res.stdout
    with tarfile.open(out / archives[0]) as tar:
        top = archives[0][: -len(".tar.gz")]
        files = {m.name[len(top) + 1:]: m for m in tar.getmembers() if m.isfile()}

        def read(rel):
            return tar.extractfile(files[rel]).read().decode()

        pools = yaml.safe_load(read("cluster/ippools.yaml"))
        assert pools["kind"] == "IPPoolList"
        assert [p["spec"]["cidr"] for p in pools["items"]] == ["10.7.0.0/16"]
        assert read("cluster/ippools.txt").startswith("NAME   CIDR ")
        assert "cluster/workloadendpoints.yaml" in files
        for rel in ("ipam/keys.json", "felix/status.json"):
            doc = json.loads(read(rel))
            assert isinstance(doc["keys"], dict) and doc["revision"] > 0
        assert read("host/rules.txt")  # `ip rule` always has rules
        assert read("version.txt").startswith("Client Version:")
        log_rel = "logs/" + os.path.relpath(str(logs / "felix.log"), "/")
        assert read(log_rel) == "felix says hello\n"
        assert not any(name.endswith("other.txt") for name in files)
        assert "no BIRD control socket under" in read("errors.txt")
