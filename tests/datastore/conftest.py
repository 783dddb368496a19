"""The datastore tier: the same contract suite against every backend.

`backend` is parametrized over `local` (a SQLite file in tmp_path) and `etcdv3` (the
session's real etcd, see tests/fixtures/etcd.py); `prefix` is a key prefix unique to the
test, so tests sharing the etcd server never see each other's keys. `config` is the
DatastoreConfig of that backend, for tests that open more handles or processes.

`ctl` runs calicoctl as a subprocess (tests/fixtures/calicoctl.py), as an operator runs it,
against a fresh local store or against a real etcd (one per test module, emptied of /calico/
before each test):

    res = ctl("apply", "-f", "-", input=YAML)   # -> CompletedProcess (text)
    ctl.store, ctl.config, ctl.revision()       # "local" | "etcdv3", its DatastoreConfig,
                                                # the store's revision now
"""

import os
import subprocess
import uuid

import pytest

from calico.datastore import DatastoreConfig, connect
from tests.conftest import require_programs
from tests.fixtures import calicoctl as subprocess_ctl
from tests.fixtures.etcd import EtcdServer, etcd_cluster, etcd_server, etcd_tls  # noqa: F401  (fixtures)

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


@pytest.fixture(scope="module")
def module_etcd():
    require_programs("etcd", "etcdctl")
    server = EtcdServer().start()
    yield server
    server.stop()


def _store_env(store: str, request, tmp_path) -> dict[str, str]:
    if store == "local":
        path = str(tmp_path / "calico.db")
        connect(DatastoreConfig(type="local", path=path), create=True).close()  # as etcd is
        return {"CALICO_DATASTORE_PATH": path}
    server = request.getfixturevalue("module_etcd")
    subprocess.run(["etcdctl", "--endpoints", server.endpoint, "del", "--prefix", "/calico/"],
                   check=True, capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})
    return {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": server.endpoint}


@pytest.fixture(params=BACKENDS)
def ctl(request, tmp_path):
    env = _store_env(request.param, request, tmp_path)

    def run(*args, input=None, env_extra=None):
        return subprocess_ctl.calicoctl(args, {**env, **(env_extra or {})}, input=input)

    def revision() -> int:
        backend = connect(run.config, create=False)
        try:
            return backend.revision()
        finally:
            backend.close()
    run.store = request.param
    run.env = env
    run.config = DatastoreConfig.from_env(env)
    run.revision = revision
    return run
