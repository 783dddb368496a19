"""`calico-node install`: put one compute or container host's Calico files in place.

    calico-node install [--root DIR] [--cni] [--openstack]
                        [--datastore-type local|etcdv3] [--etcd-endpoints URLS]
                        [--etcd-ca-cert-file F --etcd-cert-file F --etcd-key-file F]

Writes, under DIR (default `/`; a staging root like DESTDIR: paths *inside* the files are the
real host's):

    etc/systemd/system/calico-node.service        always (re)written: ours to own
    etc/systemd/system/calico-dhcp-agent.service  with --openstack (OpenStack compute hosts)
    etc/calico/calico.env       calico-node's settings (NODENAME, IP, datastore) } only when
    etc/calico/felix.cfg        Felix's [global] settings                        } absent:
    etc/calico/calicoctl.cfg    a CalicoAPIConfig for calicoctl and the agent    } the operator's
    opt/cni/bin/calico, calico-ipam                with --cni: the CNI plugins
    etc/cni/net.d/10-calico.conflist               with --cni, only when absent

Units run the installed package's own entry points (`calico-node`, `calico-dhcp-agent` from
the scripts directory of the interpreter running this command), restart on failure, and
order after the network and etcd. calico-node stops its children itself on SIGTERM, so the
unit uses KillMode=mixed (SIGTERM to calico-node only; SIGKILL to all after the timeout).
Running the command again changes nothing that is already right: it prints `unchanged` or
`kept` for each file, `wrote` for what it (re)wrote. Nothing is enabled or started: the
last lines say which systemctl commands do that.
"""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
from dataclasses import dataclass

import click

from calico.cni import installer as cni_installer
from calico.datastore.config import ConfigError, DatastoreConfig

UNIT_DIR = "/etc/systemd/system"
CONFIG_DIR = "/etc/calico"
ENV_FILE = f"{CONFIG_DIR}/calico.env"
CNI_BIN_DIR = "/opt/cni/bin"
CNI_NET_DIR = "/etc/cni/net.d"
RUN_DIR = "/var/run/calico"


class InstallError(Exception):
    """Something the operator must fix before installing (a sentence naming it)."""


@dataclass(frozen=True)
class Plan:
    root: str
    bin_dir: str
    datastore: DatastoreConfig
    cni: bool = False
    openstack: bool = False

    def at(self, path: str) -> str:
        """`path` of the real host, under the staging root."""
        return os.path.join(self.root, path.lstrip("/"))


def entry_point_dir() -> str:
    """Where this package's commands are: the running interpreter's scripts directory
    (a venv's bin, or /usr/local/bin for a system pip install), else the PATH's."""
    scripts = sysconfig.get_path("scripts")
    if os.access(os.path.join(scripts, "calico-node"), os.X_OK):
        return scripts
    found = shutil.which("calico-node")
    if found:
        return os.path.dirname(os.path.abspath(found))
    raise InstallError("calico-node is not installed as a command (pip install the package "
                       "first, or give --bin-dir)")


# ---- file contents ----------------------------------------------------------------------

def node_unit(plan: Plan) -> str:
    return f"""\
# Written by `calico-node install`; running it again rewrites this file.
[Unit]
Description=Calico node: registers this host, runs Felix, the BGP daemon and BIRD
After=network-online.target etcd.service
Wants=network-online.target

[Service]
Type=simple
Environment=CALICO_RUN_DIR={RUN_DIR}
EnvironmentFile=-{ENV_FILE}
ExecStart={plan.bin_dir}/calico-node
Restart=always
RestartSec=5
KillMode=mixed
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


def dhcp_agent_unit(plan: Plan) -> str:
    return f"""\
