"""Felix's datastore comes from the same precedence as every other parameter: Calico's
common variables, overridden by Felix's own DatastoreType / Etcd* in FELIX_<NAME> or felix.cfg."""

import pytest

from calico.datastore import ConfigError
from calico.felix import daemon
from calico.felix.config import ConfigLoader, datastore_config


def _cfg(tmp_path, text):
    path = tmp_path / "felix.cfg"
    path.write_text("[global]\n" + text)
    return str(path)


def test_felix_cfg_datastore_type_and_endpoints_choose_etcd(tmp_path):
    # The reproduction: DATASTORE_TYPE unset, felix.cfg names etcd.
    path = _cfg(tmp_path, "DatastoreType = etcdv3\nEtcdEndpoints = http://192.0.2.10:2379\n")
    config = ConfigLoader(env={}, config_file=path).load()
    ds = datastore_config(config, {})
    assert ds.type == "etcdv3"
    assert ds.etcd_endpoints == ("http://192.0.2.10:2379",)


def test_felix_cfg_overrides_the_common_variables(tmp_path):
    path = _cfg(tmp_path, "DatastoreType = etcdv3\nEtcdEndpoints = https://a:2379,https://b:2379\n"
                "EtcdCaFile = /etc/calico/ca.pem\nEtcdCertFile = /etc/calico/c.pem\n"
                "EtcdKeyFile = /etc/calico/k.pem\n")
    env = {"DATASTORE_TYPE": "local", "ETCD_ENDPOINTS": "http://other:2379"}
    ds = datastore_config(ConfigLoader(env=env, config_file=path).load(), env)
    assert ds.type == "etcdv3"
    assert ds.etcd_endpoints == ("https://a:2379", "https://b:2379")
    assert (ds.etcd_ca_cert_file, ds.etcd_cert_file, ds.etcd_key_file) == (
        "/etc/calico/ca.pem", "/etc/calico/c.pem", "/etc/calico/k.pem")


def test_felix_environment_overrides_felix_cfg(tmp_path):
    path = _cfg(tmp_path, "DatastoreType = etcdv3\nEtcdEndpoints = http://192.0.2.10:2379\n")
    env = {"FELIX_DATASTORETYPE": "local", "CALICO_DATASTORE_PATH": "/srv/c.db"}
    ds = datastore_config(ConfigLoader(env=env, config_file=path).load(), env)
    assert ds.type == "local" and ds.path == "/srv/c.db"


def test_common_variables_apply_when_felix_sets_nothing():
    env = {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": "http://127.0.0.1:2379"}
    ds = datastore_config(ConfigLoader(env=env).load(), env)
    assert ds.type == "etcdv3" and ds.etcd_endpoints == ("http://127.0.0.1:2379",)
    assert datastore_config(ConfigLoader(env={}).load(), {}).type == "local"


def test_etcd_addr_and_scheme(tmp_path):
    path = _cfg(tmp_path, "DatastoreType = etcdv3\nEtcdAddr = 192.0.2.7:2379\n"
                "EtcdScheme = https\n")
    ds = datastore_config(ConfigLoader(env={}, config_file=path).load(), {})
    assert ds.etcd_endpoints == ("https://192.0.2.7:2379",)


def test_datastore_resource_cannot_move_felix(tmp_path):
    config = ConfigLoader(env={}).load({"datastoreType": "etcdv3"})
    assert datastore_config(config, {}).type == "local"


def test_kubernetes_is_refused_naming_the_type(tmp_path):
    path = _cfg(tmp_path, "DatastoreType = kubernetes\n")
    with pytest.raises(ConfigError, match="kubernetes"):
        datastore_config(ConfigLoader(env={}, config_file=path).load(), {})


def test_felix_never_creates_a_missing_local_store(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "typo" / "calico.db"
    monkeypatch.setattr(daemon.os, "environ", {"CALICO_DATASTORE_PATH": str(missing),
                                               "FELIX_LOGFILEPATH": "none",
                                               "FELIX_LOGSEVERITYSYS": "none"})
    code = daemon.main(["--hostname", "h1", "-c", _cfg(tmp_path, "")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and str(missing) in err[0] and "CALICO_DATASTORE_PATH" in err[0]
    assert not missing.parent.exists()
