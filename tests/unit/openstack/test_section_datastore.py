"""The ML2 [calico] section's datastore options, as config.calico_config reads them."""

import pytest

from calico.datastore import ConfigError
from calico.openstack.config import calico_config


def _ds(**values):
    return calico_config({k: str(v) for k, v in values.items()}).datastore


def test_networking_calico_etcd_host_form_implies_etcd_with_tls():
    ds = _ds(etcd_host="10.0.0.1", etcd_port=2380, etcd_scheme="https",
             etcd_ca_cert_file="/ca", etcd_cert_file="/c", etcd_key_file="/k")
    assert ds.type == "etcdv3" and ds.etcd_endpoints == ("https://10.0.0.1:2380",)
    assert (ds.etcd_ca_cert_file, ds.etcd_cert_file, ds.etcd_key_file) == ("/ca", "/c", "/k")


def test_etcd_endpoints_win_over_etcd_host():
    ds = _ds(etcd_host="10.0.0.1", etcd_endpoints="http://a:2379,http://b:2379")
    assert ds.etcd_endpoints == ("http://a:2379", "http://b:2379")


def test_local_with_a_path_names_the_option_in_messages():
    ds = _ds(datastore_type="local", datastore_path="/srv/calico.db")
    assert (ds.type, ds.path, ds.path_source) == ("local", "/srv/calico.db",
                                                  "datastore_path in [calico]")


def test_nothing_set_leaves_the_choice_to_calicoctls_rule():
    assert _ds() is None


def test_username_without_password_is_refused():
    with pytest.raises(ConfigError, match="etcdUsername and etcdPassword"):
        _ds(etcd_host="10.0.0.1", etcd_username="neutron")
