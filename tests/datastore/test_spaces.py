"""AddressSpace creation on every backend (local and a real etcd): concurrent creates claim
distinct prefixes (one transaction per space and claim), a given prefix is claimed once, and
deleting a space frees its claim."""

import threading
import uuid

import pytest

from calico.api import ValidationError
from calico.datastore import connect
from calico.datastore.client import ResourceClient
from calico.datastore.spaces import CLAIM_PREFIX


def _space(name, prefix=None):
    return {"apiVersion": "projectcalico.org/v3", "kind": "AddressSpace",
            "metadata": {"name": name},
            "spec": {"translationPrefix": prefix} if prefix else {}}


def test_concurrent_creates_claim_distinct_prefixes(config, backend, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    # A range of this test's own (tests share the etcd server).
    monkeypatch.setenv("CALICO_ADDRESS_SPACE_RANGE", f"fd{tag[:2]}:{tag[2:6]}::/80")
    names = [f"s{tag}-{i}" for i in range(4)]
    errors = []

    def create(name):
        b = connect(config)
        try:
            ResourceClient(b).create(_space(name))
        except Exception as err:  # noqa: BLE001  (asserted below)
            errors.append(err)
        finally:
            b.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client = ResourceClient(backend)
    try:
        assert errors == []
        mine = [s for s in client.list("AddressSpace").items if s.name in names]
        prefixes = {s.spec.translationPrefix for s in mine}
        assert len(mine) == 4 and len(prefixes) == 4
        given = sorted(prefixes)[0]
        with pytest.raises(ValidationError, match="collides with AddressSpace"):
            client.create(_space(f"x{tag}", given))
    finally:
        for name in names:
            client.delete("AddressSpace", name)
    claims = [kv.value for kv in backend.list(CLAIM_PREFIX)[0]]
    assert not set(names) & set(claims)
