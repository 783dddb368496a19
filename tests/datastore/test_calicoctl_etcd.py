"""calicoctl, as an operator runs it, against a real etcd: Calico's keys, and a clear error
when etcd is down."""

import glob
import json
import os
import resource
import subprocess
import time

import pytest
import yaml

from calico import api
from calico.datastore import connect, ipamkinds
from calico.datastore.client import ResourceClient
from calico.version import CALICO_VERSION
from tests.conftest import require_programs
from tests.fixtures.calicoctl import CALICOCTL, command, environment, ok
from tests.fixtures.calicoctl import calicoctl as run_calicoctl
from tests.fixtures.etcd import EtcdServer

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "manifests")


@pytest.fixture
def etcd():
    require_programs("etcd", "etcdctl")
    server = EtcdServer().start()
    yield server
    server.stop()


def calicoctl(etcd, *args, timeout=30):
    return run_calicoctl(args, {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": etcd.endpoint},
                         timeout=timeout)


def etcd_keys(etcd, prefix):
    out = subprocess.run(["etcdctl", "--endpoints", etcd.endpoint, "get", "--prefix",
                          "--keys-only", prefix], capture_output=True, text=True, check=True,
                         env={**os.environ, "ETCDCTL_API": "3"}).stdout
    return sorted(k for k in out.splitlines() if k)


def test_apply_writes_exactly_calicos_keys(etcd):
    paths = sorted(p for p in glob.glob(os.path.join(FIXTURES, "*", "*.yaml"))
                   if not p.endswith("clusterinformation.yaml"))  # refused: Calico manages it
    # The first write creates ClusterInformation "default", as Calico's initialisation does.
    expected = {"/calico/resources/v3/projectcalico.org/clusterinformations/default"}
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
# `ctl` (tests/datastore/conftest.py) runs calicoctl as a subprocess against a fresh local
# store, or against a real etcd.

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
    assert got["metadata"]["labels"]["version"] == "1"
    assert got["metadata"]["annotations"] == {"rev": "2"}
    assert not {"selfLink", "generation", "finalizers"} & got["metadata"].keys()
    wep = WEP.replace("  pod: pod1\n", "  pod: pod1\n  containerID: 1234567\n")
    ok(ctl("apply", "-f", "-", input=wep))
    got = yaml.safe_load(ok(ctl("get", "wep", "-n", "prod", "-o", "yaml")).stdout)["items"][0]
    assert got["spec"]["containerID"] == "1234567"


def test_cluster_information_and_the_default_profile_exist_as_calicos_do(ctl):
    profile = yaml.safe_load(ok(ctl("get", "profile", "projectcalico-default-allow",
                                    "-o", "yaml")).stdout)
    assert profile["spec"] == {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}
    assert "projectcalico-default-allow" in ok(ctl("get", "profiles")).stdout
    res = ctl("delete", "profile", "projectcalico-default-allow")
    assert res.returncode == 1 and "is not supported on" in res.stderr
    assert "clusterinformations" not in ok(ctl("get", "clusterinfo", "-o", "yaml")).stdout
    ok(ctl("apply", "-f", "-", input=GNP))  # the first write of anything
    info = yaml.safe_load(ok(ctl("get", "clusterinformation", "default", "-o", "yaml")).stdout)
    assert len(info["spec"]["clusterGUID"]) == 32 and int(info["spec"]["clusterGUID"], 16) >= 0
    assert info["spec"]["calicoVersion"] == CALICO_VERSION
    assert info["spec"]["datastoreReady"] is True
    with open(os.path.join(FIXTURES, "infra", "clusterinformation.yaml")) as f:
        manifest = f.read()
    for action, operation in (("create", "create or apply"), ("apply", "create or apply"),
                              ("replace", "apply or replace")):
        res = ctl(action, "-f", "-", input=manifest)
        assert res.returncode == 1, res.stdout
        assert f"operation {operation} is not supported on ClusterInformation" in res.stderr
    res = ctl("delete", "clusterinformation", "default")
    assert res.returncode == 1
    assert "operation delete is not supported on ClusterInformation" in res.stderr
    again = yaml.safe_load(ok(ctl("get", "clusterinfo", "default", "-o", "yaml")).stdout)
    assert again == info


def test_kubernetes_network_policy_names_are_refused(ctl):
    doc = GNP.replace("GlobalNetworkPolicy", "NetworkPolicy").replace(
        "name: allow-dns", "name: knp.default.allow-dns")
    res = ctl("apply", "-f", "-", input=doc)
    assert res.returncode == 1
    assert ("operation create or apply is not supported on NetworkPolicy(default/knp.default."
            "allow-dns): kubernetes network policies must be managed through the kubernetes "
            "API") in res.stderr
    assert "knp.default" not in ok(ctl("get", "networkpolicies")).stdout


def test_a_client_of_another_release_refuses_unless_allowed(ctl):
    ok(ctl("apply", "-f", "-", input=GNP))
    backend = connect(ctl.config)
    try:
        client = ResourceClient(backend)
        key = client.get("ClusterInformation", "default").key()
        stored = json.loads(backend.get(key).value)
        stored["spec"]["calicoVersion"] = "v3.27.2"
        backend.put(key, json.dumps(stored))
    finally:
        backend.close()
    res = ctl("apply", "-f", "-", input=GNP.replace("allow-dns", "other"))
    assert res.returncode == 1
    assert (f"Version mismatch.\nClient Version:   {CALICO_VERSION}\nCluster Version:  3.27.2\n"
            "Use --allow-version-mismatch to override.") in res.stderr
    assert "other" not in ok(ctl("get", "gnp", "--allow-version-mismatch")).stdout
    ok(ctl("--allow-version-mismatch", "apply", "-f", "-", input=GNP.replace("allow-dns", "a")))
    ok(ctl("apply", "-f", "-", "--allow-version-mismatch", input=GNP.replace("allow-dns", "b")))
    assert "Cluster Version:   v3.27.2" in ok(ctl("version")).stdout


def test_tiers_are_ordered_and_guarded_as_calicos_are(ctl):
    tiers = "".join(f"""---
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: {name}
spec:
{order}""" for name, order in (("zeta", "  order: 100\n"), ("alpha", "  order: 2000000\n"),
                               ("mid", "  order: 100\n"), ("unordered", "  {}\n")))
    ok(ctl("apply", "-f", "-", input=tiers))
    table = ok(ctl("get", "tiers")).stdout.splitlines()
    assert table[0].split() == ["NAME", "ORDER"]
    assert [line.split() for line in table[1:] if line.strip()] == [
        ["mid", "100"], ["zeta", "100"], ["alpha", "2e+06"], ["unordered", "<nil>"]]
    ok(ctl("apply", "-f", "-", input=GNP.replace("spec:\n", "spec:\n  tier: mid\n")))
    got = yaml.safe_load(ok(ctl("get", "gnp", "allow-dns", "-o", "yaml")).stdout)
    assert got["metadata"]["labels"]["projectcalico.org/tier"] == "mid"
    res = ctl("delete", "tier", "mid")
    assert res.returncode == 1
    assert "operation delete is not supported on mid: Cannot delete a non-empty tier" in (
        res.stderr)
    res = ctl("delete", "tier", "default")
    assert res.returncode == 1 and "Cannot delete default tier" in res.stderr
    ok(ctl("delete", "gnp", "allow-dns"))
    ok(ctl("delete", "tier", "mid"))


def test_staged_kubernetes_policies_and_kind_aliases(ctl):
    sknp = """apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata:
  name: preview
  namespace: prod
spec:
  stagedAction: Set
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
"""
    ok(ctl("apply", "-f", "-", input=sknp))
    assert "preview" in ok(ctl("get", "sknp", "-n", "prod")).stdout
    for alias in ("kubecontrollersconfig", "reservation", "reservations"):
        ok(ctl("get", alias))


WEP = """apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-pod1-eth0
  namespace: prod
  annotations: {Example.COM/Owner: team-a}
spec:
  node: node1
  orchestrator: k8s
  pod: pod1
  endpoint: eth0
  interfaceName: cali0123456789
  ipNetworks: [10.65.0.5/32]
"""


def test_validation_agrees_with_calicos_validator_and_client(ctl):
    wep = WEP
    ok(ctl("apply", "-f", "-", input=wep))
    got = yaml.safe_load(ok(ctl("get", "wep", "node1-k8s-pod1-eth0", "-n", "prod", "-o",
                                "yaml")).stdout)
    assert got["metadata"]["annotations"] == {"Example.COM/Owner": "team-a"}
    # Valid to the validator, refused by the client when it writes (as Calico's client does).
    res = subprocess.run([*CALICOCTL, "validate", "-f", "-"], capture_output=True, text=True,
                         input=wep.replace("  node: node1\n", ""), env=environment(ctl.env))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Successfully validated 1 'WorkloadEndpoint' resource(s)\n"
    res = ctl("apply", "-f", "-", input=wep.replace("  node: node1\n", ""))
    assert res.returncode == 1 and "spec.node: must be set" in res.stderr, res.stderr
    res = ctl("apply", "-f", "-", input=wep.replace("pod: pod1", "pod: pod2"))
    assert res.returncode == 1 and "does not match the identifiers in spec" in res.stderr


BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi", strict=True))


def _address_space_512m():
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))


