"""The typed resource client over the local backend (the KV semantics are covered per backend
in tests/datastore)."""

import json
import threading

import pytest

from calico.api import ValidationError
from calico.datastore.client import ResourceClient, kind_prefix, parse_key
from calico.datastore.errors import ResourceAlreadyExists, ResourceConflict, ResourceNotFound
from calico.datastore.kv import KeyExists, RevisionConflict
from calico.datastore.local import LocalBackend

V3 = "projectcalico.org/v3"


def pool(name, cidr="10.65.0.0/16", **spec):
    return {"apiVersion": V3, "kind": "IPPool", "metadata": {"name": name},
            "spec": {"cidr": cidr, **spec}}


def netpol(name, namespace="ns1", selector="all()"):
    return {"apiVersion": V3, "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"selector": selector}}


def gnp(name, selector="all()"):
    return {"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
            "spec": {"selector": selector}}


@pytest.fixture
def backend(tmp_path):
    backend = LocalBackend(str(tmp_path / "calico.db"))
    yield backend
    backend.close()


@pytest.fixture
def client(backend):
    return ResourceClient(backend)


def test_create_stores_calico_json_at_calicos_key(client, backend):
    created = client.create(pool("pool1"))
    key = "/calico/resources/v3/projectcalico.org/ippools/pool1"
    stored = json.loads(backend.get(key).value)
    assert stored["kind"] == "IPPool" and stored["spec"]["cidr"] == "10.65.0.0/16"
    assert stored["spec"]["blockSize"] == 26  # Calico's default, filled by validation
    assert "resourceVersion" not in stored["metadata"]
    assert stored["metadata"]["uid"] == created.metadata.uid
    assert created.metadata.resourceVersion == str(backend.get(key).mod_revision)
    assert created.metadata.creationTimestamp.endswith("Z")


def test_namespaced_key_and_default_namespace(client, backend):
    client.create(netpol("x", namespace="ns1"))
    client.create(netpol("y", namespace=None))
    assert backend.get("/calico/resources/v3/projectcalico.org/networkpolicies/ns1/x")
    assert client.get("NetworkPolicy", "y").namespace == "default"
    assert [p.name for p in client.list("NetworkPolicy").items] == ["y", "x"]
    assert [p.name for p in client.list("NetworkPolicy", "ns1").items] == ["x"]


def test_errors_name_kind_and_name(client):
    client.create(pool("pool1"))
    with pytest.raises(ResourceAlreadyExists, match='^IPPool "pool1" already exists$'):
        client.create(pool("pool1"))
    with pytest.raises(KeyExists):  # the KV error still catches it
        client.create(pool("pool1"))
    with pytest.raises(ResourceNotFound, match='^GlobalNetworkPolicy "x" does not exist$'):
        client.get("GlobalNetworkPolicy", "x")
    with pytest.raises(ResourceNotFound, match='NetworkPolicy "ns/x" does not exist'):
        client.delete("NetworkPolicy", "x", "ns")
    with pytest.raises(ValidationError, match="not a known"):
        client.get("NoSuchKind", "x")


def test_update_keeps_uid_and_creation_time_and_checks_version(client):
    first = client.create(netpol("x", namespace="ns"))
    changed = first.to_dict()
    changed["spec"]["selector"] = "role == 'db'"
    changed["metadata"]["uid"] = "someone-else"
    second = client.update(changed)
    assert second.metadata.uid == first.metadata.uid
    assert second.metadata.creationTimestamp == first.metadata.creationTimestamp
    assert int(second.metadata.resourceVersion) > int(first.metadata.resourceVersion)
    assert client.get("NetworkPolicy", "x", "ns").spec.selector == "role == 'db'"
    stale = first.to_dict()
    with pytest.raises(ResourceConflict) as err:
        client.update(stale)
    assert str(err.value) == (
        f'update conflict: resource NetworkPolicy "ns/x" was modified: resourceVersion '
        f'{first.metadata.resourceVersion} is stale (current {second.metadata.resourceVersion})')
    assert isinstance(err.value, RevisionConflict)


def test_update_of_missing_resource(client):
    with pytest.raises(ResourceNotFound):
        client.update(gnp("x"))


def test_create_refuses_a_resource_version(client):
    data = gnp("x")
    data["metadata"]["resourceVersion"] = "12"
    with pytest.raises(ValidationError, match="metadata.resourceVersion"):
        client.create(data)


def test_apply_creates_then_updates(client):
    created = client.apply(gnp("x"))
    updated = client.apply(gnp("x", selector="a == 'b'"))
    assert updated.metadata.uid == created.metadata.uid
    assert client.get("GlobalNetworkPolicy", "x").spec.selector == "a == 'b'"


def test_concurrent_applies_all_land(client):
    errors = []

    def apply(i):
        try:
            for _ in range(5):
                client.apply(gnp("shared", selector=f"n == '{i}'"))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=apply, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(client.list("GlobalNetworkPolicy").items) == 1


def test_delete_returns_the_resource_and_checks_version(client):
    created = client.create(gnp("x"))
    client.update(gnp("x", selector="a == 'b'"))
    with pytest.raises(ResourceConflict):
        client.delete("GlobalNetworkPolicy", "x",
                      resource_version=created.metadata.resourceVersion)
    deleted = client.delete("GlobalNetworkPolicy", "x")
    assert deleted.spec.selector == "a == 'b'"
    with pytest.raises(ResourceNotFound):
        client.get("GlobalNetworkPolicy", "x")


def test_overlapping_pools_are_refused(client):
    client.create(pool("pool1", "10.65.0.0/16"))
    with pytest.raises(ValidationError, match="overlaps"):
        client.create(pool("pool2", "10.65.128.0/24"))
    client.create(pool("pool2", "10.66.0.0/16"))
    client.apply(pool("pool1", "10.65.0.0/16", ipipMode="Always"))  # itself is not an overlap


def test_invalid_stored_values_are_skipped_in_lists(client, backend, caplog):
    client.create(gnp("good"))
    backend.put(kind_prefix("GlobalNetworkPolicy") + "bad", "{not json")
    assert [p.name for p in client.list("GlobalNetworkPolicy").items] == ["good"]
    assert "bad" in caplog.text
    assert client.delete("GlobalNetworkPolicy", "bad") is None


def test_watch_reports_added_modified_deleted(client):
    listed = client.list("GlobalNetworkPolicy")
    with client.watch("GlobalNetworkPolicy", revision=listed.revision) as watch:
        client.create(gnp("x"))
        client.apply(gnp("x", selector="a == 'b'"))
        client.create(pool("not-watched"))
        client.delete("GlobalNetworkPolicy", "x")
        events = []
        while len(events) < 3:
            events += watch.events(timeout=2)
    assert [(e.type, e.name) for e in events] == [
        ("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]
    assert events[1].resource.spec.selector == "a == 'b'"
    assert events[1].resource.metadata.resourceVersion == str(events[1].revision)


def test_parse_key():
    assert parse_key("/calico/resources/v3/projectcalico.org/networkpolicies/ns/x") == (
        "NetworkPolicy", "ns", "x")
    assert parse_key("/calico/resources/v3/projectcalico.org/ippools/p") == ("IPPool", None, "p")
    assert parse_key("/calico/ipam/v2/handle/x") is None


def test_a_pools_cidr_and_block_size_cannot_change(client):
    # clientv3's ippools.Update: "IPPool CIDR cannot be modified", and the same for BlockSize
    # (the blocks already carved from the pool would no longer fit it).
    client.create(pool("pool1", "10.65.0.0/16"))
    with pytest.raises(ValidationError, match=r'^IPPool "pool1": spec.cidr: "10.66.0.0/16" '
                                              r'cannot be modified \(was "10.65.0.0/16"\)$'):
        client.apply(pool("pool1", "10.66.0.0/16"))
    with pytest.raises(ValidationError, match=r'^IPPool "pool1": spec.blockSize: 28 cannot be '
                                              r'modified \(was 26\)$'):
        client.update(pool("pool1", "10.65.0.0/16", blockSize=28))
    assert client.get("IPPool", "pool1").spec.cidr == "10.65.0.0/16"
    client.apply(pool("pool1", "10.65.0.0/16", natOutgoing=True))  # other fields may change
