"""Felix's effective configuration: the parameter table read from four sources, typed.

The parameters themselves (names, types, defaults, ranges) live in one table,
`calico.api.felixparams.PARAMS`; this module only decides *which source wins* and turns the
winner into a typed, read-only `FelixConfig`. Precedence, highest first (as Calico's Felix):

    1. environment      FELIX_<NAME>, the name matched case-insensitively (FELIX_HEALTHPORT)
    2. config file      INI, section [global], keys are Felix names (HealthPort = 9099)
    3. FelixConfiguration "node.<hostname>"   per-host resource in the datastore
    4. FelixConfiguration "default"           cluster-wide resource in the datastore
    5. the table's defaults

The calculation graph already overlays 3 on 4 and hands the result to us as
`messages.ConfigUpdate` (FelixConfiguration field names, values as text: "true", "1m30s",
"a,b", JSON for objects); `ConfigLoader.load(datastore)` puts env and file on top of it.
A value that does not parse is logged with its parameter, value and source and ignored:
the next source down is used instead, so one bad setting never stops Felix.

Live changes versus restart: as Calico's Felix does, a change to datastore-sourced config
makes Felix exit with `RESTART_EXIT_CODE` (129, Felix's "config changed" code) so that its
supervisor starts it again with the new configuration — the restart is cheap and safe because
Felix is stateless and never flushes the dataplane on start. Only the parameters in
`LIVE_PARAMS` (log levels, reporting and refresh intervals) are applied without a restart.

    cfg = ConfigLoader("node-1", env=os.environ, config_file="/etc/calico/felix.cfg").load()
    cfg.healthPort, cfg.HealthPort        # 9099: by field or Felix name, any case
    cfg.routeRefreshInterval              # 90.0: durations are float seconds
    cfg.source("healthPort")              # "default", "env", "file" or "datastore"

Which datastore Felix reads is part of the same rule (`datastore_config`), as in Calico's
Felix: first the variables every Calico component reads (DATASTORE_TYPE, ETCD_ENDPOINTS,
CALICO_DATASTORE_PATH, ...), then any of Felix's own DatastoreType, EtcdEndpoints (or
EtcdScheme + EtcdAddr), EtcdCaFile, EtcdCertFile, EtcdKeyFile set in FELIX_<NAME> or the
config file override them. A felix.cfg that says `DatastoreType = etcdv3` therefore runs Felix
on etcd even when DATASTORE_TYPE is unset.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from calico.api.base import FieldError
from calico.api.felixparams import BY_FIELD, BY_NAME, PARAMS, Param, param_for_env
from calico.api.felixtypes import CommaList, Duration, ProtoPort
from calico.api.nets import parse_go_duration
from calico.datastore.config import DatastoreConfig

log = logging.getLogger(__name__)

RESTART_EXIT_CODE = 129  # Felix's exit code for "configuration changed: restart me"
DEFAULT_CONFIG_FILE = "/etc/calico/felix.cfg"

LIVE_PARAMS: frozenset[str] = frozenset(p.lower() for p in (
    "LogSeverityScreen", "LogSeverityFile", "LogSeveritySys",
    "ReportingIntervalSecs", "ReportingTTLSecs", "EndpointReportingDelaySecs",
    "RouteRefreshInterval", "IptablesRefreshInterval", "NftablesRefreshInterval",
    "InterfaceRefreshInterval", "IpsetsRefreshInterval", "UsageReportingEnabled",
    "UsageReportingInitialDelaySecs", "UsageReportingIntervalSecs",
))
"""Parameters (Felix names, lower-cased) applied without a restart."""


def lookup(name: str) -> Param:
    """The parameter called `name`: Felix name or FelixConfiguration field, any case."""
    param = BY_NAME.get(name.lower()) or BY_FIELD.get(name) or _BY_FIELD_LOWER.get(name.lower())
    if param is None:
        raise AttributeError(f"{name!r} is not a Felix configuration parameter")
    return param


_BY_FIELD_LOWER = {f.lower(): p for f, p in BY_FIELD.items()}


class FelixConfig:
    """One immutable snapshot of every parameter's effective value and where it came from."""

    def __init__(self, values: Mapping[Param, Any], sources: Mapping[Param, str]) -> None:
        self._values = dict(values)
        self._sources = dict(sources)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)

    def get(self, name: str) -> Any:
        """The typed value: durations as float seconds, None when unset without a default."""
        param = lookup(name)
        value = self._values.get(param)
        if value is not None and isinstance(param.type, Duration):
            return parse_go_duration(value) / 1e9
        return value

    def raw(self, name: str) -> Any:
        """The value in the resource's JSON form (durations as Go strings)."""
        return self._values.get(lookup(name))

    def source(self, name: str) -> str:
        return self._sources.get(lookup(name), "default")

    @property
    def region(self) -> str:
        """The status-report region string, Calico's: "no-region" or
        "region-<OpenstackRegion>" (the Neutron driver's `openstack_region` reads it back)."""
        region = self.get("OpenstackRegion")
        return f"region-{region}" if region else "no-region"

    def changed(self, other: FelixConfig) -> list[Param]:
        """Parameters whose value differs between `self` and `other`, in table order."""
        return [p for p in PARAMS if self._values.get(p) != other._values.get(p)]

    def as_text(self) -> dict[str, str]:
        """Every set parameter by Felix name, as text (for the dataplane's ConfigUpdate)."""
        return {p.name: _to_text(p, v) for p, v in self._values.items() if v is not None}

    def explicit(self) -> dict[str, tuple[Any, str]]:
        """Parameters set by a source other than the defaults: name -> (value, source)."""
        return {p.name: (self._values[p], s) for p, s in self._sources.items() if s != "default"}


