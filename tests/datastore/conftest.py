"""The datastore tier: the same contract suite against every backend.

`backend` is parametrized over `local` (a SQLite file in tmp_path) and `etcdv3` (the
session's real etcd, see tests/fixtures/etcd.py); `prefix` is a key prefix unique to the
test, so tests sharing the etcd server never see each other's keys. `config` is the
DatastoreConfig of that backend, for tests that open more handles or processes.
"""

import uuid

import pytest

from calico.datastore import DatastoreConfig, connect
from tests.fixtures.etcd import etcd_cluster, etcd_server, etcd_tls  # noqa: F401  (fixtures)

BACKENDS = ["local", "etcdv3"]


@pytest.fixture(params=BACKENDS)
def config(request, tmp_path):
    if request.param == "local":
        return DatastoreConfig(type="local", path=str(tmp_path / "calico.db"))
    server = request.getfixturevalue("etcd_server")
    return DatastoreConfig(type="etcdv3", etcd_endpoints=(server.endpoint,))


@pytest.fixture
def backend(config):
    backend = connect(config)
    yield backend
    backend.close()


@pytest.fixture
def prefix():
    return f"/test/{uuid.uuid4().hex[:12]}/"
