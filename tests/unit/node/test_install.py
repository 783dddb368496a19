"""`calico-node install` into a temporary root: what it writes, that every template is read
back by the component it configures, and that a second run changes nothing."""

import json
import os

from click.testing import CliRunner

from calico.cni.netconf import NetConf
from calico.datastore import DatastoreConfig
from calico.felix.config import ConfigLoader, datastore_config
from calico.node.install import install_command

ETCD = ["--datastore-type", "etcdv3", "--etcd-endpoints", "https://10.0.0.1:2379",
        "--etcd-ca-cert-file", "/etc/calico/ca.pem", "--etcd-cert-file", "/etc/calico/c.pem",
        "--etcd-key-file", "/etc/calico/k.pem"]


def _install(root, *args):
    return CliRunner().invoke(install_command, ["--root", str(root), "--bin-dir", "/usr/bin",
                                                *args], catch_exceptions=False)


def test_writes_units_templates_and_cni(tmp_path):
    res = _install(tmp_path, "--cni", "--openstack", *ETCD)
    assert res.exit_code == 0, res.output
    for rel in ("etc/systemd/system/calico-node.service",
                "etc/systemd/system/calico-dhcp-agent.service", "etc/calico/calico.env",
                "etc/calico/felix.cfg", "etc/calico/calicoctl.cfg", "opt/cni/bin/calico",
                "opt/cni/bin/calico-ipam", "etc/cni/net.d/10-calico.conflist"):
        assert (tmp_path / rel).exists(), rel
    unit = (tmp_path / "etc/systemd/system/calico-node.service").read_text()
    assert "ExecStart=/usr/bin/calico-node\n" in unit and "Restart=always" in unit
    assert "After=network-online.target etcd.service" in unit
    assert oct(os.stat(tmp_path / "etc/calico/calicoctl.cfg").st_mode & 0o777) == "0o600"


def test_templates_are_read_back_by_their_components(tmp_path):
    _install(tmp_path, "--cni", *ETCD)
    felix = ConfigLoader(env={}, config_file=str(tmp_path / "etc/calico/felix.cfg")).load()
    ds = datastore_config(felix, {})
    assert (ds.type, ds.etcd_endpoints, ds.etcd_key_file) == (
        "etcdv3", ("https://10.0.0.1:2379",), "/etc/calico/k.pem")
    ctl = DatastoreConfig.from_file(str(tmp_path / "etc/calico/calicoctl.cfg"))
    assert ctl == ds
    env = dict(line.split("=", 1) for line in
               (tmp_path / "etc/calico/calico.env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert DatastoreConfig.from_env(env) == ds
    # A runtime hands each plugin its own entry plus the list's name and cniVersion.
    doc = json.loads((tmp_path / "etc/cni/net.d/10-calico.conflist").read_text())
    stdin = {**doc["plugins"][0], "name": doc["name"], "cniVersion": doc["cniVersion"]}
    conf = NetConf.parse(json.dumps(stdin).encode(), env={})
    assert conf.datastore == ds and conf.ipam.type == "calico-ipam"


def test_local_datastore_templates(tmp_path):
    _install(tmp_path, "--cni")
    felix = ConfigLoader(env={}, config_file=str(tmp_path / "etc/calico/felix.cfg")).load()
    assert datastore_config(felix, {}).type == "local"
    doc = json.loads((tmp_path / "etc/cni/net.d/10-calico.conflist").read_text())
    assert doc["plugins"][0]["datastore_type"] == "local"


def test_second_run_changes_nothing_and_keeps_the_operators_edits(tmp_path):
    _install(tmp_path, *ETCD)
    env_file = tmp_path / "etc/calico/calico.env"
    env_file.write_text(env_file.read_text() + "NODENAME=compute-7\n")
    res = _install(tmp_path, *ETCD)
    assert "wrote" not in res.output
    assert "kept      /etc/calico/calico.env" in res.output
    assert "NODENAME=compute-7" in env_file.read_text()


def test_etcd_without_endpoints_is_refused(tmp_path):
    res = _install(tmp_path, "--datastore-type", "etcdv3")
    assert res.exit_code != 0 and "--etcd-endpoints" in res.output
    assert not (tmp_path / "etc").exists()