_LOCAL_SOURCES = ("env", "file")


def datastore_config(config: FelixConfig, env: Mapping[str, str] | None = None
                     ) -> DatastoreConfig:
    """The datastore Felix connects to: Calico's common variables in `env`, overridden by
    Felix's own datastore parameters where the environment or the config file set them."""
    base = DatastoreConfig.from_env(dict(os.environ if env is None else env))
    changes: dict[str, Any] = {}

    def local(name: str) -> Any:
        return config.raw(name) if config.source(name) in _LOCAL_SOURCES else None

    if local("DatastoreType"):
        changes["type"] = local("DatastoreType")
    if local("EtcdEndpoints"):
        changes["etcd_endpoints"] = tuple(e.rstrip("/") for e in local("EtcdEndpoints"))
    elif local("EtcdAddr") or local("EtcdScheme"):
        changes["etcd_endpoints"] = (f"{config.raw('EtcdScheme')}://{config.raw('EtcdAddr')}",)
    for name, attr in (("EtcdCaFile", "etcd_ca_cert_file"), ("EtcdCertFile", "etcd_cert_file"),
                       ("EtcdKeyFile", "etcd_key_file")):
        if local(name):
            changes[attr] = local(name)
    return replace(base, **changes) if changes else base


def _to_text(param: Param, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(param.type, CommaList) and isinstance(param.type.item, ProtoPort):
        items = [f"{v.get('protocol', 'tcp').lower()}:{v['net']}:{v['port']}" if v.get("net")
                 else f"{v.get('protocol', 'tcp').lower()}:{v['port']}" for v in value]
        return ",".join(items) or "none"
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


class ConfigLoader:
    """Reads the local sources once (environment, config file) and merges them over
    datastore config (a ConfigUpdate's mapping) on every `load()`."""

    def __init__(self, hostname: str = "", env: Mapping[str, str] | None = None,
                 config_file: str | None = None) -> None:
        self.hostname = hostname
        self._env = _read_layer("env", _env_items(os.environ if env is None else env))
        path = config_file
        if path is None and os.path.exists(DEFAULT_CONFIG_FILE):
            path = DEFAULT_CONFIG_FILE
        self.config_file = path
        self._file = _read_layer("file", _file_items(path)) if path else {}

    def load(self, datastore: Mapping[str, Any] | None = None) -> FelixConfig:
        layers = [("datastore", _read_layer("datastore", _datastore_items(datastore or {}))),
                  ("file", self._file), ("env", self._env)]
        values = {p: p.default for p in PARAMS}
        sources = dict.fromkeys(PARAMS, "default")
        for source, layer in layers:  # lowest first: each overwrites the one below
            for param, value in layer.items():
                values[param], sources[param] = value, source
        return FelixConfig(values, sources)


def _env_items(env: Mapping[str, str]) -> list[tuple[Param | None, str, str]]:
    out = []
    for var, text in env.items():
        if var.upper().startswith("FELIX_"):
            out.append((param_for_env(var), var, text))
    return out


def _file_items(path: str) -> list[tuple[Param | None, str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep the names' case for messages; matching ignores it
    try:
        with open(path) as f:
            parser.read_file(f)
    except OSError as err:
        log.warning("Config file %s cannot be read (%s); ignoring it", path, err.strerror)
        return []
    except configparser.Error as err:
        log.warning("Config file %s is not valid INI (%s); ignoring it", path,
                    str(err).splitlines()[0])
        return []
    for section in parser.sections():
        if section.lower() != "global":
            log.warning("Config file %s: section [%s] ignored (Felix reads [global])", path,
                        section)
    if not parser.has_section("global"):
        return []
    return [(BY_NAME.get(key.lower()), key, text) for key, text in parser.items("global")]


def _datastore_items(config: Mapping[str, Any]) -> list[tuple[Param | None, str, Any]]:
    out = []
    for key, value in config.items():
        param = BY_FIELD.get(key) or _BY_FIELD_LOWER.get(key.lower()) or BY_NAME.get(key.lower())
        out.append((param, key, value))
    return out


def _read_layer(source: str, items: list[tuple[Param | None, str, Any]]) -> dict[Param, Any]:
    """Parse one source's values; unknown names and invalid values are logged and skipped."""
    layer: dict[Param, Any] = {}
    for param, key, value in items:
        if param is None:
            log.warning("Config %s: %s=%r is not a Felix parameter; ignored", source, key, value)
            continue
        if source == "datastore" and param.field is None:
            log.warning("Config datastore: %s may only be set locally; ignored", param.name)
            continue
        try:
            layer[param] = _parse(param, value)
        except (ValueError, FieldError) as err:
            log.warning("Config %s: invalid value for %s: %r %s; ignored", source, param.name,
                        value, _reason(err))
    return layer


def _parse(param: Param, value: Any) -> Any:
    if not isinstance(value, str):
        return param.type.check(value)
    text = value.strip()
    if text[:1] in ("[", "{"):
        try:
            decoded = json.loads(text)
        except ValueError:
            pass
        else:
            return param.type.check(decoded)
    return param.type.parse(value)


def _reason(err: Exception) -> str:
    if isinstance(err, FieldError):
        where = ".".join(str(f) for f in err.field)
        return f"({where}: {err.reason})" if where else err.reason
    return str(err)
