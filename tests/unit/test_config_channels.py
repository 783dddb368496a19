"""One precedence rule per configuration channel, checked end to end where it is decided:
calicoctl (-c FILE, by default /etc/calico/calicoctl.cfg on every command, > environment) and the CNI network config
(its fields > the environment). Felix's rule is tests/unit/felix/test_config_datastore.py,
the ML2 section's tests/unit/openstack/test_section_datastore.py, calico-node's environment
tests/unit/node/test_startup.py."""

import json

from click.testing import CliRunner

from calico.cni.netconf import NetConf
from calico.ctl.main import _register_optional_groups, cli
from calico.ctl.session import Session

POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: chan}
spec: {cidr: 10.11.0.0/16}
"""


def _cfg(path, store):
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n"
                    f"  datastoreType: local\n  datastorePath: {store}\n")
    return str(path)


def test_calicoctl_config_file_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASTORE_TYPE", "etcdv3")
    monkeypatch.setenv("ETCD_ENDPOINTS", "http://192.0.2.1:2379")
    cfg = _cfg(tmp_path / "calicoctl.cfg", tmp_path / "from-file.db")
    res = CliRunner().invoke(cli, ["apply", "-c", cfg, "-f", "-"], input=POOL)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "from-file.db").exists()
    assert Session(cfg).datastore_config.path == str(tmp_path / "from-file.db")


def _commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


DATASTORE_COMMANDS = {"create", "apply", "replace", "delete", "get", "patch", "label",
                      "version", "ipam show", "ipam release", "ipam check", "ipam configure",
                      "ipam split", "datastore migrate lock", "datastore migrate unlock",
                      "datastore migrate export", "datastore migrate import", "cluster diags"}


def test_every_calicoctl_datastore_command_reads_etc_calico_calicoctl_cfg_by_default():
    _register_optional_groups()
    with_config = set()
    for path, command in _commands(cli):
        for param in command.params:
            if "--config" in param.opts:
                assert param.default == "/etc/calico/calicoctl.cfg", " ".join(path)
                assert "-c" in param.opts, " ".join(path)
                with_config.add(" ".join(path))
    assert with_config == DATASTORE_COMMANDS


def test_calicoctl_environment_when_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASTORE_TYPE", "local")
    monkeypatch.setenv("CALICO_DATASTORE_PATH", str(tmp_path / "from-env.db"))
    res = CliRunner().invoke(cli, ["apply", "-c", str(tmp_path / "absent.cfg"), "-f", "-"],
                             input=POOL)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "from-env.db").exists()


def test_calicoctl_unreadable_config_is_named(tmp_path):
    bad = tmp_path / "calicoctl.cfg"
    bad.write_text("kind: Nope\n")
    res = CliRunner().invoke(cli, ["get", "ippools", "-c", str(bad)])
    assert res.exit_code == 1 and str(bad) in res.output


def test_cni_config_fields_win_over_the_environment():
    env = {"DATASTORE_TYPE": "local", "ETCD_ENDPOINTS": "http://192.0.2.9:2379"}
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "calico", "datastore_type": "etcdv3",
            "etcd_endpoints": "http://10.0.0.1:2379", "ipam": {"type": "calico-ipam"}}
    ds = NetConf.parse(json.dumps(conf).encode(), env=env).datastore
    assert ds.type == "etcdv3" and ds.etcd_endpoints == ("http://10.0.0.1:2379",)
    del conf["datastore_type"], conf["etcd_endpoints"]
    assert NetConf.parse(json.dumps(conf).encode(), env=env).datastore.type == "local"
