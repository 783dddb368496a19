"""calicoctl, as an operator runs it, against a real etcd: Calico's keys, and a clear error
when etcd is down."""

import glob
import json
import os
import subprocess
import sys
import time

import pytest

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


def _etcd_revision(etcd):
    out = subprocess.run(["etcdctl", "--endpoints", etcd.endpoint, "get", "/", "-w", "json"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "ETCDCTL_API": "3"}).stdout
    return json.loads(out)["header"]["revision"]


POOLS = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.10.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-b}
spec: {cidr: 10.11.0.0/16}
"""


def test_get_list_carries_etcds_revision(etcd, tmp_path):
    """`get -o yaml|json` of a kind prints a <Kind>List whose resourceVersion is the store's
    revision (empty lists too), each item with its own mod revision, as Calico's does."""
    empty = calicoctl(etcd, "get", "globalnetworkpolicy", "-o", "json")
    assert empty.returncode == 0, empty.stderr
    doc = json.loads(empty.stdout)
    assert list(doc) == ["kind", "apiVersion", "metadata", "items"]
    assert doc["kind"] == "GlobalNetworkPolicyList" and doc["items"] == []
    assert doc["metadata"]["resourceVersion"] == str(_etcd_revision(etcd))
    manifest = tmp_path / "pools.yaml"
    manifest.write_text(POOLS)
    assert calicoctl(etcd, "apply", "-f", str(manifest)).returncode == 0
    listed = calicoctl(etcd, "get", "ippool", "-o", "yaml")
    assert listed.returncode == 0, listed.stderr
    rev = _etcd_revision(etcd)
    assert listed.stdout.endswith(f'kind: IPPoolList\nmetadata:\n  resourceVersion: "{rev}"\n')
    items = api.parse_documents(listed.stdout)
    assert [i["metadata"]["name"] for i in items] == ["pool-a", "pool-b"]
    assert all(0 < int(i["metadata"]["resourceVersion"]) <= rev for i in items)
    table = calicoctl(etcd, "get", "ippool", "pool-b")
    assert table.stdout == ("NAME     CIDR           SELECTOR   \n"
                            "pool-b   10.11.0.0/16   all()      \n\n")


def test_calicos_error_phrases_on_etcd(etcd, tmp_path):
    """A stale resourceVersion is an `update conflict`, a missing resource `resource does
    not exist`, an existing one `resource already exists`, with Calico's summary lines."""
    manifest = tmp_path / "pools.yaml"
    manifest.write_text(POOLS)
    assert calicoctl(etcd, "create", "-f", str(manifest)).returncode == 0
    again = calicoctl(etcd, "create", "-f", str(manifest))
    assert again.returncode == 1
    assert "resource already exists: IPPool(pool-a)" in again.stderr
    assert "failed to create any 'IPPool' resources: [" in again.stderr
    listed = calicoctl(etcd, "get", "ippool", "pool-a", "-o", "json")
    stale = tmp_path / "stale.json"
    stale.write_text(listed.stdout)
    assert calicoctl(etcd, "label", "ippool", "pool-a", "x=y").returncode == 0
    res = calicoctl(etcd, "replace", "-f", str(stale))
    assert res.returncode == 1 and "update conflict: IPPool(pool-a)" in res.stderr
    res = calicoctl(etcd, "delete", "ippool", "nope")
    assert res.returncode == 1 and "resource does not exist: IPPool(nope)" in res.stderr


def test_ipam_split_on_etcd_is_one_transaction(etcd, tmp_path):
    """`ipam split` on etcd: the pool is replaced by its children at one revision."""
    from calico.datastore import connect
    from calico.datastore.client import ResourceClient
    from calico.datastore.config import DatastoreConfig

    manifest = tmp_path / "pools.yaml"
    manifest.write_text(POOLS)
    assert calicoctl(etcd, "apply", "-f", str(manifest)).returncode == 0
    backend = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "etcdv3",
                                                "ETCD_ENDPOINTS": etcd.endpoint}))
    try:
        client = ResourceClient(backend)
        client.apply({"apiVersion": "projectcalico.org/v3", "kind": "ClusterInformation",
                      "metadata": {"name": "default"}, "spec": {"datastoreReady": False}})
        res = subprocess.run([*CALICOCTL, "ipam", "split", "-c", "/nonexistent", "2", "--name",
                              "pool-b"], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "DATASTORE_TYPE": "etcdv3",
                                  "ETCD_ENDPOINTS": etcd.endpoint})
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("IP Pool pool-b was successfully split into 2 smaller "
                                     "pools.Created split-pool-b-0 with CIDR 10.11.0.0/17.\n")
        pools = {p.name: p for p in client.list("IPPool").items}
        assert set(pools) == {"pool-a", "split-pool-b-0", "split-pool-b-1"}
        assert pools["split-pool-b-0"].metadata.resourceVersion == \
            pools["split-pool-b-1"].metadata.resourceVersion
        keys = etcd_keys(etcd, "/calico/resources/v3/projectcalico.org/ippools/")
        assert keys[-1] == "/calico/resources/v3/projectcalico.org/ippools/split-pool-b-1"
    finally:
        backend.close()
