"""calicoctl, as an operator runs it, against a real etcd: Calico's keys, and a clear error
when etcd is down."""

import glob
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from calico import api
from calico.datastore import ipamkinds
from tests.conftest import require_programs
from tests.fixtures.etcd import EtcdServer

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "manifests")
CALICOCTL = [sys.executable, "-m", "calico.ctl.main"]


@pytest.fixture
def etcd():
    require_programs("etcd", "etcdctl")
    server = EtcdServer().start()
    yield server
    server.stop()


def calicoctl(etcd, *args, timeout=30):
    env = {**os.environ, "DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": etcd.endpoint}
    return subprocess.run([*CALICOCTL, args[0], "-c", "/nonexistent/calicoctl.cfg",
                           *args[1:]], capture_output=True, text=True, env=env,
                          timeout=timeout)


def etcd_keys(etcd, prefix):
    out = subprocess.run(["etcdctl", "--endpoints", etcd.endpoint, "get", "--prefix",
                          "--keys-only", prefix], capture_output=True, text=True, check=True,
                         env={**os.environ, "ETCDCTL_API": "3"}).stdout
    return sorted(k for k in out.splitlines() if k)


def test_apply_writes_exactly_calicos_keys(etcd):
    paths = sorted(glob.glob(os.path.join(FIXTURES, "*", "*.yaml")))
    expected = set()
    for path in paths:
        res = calicoctl(etcd, "apply", "-f", path)
        assert res.returncode == 0, res.stdout + res.stderr
        with open(path) as f:
            for r in api.load(f.read()):
                if ipamkinds.owns_kind(r.KIND):
                    continue
                expected.add(r.key())
    keys = etcd_keys(etcd, "/calico/resources/v3/projectcalico.org/")
    assert keys == sorted(expected)
    assert "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/" in " ".join(keys)
    assert "/calico/ipam/v2/config" in etcd_keys(etcd, "/calico/ipam/v2/")
    # The values are Calico's JSON, without resourceVersion.
    out = subprocess.run(["etcdctl", "--endpoints", etcd.endpoint, "get", "--print-value-only",
                          keys[0]], capture_output=True, text=True, check=True).stdout
    stored = json.loads(out)
    assert stored["apiVersion"] == "projectcalico.org/v3"
    assert "resourceVersion" not in stored["metadata"] and stored["metadata"]["uid"]


def test_etcd_down_is_a_clear_error_within_seconds(etcd):
    assert calicoctl(etcd, "get", "ippools").returncode == 0
    etcd.kill()
    started = time.monotonic()
    res = calicoctl(etcd, "get", "ippools")
    took = time.monotonic() - started
    assert res.returncode == 1
    assert "datastore unreachable" in res.stderr.lower(), res.stderr
    assert "Traceback" not in res.stderr
    assert took < 10, f"calicoctl took {took:.1f}s to give up"


# ---- Calico's behaviour that scripts depend on (issue #21), on both stores ------------------
#
# `ctl` runs calicoctl as a subprocess against a fresh local store, or against a real etcd
# (one per module, emptied of /calico/ before each test).

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


@pytest.fixture(scope="module")
def module_etcd():
    require_programs("etcd", "etcdctl")
    server = EtcdServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "etcdv3"])
def ctl(request, tmp_path):
    if request.param == "local":
        env = {**os.environ, "CALICO_DATASTORE_PATH": str(tmp_path / "calico.db")}
        env.pop("DATASTORE_TYPE", None)
    else:
        server = request.getfixturevalue("module_etcd")
        subprocess.run(["etcdctl", "--endpoints", server.endpoint, "del", "--prefix", "/calico/"],
                       check=True, capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})
        env = {**os.environ, "DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": server.endpoint}

    def run(*args, input=None, env_extra=None):
        argv = [*CALICOCTL, *args]
        if "-c" not in args and args[0] not in ("ipam", "node"):
            argv[len(CALICOCTL) + 1:len(CALICOCTL) + 1] = ["-c", str(tmp_path / "none.cfg")]
        return subprocess.run(argv, input=input, capture_output=True, text=True,
                              env={**env, **(env_extra or {})}, timeout=60)
    run.store = request.param
    return run


def ok(res):
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    return res


def test_delete_with_a_stale_resource_version_is_an_update_conflict(ctl, tmp_path):
    ok(ctl("apply", "-f", "-", input=GNP))
    old = tmp_path / "old.yaml"
    old.write_text(ok(ctl("get", "gnp", "allow-dns", "-o", "yaml")).stdout)
    ok(ctl("label", "gnp", "allow-dns", "team=a"))
    res = ctl("delete", "-f", str(old))
    assert res.returncode == 1
    assert "update conflict" in res.stderr and "Traceback" not in res.stderr
    current = tmp_path / "current.yaml"
    current.write_text(ok(ctl("get", "gnp", "allow-dns", "-o", "yaml")).stdout)  # still there
    ok(ctl("delete", "-f", str(current)))
    assert "allow-dns" not in ok(ctl("get", "gnp")).stdout


def test_reapplying_a_document_that_changes_nothing_keeps_its_version(ctl):
    """Our deliberate difference: a write that changes nothing writes nothing, so the
    revision does not move and the same document (with its resourceVersion) applies again;
    a changed document carrying that version applies once, and a second time conflicts."""
    ok(ctl("apply", "-f", "-", input=GNP))
    doc = ok(ctl("get", "gnp", "allow-dns", "-o", "yaml")).stdout
    ok(ctl("apply", "-f", "-", input=doc))
    ok(ctl("apply", "-f", "-", input=doc))
    changed = yaml.safe_load(doc)
    changed["spec"]["order"] = 5
    ok(ctl("apply", "-f", "-", input=yaml.safe_dump(changed)))
    res = ctl("apply", "-f", "-", input=yaml.safe_dump(changed))
    assert res.returncode == 1 and "update conflict" in res.stderr


def test_documents_decode_as_calicos_go_decoder_reads_them(ctl):
    doc = GNP.replace("metadata:\n  name: allow-dns\n",
                      "metadata:\n  name: allow-dns\n  labels: {version: 1}\n"
                      "  annotations: {rev: 2}\n  selfLink: /x\n  generation: 3\n"
                      "  finalizers: [a]\n").replace("spec:\n", "spec:\n  Order: 10000\n")
    ok(ctl("apply", "-f", "-", input=doc))
    got = yaml.safe_load(ok(ctl("get", "gnp", "allow-dns", "-o", "yaml")).stdout)
    assert got["spec"]["order"] == 10000
    assert got["metadata"]["labels"] == {"version": "1"}
    assert got["metadata"]["annotations"] == {"rev": "2"}
    assert not {"selfLink", "generation", "finalizers"} & got["metadata"].keys()