def test_bad_input_is_one_clear_error_naming_it(ctl, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    # Within 512 MB of address space: expanded, these 400 bytes are 387 million values.
    res = subprocess.run(command("apply", "-f", str(bomb)), capture_output=True, text=True,
                         env=environment(ctl.env), timeout=60, preexec_fn=_address_space_512m)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"Failed to execute command: {bomb}: refused: its aliases expand {len(BOMB)} bytes of "
        "YAML to more than 100000 values (excessive aliasing)"]
    binary = tmp_path / "calicoctl.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00")
    res = ctl("apply", "-f", str(binary))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"Failed to execute command: {binary}: not a YAML or JSON "
                                 "manifest: byte 0xff at offset 8 is not UTF-8 text")
    res = ctl("apply", "-f", "-", input=GNP.replace("spec:\n", "spec:\n  order: 1\n  order: 2\n"))
    assert res.returncode == 1 and 'key "order" already set in map' in res.stderr
    assert "allow-dns" not in ok(ctl("get", "gnp")).stdout
    res = ctl("apply", "-f", "-", input=None)
    assert res.returncode == 1 and "No resources specified" in res.stderr + res.stdout


def test_a_missing_tls_file_is_named(ctl, tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    res = ctl("get", "ippools", env_extra={"DATASTORE_TYPE": "etcdv3",
                                           "ETCD_ENDPOINTS": "https://127.0.0.1:2379",
                                           "ETCD_CA_CERT_FILE": str(missing)})
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (f"Failed to execute command: etcdCACertFile "
                                  f"(ETCD_CA_CERT_FILE): {missing}: no such file")
