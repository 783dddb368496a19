"""The `[calico]` section of the ML2 configuration, read as operators write it.

networking-calico's option names are accepted and acted on, next to ours:

| option | default | meaning |
|---|---|---|
| `etcd_host`, `etcd_port`, `etcd_scheme` | 127.0.0.1, 2379, http (https with TLS files) | the etcd to use |
| `etcd_ca_cert_file`, `etcd_cert_file`, `etcd_key_file` | - | etcd TLS |
| `etcd_username`, `etcd_password` | - | etcd authentication |
| `openstack_region` | - | region: namespace `openstack-region-<r>`, keys under `region-<r>` |
| `etcd_compaction_period_mins` | 60 | minutes between etcd compactions (0: never) |
| `etcd_compaction_min_revisions` | 1000 | history always kept by a compaction |
| `resync_interval_secs` / `resync_interval` | 60 | seconds between the master's resyncs |
| `elector_name` | host name | this server's name in the election |
| `project_name_cache_max` | 100 | Keystone project cache size |
| `datastore_type`, `datastore_path`, `etcd_endpoints` | - | ours: `local` or `etcdv3`, the SQLite file, etcd URLs |
| `election_ttl` | 30 | ours: seconds a master's lease lasts |
| `ipam` | true | ours: record fixed IPs in Calico IPAM |
| `address_spaces` | off | ours: `per_network` makes each network an AddressSpace (spaces.py) |

The datastore: `datastore_type` when given; else etcd when any `etcd_*` option is given
(`etcd_endpoints`, or `<scheme>://<etcd_host>:<etcd_port>` — `etcd_host` may list several
hosts, comma-separated); else Calico's environment / calicoctl.cfg (`DATASTORE_TYPE`, ...).

networking-calico options that mean nothing here (`etcd_timeout`,
`resync_max_interval_secs`, `num_port_status_threads` and the QoS burst/connection options)
are accepted and logged as having no effect. Any other option in the section is logged as
unknown and ignored; an invalid value is logged with the option's name and value and the
default is used instead. Nothing is ever taken silently.

Pure Python (no oslo.config): `read_sections(paths)` reads the files Neutron was started
with (later files win, as with oslo.config), `calico_config(section)` checks the values.
"""

from __future__ import annotations

import configparser
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from calico.datastore.config import ConfigError, DatastoreConfig

from .keystone import KeystoneAuth
from .names import UnmappableName, check_region

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _bool(text: str) -> bool:
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise ValueError("is not a boolean (true/false)")


N = TypeVar("N", int, float)


def _number(type_: type[N], lo: N) -> Callable[[str], N]:
    """A parser of `type_` (int or float) values of at least `lo`."""
    def parse(text: str) -> N:
        value = type_(text.strip())
        if value < lo:
            raise ValueError(f"must be at least {lo:g}")
        return value
    return parse


def _str(text: str) -> str:
    return text.strip()


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _choice(*values: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in values:
            raise ValueError(f"must be one of {', '.join(values)}")
        return text.strip()
    return parse


def _region(text: str) -> str:
    try:
        return check_region(text.strip())
    except UnmappableName as err:
        raise ValueError(str(err)) from None


OPTIONS: dict[str, tuple[Callable[[str], Any], Any]] = {
    "etcd_host": (_list, ["127.0.0.1"]), "etcd_port": (_number(int, 1), 2379),
    "etcd_scheme": (_choice("http", "https"), None),
    "etcd_ca_cert_file": (_str, None), "etcd_cert_file": (_str, None),
    "etcd_key_file": (_str, None), "etcd_username": (_str, None),
    "etcd_password": (_str, None), "openstack_region": (_region, None),
    "etcd_compaction_period_mins": (_number(int, 0), 60),
    "etcd_compaction_min_revisions": (_number(int, 0), 1000),
    "resync_interval_secs": (_number(float, 0.5), None), "resync_interval": (_number(float, 0.5), None),
    "elector_name": (_str, None), "project_name_cache_max": (_number(int, 1), 100),
    "datastore_type": (_choice("local", "etcdv3"), None), "datastore_path": (_str, None),
    "etcd_endpoints": (_list, None), "election_ttl": (_number(int, 2), 30), "ipam": (_bool, True),
    "address_spaces": (_choice("off", "per_network"), "off"),
}
NO_EFFECT = frozenset((
    "etcd_timeout", "resync_max_interval_secs", "num_port_status_threads",
    "max_ingress_connections_per_port", "max_egress_connections_per_port",
    "ingress_burst_bits", "egress_burst_bits", "ingress_minburst_bytes",
    "egress_minburst_bytes", "ingress_burst_packets", "egress_burst_packets"))
ETCD_OPTIONS = ("etcd_host", "etcd_port", "etcd_scheme", "etcd_ca_cert_file", "etcd_cert_file",
                "etcd_key_file", "etcd_username", "etcd_password", "etcd_endpoints")


@dataclass(frozen=True)
class CalicoConfig:
    datastore: DatastoreConfig | None = None  # None: Calico's environment / calicoctl.cfg
    region: str | None = None
    resync_interval: float = 60.0
    election_ttl: int = 30
    elector_name: str | None = None
    ipam: bool = True
    address_spaces: str = "off"
    etcd_compaction_period_mins: int = 60
    etcd_compaction_min_revisions: int = 1000
    project_name_cache_max: int = 100


def read_sections(paths: Iterable[str]) -> dict[str, dict[str, str]]:
    """section -> option -> raw text, over `paths` in order (later files win)."""
    out: dict[str, dict[str, str]] = {}
    for path in paths:
        parser = configparser.ConfigParser(interpolation=None, strict=False,
                                           default_section="\0none")
        try:
            with open(path) as f:
                parser.read_file(f)
        except (OSError, configparser.Error) as err:
            log.warning("cannot read %s for the [calico] section: %s", path, err)
            continue
        for section in parser.sections():
            out.setdefault(section, {}).update(parser[section])
    return out


def config_files(conf: Any) -> list[str]:
    """The files an oslo.config object was given (--config-file, then --config-dir)."""
    files = list(getattr(conf, "config_file", None) or [])
    for d in getattr(conf, "config_dir", None) or []:
        if isinstance(d, str) and os.path.isdir(d):
            files += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".conf"))
    return files


