"""Many resources written in a few transactions, each with the outcome its own write gives."""

import pytest

from calico import api
from calico.datastore import bulk
from calico.datastore.bulk import write_all
from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceAlreadyExists, ResourceConflict, ResourceNotFound
from calico.datastore.local import LocalBackend

V3 = "projectcalico.org/v3"


def gnp(name, selector="all()"):
    return api.validate({"apiVersion": V3, "kind": "GlobalNetworkPolicy",
                         "metadata": {"name": name}, "spec": {"selector": selector}})


def pool(name, cidr):
    return api.validate({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": name},
                         "spec": {"cidr": cidr}})


class CountingBackend(LocalBackend):
    """Counts transactions; `race` puts a value at a key just before the next txn."""

    txns = 0
    race: tuple[str, str] | None = None

    def txn(self, compares, ops):
        self.txns += 1
        if self.race:
            key, value = self.race
            self.race = None
            self.put(key, value)
        return super().txn(compares, ops)


@pytest.fixture
def client(tmp_path):
    backend = CountingBackend(str(tmp_path / "calico.db"))
    yield ResourceClient(backend)
    backend.close()


def test_many_resources_in_few_transactions_each_with_its_result(client, monkeypatch):
    monkeypatch.setattr(bulk, "CHUNK", 10)
    policies = [gnp(f"p{i:02d}") for i in range(25)]
    results = write_all(client, "apply", policies)
    assert [r.name for r in results] == [p.name for p in policies]
    assert client.backend.txns == 3
    versions = {r.metadata.resourceVersion for r in results}
    assert len(versions) == 3  # one revision per transaction, as in an etcd txn
    for r in results:
        got = client.get("GlobalNetworkPolicy", r.name)
        assert got.metadata.resourceVersion == r.metadata.resourceVersion
        assert got.metadata.uid == r.metadata.uid
    before = client.backend.revision()
    again = write_all(client, "apply", [gnp(f"p{i:02d}") for i in range(25)])
    assert client.backend.revision() == before and client.backend.txns == 3  # nothing written
    assert [r.metadata.uid for r in again] == [r.metadata.uid for r in results]


def test_each_resource_gets_the_error_its_own_write_would(client):
    first = write_all(client, "apply", [gnp("a"), gnp("b")])
    client.apply(gnp("a", "has(x)"))  # moves "a" on: first[0]'s version is stale now
    stale = first[0].to_dict()
    stale["spec"]["selector"] = "has(y)"
    results = write_all(client, "apply", [api.validate(stale), gnp("c")])
    assert isinstance(results[0], ResourceConflict) and "update conflict" in str(results[0])
    assert results[1].name == "c"
    created = write_all(client, "create", [gnp("b"), gnp("d")])
    assert isinstance(created[0], ResourceAlreadyExists) and created[1].name == "d"
    replaced = write_all(client, "update", [gnp("zz"), gnp("d", "has(d)")])
    assert isinstance(replaced[0], ResourceNotFound)
    assert client.get("GlobalNetworkPolicy", "d").spec.selector == "has(d)"


def test_a_key_twice_is_written_in_order_and_pools_one_by_one(client):
    results = write_all(client, "apply", [gnp("a", "has(one)"), pool("p1", "10.0.0.0/16"),
                                          gnp("a", "has(two)"), pool("p2", "10.0.1.0/24")])
    assert client.get("GlobalNetworkPolicy", "a").spec.selector == "has(two)"
    assert results[1].name == "p1"
    assert isinstance(results[3], api.ValidationError)  # overlaps p1, as a single write finds


def test_a_race_with_another_writer_falls_back_to_single_writes(client):
    key = gnp("b").key()
    client.backend.race = (key, '{"apiVersion":"projectcalico.org/v3","kind":'
                                '"GlobalNetworkPolicy","metadata":{"name":"b"},"spec":{}}')
    results = write_all(client, "apply", [gnp("a"), gnp("b", "has(mine)")])
    assert [r.name for r in results] == ["a", "b"]
    assert client.get("GlobalNetworkPolicy", "b").spec.selector == "has(mine)"