# Written by `calico-node install --openstack`; running it again rewrites this file.
[Unit]
Description=Calico DHCP agent: dnsmasq for this compute host's VMs
After=network-online.target etcd.service calico-node.service
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile=-{ENV_FILE}
ExecStart={plan.bin_dir}/calico-dhcp-agent --state-dir /var/lib/calico/dhcp
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def env_file(plan: Plan) -> str:
    ds = plan.datastore
    lines = ["# calico-node's settings (the environment of calico-node.service); see the",
             "# calico-node table in the README. Unset lines keep calico-node's defaults.",
             f"DATASTORE_TYPE={ds.type}"]
    if ds.type == "etcdv3":
        lines.append(f"ETCD_ENDPOINTS={','.join(ds.etcd_endpoints)}")
        for var, value in (("ETCD_CA_CERT_FILE", ds.etcd_ca_cert_file),
                           ("ETCD_CERT_FILE", ds.etcd_cert_file),
                           ("ETCD_KEY_FILE", ds.etcd_key_file)):
            lines.append(f"{var}={value}" if value else f"#{var}=")
    else:
        lines.append(f"#CALICO_DATASTORE_PATH={ds.path or '/var/lib/calico/calico.db'}")
    lines += ["#NODENAME=", "#IP=autodetect", "#IP_AUTODETECTION_METHOD=first-found",
              "#IP6=none", "#AS=64512", "#CALICO_NETWORKING_BACKEND=bird",
              "#CALICO_IPV4POOL_CIDR=192.168.0.0/16", "#NO_DEFAULT_POOLS=false",
              "#CALICO_LOGSEVERITYSCREEN=Info",
              "#CALICO_LOGFILEPATH=/var/log/calico/calico-node.log",
              "#CALICO_LOGSEVERITYFILE=Info", "#CALICO_LOGSEVERITYSYS=none"]
    return "\n".join(lines) + "\n"


def felix_cfg(plan: Plan) -> str:
    ds = plan.datastore
    lines = ["# Felix's configuration file: [global], Felix's parameter names (see",
             "# docs/felix-configuration.md). The environment (FELIX_<NAME>) wins over this",
             "# file; this file wins over FelixConfiguration resources.", "[global]",
             f"DatastoreType = {ds.type}"]
    if ds.type == "etcdv3":
        lines.append(f"EtcdEndpoints = {','.join(ds.etcd_endpoints)}")
        for name, value in (("EtcdCaFile", ds.etcd_ca_cert_file),
                            ("EtcdCertFile", ds.etcd_cert_file),
                            ("EtcdKeyFile", ds.etcd_key_file)):
            if value:
                lines.append(f"{name} = {value}")
    lines += ["# LogFilePath = /var/log/calico/felix.log", "# LogSeverityFile = Info",
              "# LogSeverityScreen = Info", "# LogSeveritySys = Info",
              "# HealthEnabled = true"]
    return "\n".join(lines) + "\n"


def calicoctl_cfg(plan: Plan) -> str:
    ds = plan.datastore
    spec = {"datastoreType": ds.type}
    if ds.type == "etcdv3":
        spec["etcdEndpoints"] = ",".join(ds.etcd_endpoints)
        for key, value in (("etcdCACertFile", ds.etcd_ca_cert_file),
                           ("etcdCertFile", ds.etcd_cert_file),
                           ("etcdKeyFile", ds.etcd_key_file)):
            if value:
                spec[key] = value
    elif ds.path:
        spec["datastorePath"] = ds.path
    body = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in spec.items())
    return ("# calicoctl's datastore (also read by calico-dhcp-agent). Written once by\n"
            "# `calico-node install`; while this file exists it wins over the environment.\n"
            f"apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\n"
            f"spec:\n{body}\n")


def conflist(plan: Plan) -> str:
    ds = plan.datastore
    plugin: dict = {"type": "calico", "log_level": "info", "datastore_type": ds.type,
                    "nodename_file": f"{RUN_DIR}/nodename", "mtu": 1500,
                    "ipam": {"type": "calico-ipam"}}
    if ds.type == "etcdv3":
        plugin["etcd_endpoints"] = ",".join(ds.etcd_endpoints)
        for key, value in (("etcd_ca_cert_file", ds.etcd_ca_cert_file),
                           ("etcd_cert_file", ds.etcd_cert_file),
                           ("etcd_key_file", ds.etcd_key_file)):
            if value:
                plugin[key] = value
    elif ds.path:
        plugin["datastore_path"] = ds.path
    doc = {"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": [plugin]}
    return json.dumps(doc, indent=2) + "\n"