def _values(section: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for name, raw in section.items():
        if name in NO_EFFECT:
            log.info("[calico] %s = %s: a networking-calico option with no effect in this "
                     "driver; ignored", name, raw)
        elif name not in OPTIONS:
            log.warning("[calico] %s: unknown option; ignored", name)
        else:
            parse, default = OPTIONS[name]
            try:
                values[name] = parse(raw)
            except ValueError as err:
                log.error("[calico] %s = %r is invalid (%s); using the default (%s)", name,
                          raw, err, "unset" if default is None else default)
    return values


def _datastore(v: Mapping[str, Any], given: Iterable[str]) -> DatastoreConfig | None:
    kind = v.get("datastore_type")
    if kind is None and not set(ETCD_OPTIONS) & set(given):
        return None
    kind = kind or "etcdv3"
    if kind == "local":
        path = v.get("datastore_path")
        return DatastoreConfig(type="local", path=path,
                               path_source="datastore_path in [calico]" if path else None)
    endpoints = v.get("etcd_endpoints")
    if not endpoints:
        tls = v.get("etcd_ca_cert_file") or v.get("etcd_cert_file")
        scheme = v.get("etcd_scheme") or ("https" if tls else "http")
        port = v.get("etcd_port") or 2379
        hosts = v.get("etcd_host") or ["127.0.0.1"]
        endpoints = [f"{scheme}://{f'[{h}]' if ':' in h else h}:{port}" for h in hosts]
    return DatastoreConfig(type="etcdv3", etcd_endpoints=tuple(endpoints),
                           etcd_ca_cert_file=v.get("etcd_ca_cert_file"),
                           etcd_cert_file=v.get("etcd_cert_file"),
                           etcd_key_file=v.get("etcd_key_file"),
                           etcd_username=v.get("etcd_username"),
                           etcd_password=v.get("etcd_password"))


def calico_config(section: Mapping[str, str]) -> CalicoConfig:
    """The checked `[calico]` section (raw option -> text); problems are logged by name.
    Raises ConfigError only for a datastore combination that cannot work (a certificate
    without its key, a user name without a password)."""
    v = _values(section)
    try:
        datastore = _datastore(v, section)
    except ConfigError as err:
        raise ConfigError(f"[calico] datastore options: {err}") from None
    resync = v.get("resync_interval_secs") or v.get("resync_interval") or 60.0
    return CalicoConfig(
        datastore=datastore, region=v.get("openstack_region"), resync_interval=resync,
        election_ttl=v.get("election_ttl", 30), elector_name=v.get("elector_name"),
        ipam=v.get("ipam", True), address_spaces=v.get("address_spaces", "off"),
        etcd_compaction_period_mins=v.get("etcd_compaction_period_mins", 60),
        etcd_compaction_min_revisions=v.get("etcd_compaction_min_revisions", 1000),
        project_name_cache_max=v.get("project_name_cache_max", 100))


def keystone_auth(sections: Mapping[str, Mapping[str, str]]) -> KeystoneAuth | None:
    """`[keystone_authtoken]` as a Keystone account, when it has an auth_url, username and
    password; None (no project name labels) otherwise."""
    ks = sections.get("keystone_authtoken") or {}
    url, user, password = ks.get("auth_url"), ks.get("username"), ks.get("password")
    if not (url and user and password):
        return None
    return KeystoneAuth(auth_url=url.strip(), username=user.strip(), password=password,
                        project_name=(ks.get("project_name") or "").strip() or None,
                        user_domain_name=(ks.get("user_domain_name") or "Default").strip(),
                        project_domain_name=(ks.get("project_domain_name")
                                             or "Default").strip())
