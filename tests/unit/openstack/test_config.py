"""The `[calico]` section as operators write it: networking-calico's names, unknown and invalid
options logged by name, the datastore each combination selects; `[keystone_authtoken]`."""

import logging

import pytest

from calico.datastore.config import ConfigError
from calico.openstack.config import calico_config, keystone_auth, read_sections


def test_networking_calico_names_select_etcd_with_tls_and_region(caplog):
    conf = calico_config({
        "etcd_host": "etcd-1.example", "etcd_port": "2380", "etcd_ca_cert_file": "/ca.pem",
        "etcd_cert_file": "/c.pem", "etcd_key_file": "/k.pem", "etcd_username": "neutron",
        "etcd_password": "s3cret", "openstack_region": "region-one",
        "etcd_compaction_period_mins": "30", "etcd_compaction_min_revisions": "500",
        "resync_interval_secs": "90", "elector_name": "ctl-1"})
    ds = conf.datastore
    assert ds.type == "etcdv3" and ds.etcd_endpoints == ("https://etcd-1.example:2380",)
    assert (ds.etcd_ca_cert_file, ds.etcd_cert_file, ds.etcd_key_file) == (
        "/ca.pem", "/c.pem", "/k.pem")
    assert (ds.etcd_username, ds.etcd_password) == ("neutron", "s3cret")
    assert conf.region == "region-one" and conf.resync_interval == 90
    assert (conf.etcd_compaction_period_mins, conf.etcd_compaction_min_revisions) == (30, 500)
    assert conf.elector_name == "ctl-1"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_defaults_and_host_list():
    conf = calico_config({})
    assert conf.datastore is None  # Calico's environment / calicoctl.cfg
    assert conf.region is None and conf.etcd_compaction_period_mins == 60
    assert conf.etcd_compaction_min_revisions == 1000 and conf.resync_interval == 60
    ds = calico_config({"etcd_host": "10.0.0.1, 10.0.0.2,fd00::3"}).datastore
    assert ds.etcd_endpoints == ("http://10.0.0.1:2379", "http://10.0.0.2:2379",
                                 "http://[fd00::3]:2379")
    assert calico_config({"etcd_port": "4001"}).datastore.etcd_endpoints == (
        "http://127.0.0.1:4001",)
    ours = calico_config({"datastore_type": "local", "datastore_path": "/x.db"}).datastore
    assert ours.type == "local" and ours.path == "/x.db"


def test_unknown_invalid_and_no_effect_options_are_logged_by_name(caplog):
    caplog.set_level(logging.INFO)
    conf = calico_config({"etcd_port": "twenty", "openstack_region": "Region_One",
                          "etcd_compaction_period_mins": "-5", "etcd_hots": "x",
                          "num_port_status_threads": "4", "ipam": "maybe",
                          "resync_interval_secs": "0.1"})
    text = caplog.text
    assert "[calico] etcd_port = 'twenty' is invalid" in text
    assert "[calico] openstack_region = 'Region_One' is invalid" in text
    assert "[calico] etcd_compaction_period_mins = '-5' is invalid (must be at least 0)" \
        in text
    assert "[calico] resync_interval_secs = '0.1' is invalid (must be at least 0.5)" in text
    assert "[calico] etcd_hots: unknown option; ignored" in text
    assert "[calico] num_port_status_threads = 4: a networking-calico option with no effect" \
        in text
    assert "[calico] ipam = 'maybe' is invalid" in text
    # Defaults are used instead; the invalid port still selected etcd, on its default port.
    assert conf.region is None and conf.etcd_compaction_period_mins == 60 and conf.ipam
    assert conf.resync_interval == 60
    assert conf.datastore.etcd_endpoints == ("http://127.0.0.1:2379",)


def test_half_given_credentials_are_an_error():
    with pytest.raises(ConfigError, match=r"\[calico\] datastore options"):
        calico_config({"etcd_host": "e", "etcd_username": "u"})


def test_read_sections_later_files_win_and_keystone(tmp_path):
    a, b = tmp_path / "neutron.conf", tmp_path / "ml2_conf.ini"
    a.write_text("[DEFAULT]\ndebug = true\n[calico]\netcd_host = a\n"
                 "[keystone_authtoken]\nauth_url = http://ks:5000/v3\nusername = neutron\n"
                 "password = pw\nproject_name = service\n")
    b.write_text("[calico]\netcd_host = b\nopenstack_region = r1\n")
    sections = read_sections([str(a), str(b), str(tmp_path / "missing.ini")])
    assert sections["calico"] == {"etcd_host": "b", "openstack_region": "r1"}
    auth = keystone_auth(sections)
    assert auth.v3 == "http://ks:5000/v3" and auth.username == "neutron"
    assert auth.token_request()["auth"]["scope"]["project"]["name"] == "service"
    assert keystone_auth({"keystone_authtoken": {"auth_url": "http://ks:5000"}}) is None
    assert keystone_auth({}) is None