# ---- writing ----------------------------------------------------------------------------

def _write(path: str, text: str, mode: int = 0o644, *, keep: bool = False) -> str:
    """Write atomically; returns what happened: wrote, unchanged, or kept (exists, `keep`)."""
    if os.path.exists(path):
        if keep:
            return "kept"
        with open(path) as f:
            if f.read() == text:
                return "unchanged"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return "wrote"


def install(plan: Plan) -> list[tuple[str, str]]:
    """Every file of the plan: [(what happened, real path)], in the order written."""
    done = []

    def put(path: str, text: str, mode: int = 0o644, keep: bool = False) -> None:
        done.append((_write(plan.at(path), text, mode, keep=keep), path))

    put(f"{UNIT_DIR}/calico-node.service", node_unit(plan))
    if plan.openstack:
        put(f"{UNIT_DIR}/calico-dhcp-agent.service", dhcp_agent_unit(plan))
    put(ENV_FILE, env_file(plan), 0o600, keep=True)  # may hold etcd credentials
    put(f"{CONFIG_DIR}/felix.cfg", felix_cfg(plan), keep=True)
    put(f"{CONFIG_DIR}/calicoctl.cfg", calicoctl_cfg(plan), 0o600, keep=True)
    if plan.cni:
        python = os.path.join(plan.bin_dir, "python")
        if not os.access(python, os.X_OK):
            python = None  # a system install: the wrappers use this interpreter
        for plugin in ("calico", "calico-ipam"):
            put(f"{CNI_BIN_DIR}/{plugin}", cni_installer.wrapper_text(plugin, python), 0o755)
        put(f"{CNI_NET_DIR}/10-calico.conflist", conflist(plan), keep=True)
    return done


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="Install under this directory instead of / (a staging root).")
@click.option("--cni", is_flag=True, help="Also install the CNI plugins and a conflist.")
@click.option("--openstack", is_flag=True, help="Also install the calico-dhcp-agent unit.")
@click.option("--datastore-type", type=click.Choice(["local", "etcdv3"]), default="local",
              show_default=True, help="The datastore the templates name.")
@click.option("--etcd-endpoints", default=None, help="etcd endpoints (comma-separated).")
@click.option("--etcd-ca-cert-file", default=None)
@click.option("--etcd-cert-file", default=None)
@click.option("--etcd-key-file", default=None)
@click.option("--bin-dir", default=None, help="Where the calico commands are (default: "
              "this interpreter's scripts directory).")
def install_command(root, cni, openstack, datastore_type, etcd_endpoints, etcd_ca_cert_file,
                    etcd_cert_file, etcd_key_file, bin_dir) -> None:
    """Install calico-node's systemd units, configuration templates and (with --cni) the
    CNI plugins on this host."""
    try:
        if datastore_type == "etcdv3" and not etcd_endpoints:
            raise InstallError("--datastore-type etcdv3 needs --etcd-endpoints")
        ds = DatastoreConfig(type=datastore_type, etcd_endpoints=tuple(
            e.strip() for e in (etcd_endpoints or "http://127.0.0.1:2379").split(",")),
            etcd_ca_cert_file=etcd_ca_cert_file, etcd_cert_file=etcd_cert_file,
            etcd_key_file=etcd_key_file)
        plan = Plan(root=root, bin_dir=bin_dir or entry_point_dir(), datastore=ds, cni=cni,
                    openstack=openstack)
        done = install(plan)
    except (InstallError, ConfigError) as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        raise click.ClickException(f"{err.filename}: {err.strerror}") from None
    for what, path in done:
        click.echo(f"{what:9} {path}")
    units = " ".join(["calico-node"] + (["calico-dhcp-agent"] if openstack else []))
    click.echo(f"next: edit {ENV_FILE} (NODENAME, IP), then "
               f"`systemctl daemon-reload && systemctl enable --now {units}`")
