"""`calicoctl datastore migrate`: lock/unlock as Calico's (ClusterInformation datastoreReady),
export refused unless locked, import refused unless the target is empty, and a round trip
that keeps every resource and the IPAM state (real IPAM allocations, two local stores)."""

import json

import pytest
from click.testing import CliRunner

from calico.ctl.main import _register_optional_groups, cli
from calico.ctl.migrate import parse_export
from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.ipam.ipam import IPAM

_register_optional_groups()

MANIFESTS = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.65.0.0/16, blockSize: 26}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: host1}
spec: {bgp: {ipv4Address: 198.18.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.allow-dns}
spec:
  tier: security
  selector: all()
  egress: [{action: Allow, protocol: UDP, destination: {ports: [53]}}]
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: kns.default}
spec: {labelsToApply: {projectcalico.org/namespace: default}}
"""


def _cfg(tmp_path, name):
    path = tmp_path / f"{name}.cfg"
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n"
                    f"  datastoreType: local\n  datastorePath: {tmp_path / name}.db\n")
    return str(path)


def _ctl(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def source(tmp_path):
    cfg = _cfg(tmp_path, "source")
    assert _ctl("apply", "-c", cfg, "-f", "-", input=MANIFESTS).exit_code == 0
    backend = LocalBackend(str(tmp_path / "source.db"))
    v4, _ = IPAM(backend, "host1").auto_assign(2, 0, "wl-handle-1", {"node": "host1"})
    client = ResourceClient(backend)
    client.create({"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
                   "metadata": {"name": "host1-cni-c1-eth0", "namespace": "default",
                                "labels": {"app": "web"}},
                   "spec": {"node": "host1", "orchestrator": "cni", "workload": "c1", "containerID": "c1",
                            "endpoint": "eth0", "interfaceName": "cali0123456789a",
                            "ipNetworks": [f"{v4[0]}/32"], "profiles": ["kns.default"]}})
    backend.close()
    return cfg, v4


def _snapshot(path):
    """Every resource (without per-store metadata) and every IPAM key of a store."""
    backend = LocalBackend(str(path), create=False)
    try:
        kvs, _ = backend.list("/calico/")
        out = {}
        for item in kvs:
            value = json.loads(item.value)
            if item.key.startswith("/calico/resources/"):
                for field in ("uid", "creationTimestamp", "resourceVersion"):
                    value.get("metadata", {}).pop(field, None)
                if "clusterinformations" in item.key:
                    continue
            out[item.key] = value
        return out
    finally:
        backend.close()


def test_export_requires_lock_and_lock_sets_datastore_ready(source, tmp_path):
    cfg, _ = source
    res = _ctl("datastore", "migrate", "export", "-c", cfg)
    assert res.exit_code == 1 and "datastore is not locked" in res.output
    assert _ctl("datastore", "migrate", "lock", "-c", cfg).output == "Datastore locked.\n"
    got = _ctl("get", "clusterinformation", "default", "-o", "json", "-c", cfg)
    assert json.loads(got.output)["spec"]["datastoreReady"] is False
    assert _ctl("datastore", "migrate", "unlock", "-c", cfg).exit_code == 0
    got = _ctl("get", "clusterinformation", "default", "-o", "json", "-c", cfg)
    assert json.loads(got.output)["spec"]["datastoreReady"] is True


def test_round_trip_keeps_resources_and_ipam(source, tmp_path):
    cfg, v4 = source
    _ctl("datastore", "migrate", "lock", "-c", cfg)
    dump = _ctl("datastore", "migrate", "export", "-c", cfg)
    assert dump.exit_code == 0, dump.output
    target = _cfg(tmp_path, "target")
    res = _ctl("datastore", "migrate", "import", "-c", target, "-f", "-", input=dump.output)
    assert res.exit_code == 0, res.output
    assert "Successfully applied 6 resource(s)" in res.output
    assert _snapshot(tmp_path / "target.db") == _snapshot(tmp_path / "source.db")
    info = json.loads(_ctl("get", "clusterinformation", "default", "-o", "json",
                           "-c", target).output)
    assert info["spec"]["datastoreReady"] is False  # left locked until the hosts move
    # IPAM carries on where it was: the next address is neither of the two in use.
    backend = LocalBackend(str(tmp_path / "target.db"))
    nxt, _ = IPAM(backend, "host1").auto_assign(1, 0, "wl-handle-2", {"node": "host1"})
    backend.close()
    assert nxt[0] not in v4


def test_import_refuses_a_non_empty_target_and_writes_nothing(source, tmp_path):
    cfg, _ = source
    _ctl("datastore", "migrate", "lock", "-c", cfg)
    dump = _ctl("datastore", "migrate", "export", "-c", cfg).output
    res = _ctl("datastore", "migrate", "import", "-c", cfg, "-f", "-", input=dump)
    assert res.exit_code == 1 and "Datastore already has Calico resources" in res.output


def test_import_validates_the_whole_file_first(source, tmp_path):
    cfg, _ = source
    _ctl("datastore", "migrate", "lock", "-c", cfg)
    dump = _ctl("datastore", "migrate", "export", "-c", cfg).output
    broken = dump.replace("cidr: 10.65.0.0/16", "cidr: 10.65.0.0/99")
    target = _cfg(tmp_path, "target")
    res = _ctl("datastore", "migrate", "import", "-c", target, "-f", "-", input=broken)
    assert res.exit_code == 1 and "cidr" in res.output
    assert not (tmp_path / "target.db").exists()


def test_a_file_that_is_not_an_export_is_named():
    with pytest.raises(Exception, match="not a `calicoctl datastore migrate export` file"):
        parse_export("kind: IPPool\n", "dump.yaml")
