"""Security properties that need no lab: etcd with TLS client certificates, and etcd with
username/password, end to end through calicoctl (a subprocess configured by Calico's
environment variables) and through the Syncer; wrong credentials give a clear one-line error.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from calico.datastore import DatastoreConfig, connect
from calico.datastore.kv import DatastoreError
from calico.datastore.syncer import Syncer, SyncStatus
from tests.faults.scenarios import View
from tests.fixtures.calicoctl import calicoctl
from tests.fixtures.etcd import EtcdServer, make_tls

POOL = json.dumps({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                   "metadata": {"name": "secure-pool"}, "spec": {"cidr": "10.77.0.0/16"}})
POOL_KEY = "/calico/resources/v3/projectcalico.org/ippools/secure-pool"


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    tls = make_tls(str(tmp_path_factory.mktemp("tls")))
    server = EtcdServer(tls=tls).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_etcd():
    server = EtcdServer().start()
    for args in (["user", "add", "root:rootpw"], ["user", "add", "calico:s3cret"],
                 ["role", "add", "calico"],
                 ["role", "grant-permission", "calico", "--prefix=true", "readwrite", "/calico/"],
                 ["user", "grant-role", "calico", "calico"], ["auth", "enable"]):
        subprocess.run(["etcdctl", "--endpoints", server.endpoint, *args], check=True,
                       capture_output=True)
    yield server
    server.stop()


def one_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()  # the error, and for apply its summary line
    assert 1 <= len(lines) <= 2 and all(x.startswith("Failed to") for x in lines), proc.stderr
    for needle in needles:
        assert needle in lines[0].lower(), lines[0]


def synced_keys(config: DatastoreConfig) -> dict[str, int]:
    backend = connect(config)
    view = View()
    syncer = Syncer(backend, ["IPPool"], view).start()
    try:
        assert view.wait(lambda v: SyncStatus.IN_SYNC in v.statuses, 10), "never in sync"
        return view.snapshot()
    finally:
        syncer.stop()
        backend.close()


# ---- TLS with client certificates ----------------------------------------------------------


def tls_env(server: EtcdServer, cert: bool = True, ca: bool = True) -> dict[str, str]:
    env = {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": server.endpoint}
    if ca:
        env["ETCD_CA_CERT_FILE"] = server.tls.ca
    if cert:
        env["ETCD_CERT_FILE"], env["ETCD_KEY_FILE"] = server.tls.cert, server.tls.key
    return env


def test_tls_client_certificates_end_to_end(tls_etcd):
    env = tls_env(tls_etcd)
    proc = calicoctl(["apply", "-f", "-"], env, input=POOL)
    assert proc.returncode == 0, proc.stderr
    got = calicoctl(["get", "ippools", "-o", "json"], env)
    assert got.returncode == 0 and "10.77.0.0/16" in got.stdout, got.stderr
    config = DatastoreConfig.from_env(env)
    assert POOL_KEY in synced_keys(config)


@pytest.mark.parametrize("missing", ["cert", "ca"])
def test_tls_without_client_cert_or_ca_is_a_clear_error(tls_etcd, missing):
    env = tls_env(tls_etcd, cert=missing != "cert", ca=missing != "ca")
    # The server refuses the handshake; the message must say so (it is retried like an
    # unreachable member for 4 s first).
    one_clean_error(calicoctl(["get", "ippools"], env, timeout=30),
                    "bad certificate" if missing == "cert" else "certificate verify failed")
    with pytest.raises(DatastoreError):
        backend = connect(DatastoreConfig.from_env(env))
        try:
            backend.list("/calico/")
        finally:
            backend.close()


def test_plain_http_to_a_tls_etcd_is_a_clear_error(tls_etcd):
    env = {"DATASTORE_TYPE": "etcdv3",
           "ETCD_ENDPOINTS": tls_etcd.endpoint.replace("https://", "http://")}
    one_clean_error(calicoctl(["get", "ippools"], env, timeout=30))


# ---- username and password -----------------------------------------------------------------


def auth_env(server: EtcdServer, user: str = "calico", password: str = "s3cret"
             ) -> dict[str, str]:
    return {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": server.endpoint,
            "ETCD_USERNAME": user, "ETCD_PASSWORD": password}


def test_username_password_end_to_end(auth_etcd):
    env = auth_env(auth_etcd)
    proc = calicoctl(["apply", "-f", "-"], env, input=POOL)
    assert proc.returncode == 0, proc.stderr
    got = calicoctl(["get", "ippools", "-o", "json"], env)
    assert got.returncode == 0 and "10.77.0.0/16" in got.stdout, got.stderr
    assert POOL_KEY in synced_keys(DatastoreConfig.from_env(env))


def test_wrong_password_is_a_clear_error(auth_etcd):
    proc = calicoctl(["get", "ippools"], auth_env(auth_etcd, password="wrong"), timeout=30)
    one_clean_error(proc, "authentication")
    assert "wrong" not in proc.stderr, "the password is echoed"


def test_no_credentials_on_an_auth_etcd_is_a_clear_error(auth_etcd):
    env = {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": auth_etcd.endpoint}
    one_clean_error(calicoctl(["apply", "-f", "-"], env, input=POOL, timeout=30),
                    "user name is empty")


def test_a_user_without_permission_is_refused(auth_etcd):
    subprocess.run(["etcdctl", "--endpoints", auth_etcd.endpoint, "--user", "root:rootpw",
                    "user", "add", "nobody:nopw"], check=True, capture_output=True)
    proc = calicoctl(["apply", "-f", "-"], auth_env(auth_etcd, "nobody", "nopw"), input=POOL,
                     timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "permission denied" in proc.stderr.lower(), proc.stderr
