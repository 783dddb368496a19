"""The ML2 [calico] section's datastore options (dsconf.section_datastore)."""

import pytest

from calico.datastore import ConfigError
from calico.openstack.dsconf import section_datastore

DEFAULTS = {"datastore_type": None, "datastore_path": None, "etcd_endpoints": None,
            "etcd_host": None, "etcd_port": 2379, "etcd_scheme": "http",
            "etcd_ca_cert_file": None, "etcd_cert_file": None, "etcd_key_file": None,
            "etcd_username": None, "etcd_password": None}


def _ds(**values):
    return section_datastore({**DEFAULTS, **values})


def test_networking_calico_etcd_host_form_implies_etcd_with_tls():
    ds = _ds(etcd_host="10.0.0.1", etcd_port=2380, etcd_scheme="https",
             etcd_ca_cert_file="/ca", etcd_cert_file="/c", etcd_key_file="/k")
    assert ds.type == "etcdv3" and ds.etcd_endpoints == ("https://10.0.0.1:2380",)
    assert (ds.etcd_ca_cert_file, ds.etcd_cert_file, ds.etcd_key_file) == ("/ca", "/c", "/k")


def test_etcd_endpoints_win_over_etcd_host():
    ds = _ds(etcd_host="10.0.0.1", etcd_endpoints=["http://a:2379", "http://b:2379/"])
    assert ds.etcd_endpoints == ("http://a:2379", "http://b:2379")


def test_local_with_a_path_names_the_option_in_messages():
    ds = _ds(datastore_type="local", datastore_path="/srv/calico.db")
    assert (ds.type, ds.path, ds.path_source) == ("local", "/srv/calico.db",
                                                  "datastore_path in [calico]")


def test_nothing_set_falls_back_to_calicoctls_rule(monkeypatch, tmp_path):
    monkeypatch.setattr("calico.datastore.config.DEFAULT_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("DATASTORE_TYPE", "etcdv3")
    monkeypatch.setenv("ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    assert _ds().type == "etcdv3"


def test_username_without_password_is_refused():
    with pytest.raises(ConfigError, match="etcdUsername and etcdPassword"):
        _ds(etcd_host="10.0.0.1", etcd_username="neutron")
