import pytest

from calico.datastore import ConfigError, DatastoreConfig, connect
from calico.datastore.local import LocalBackend


def test_from_env_defaults_to_local():
    cfg = DatastoreConfig.from_env({})
    assert cfg.type == "local" and cfg.path is None


def test_from_env_etcd():
    cfg = DatastoreConfig.from_env({
        "DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": "https://a:2379, https://b:2379/",
        "ETCD_CA_CERT_FILE": "/ca.pem", "ETCD_CERT_FILE": "/c.pem", "ETCD_KEY_FILE": "/k.pem",
        "ETCD_USERNAME": "root", "ETCD_PASSWORD": "pw"})
    assert cfg.etcd_endpoints == ("https://a:2379", "https://b:2379")
    assert (cfg.etcd_ca_cert_file, cfg.etcd_username) == ("/ca.pem", "root")


def test_kubernetes_is_refused_with_a_clear_message():
    with pytest.raises(ConfigError, match="kubernetes"):
        DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes"})


def test_from_calicoctl_cfg(tmp_path):
    path = tmp_path / "calicoctl.cfg"
    path.write_text(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
        "spec:\n  datastoreType: etcdv3\n  etcdEndpoints: http://10.0.0.1:2379\n"
        "  etcdCACertFile: /etc/calico/ca.pem\n")
    cfg = DatastoreConfig.from_file(str(path))
    assert cfg.type == "etcdv3"
    assert cfg.etcd_endpoints == ("http://10.0.0.1:2379",)
    assert cfg.etcd_ca_cert_file == "/etc/calico/ca.pem"


def test_unknown_spec_field_is_named(tmp_path):
    path = tmp_path / "calicoctl.cfg"
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n"
                    "spec: {datastoreType: etcdv3, k8sAPIEndpoint: x}\n")
    with pytest.raises(ConfigError, match="k8sAPIEndpoint"):
        DatastoreConfig.from_file(str(path))


def test_connect_local(tmp_path):
    backend = connect(DatastoreConfig(path=str(tmp_path / "x.db")))
    assert isinstance(backend, LocalBackend)
    backend.close()
