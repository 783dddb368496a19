"""Which datastore to use, from Calico's environment variables or a CalicoAPIConfig file,
and `connect(config) -> Backend`.

Calico's names are kept: DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE,
ETCD_KEY_FILE, ETCD_USERNAME, ETCD_PASSWORD in the environment, and in calicoctl.cfg

    apiVersion: projectcalico.org/v3
    kind: CalicoAPIConfig
    spec: {datastoreType: etcdv3, etcdEndpoints: "https://a:2379,https://b:2379",
           etcdCACertFile: ..., etcdCertFile: ..., etcdKeyFile: ..., etcdUsername: ...}

Calico's default datastore is Kubernetes; ours is `local` (the embedded SQLite store, at
CALICO_DATASTORE_PATH or /var/lib/calico/calico.db; `datastorePath` in the file).
As in calicoctl, a config file, when present, wins over the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from .kv import Backend, DatastoreError

DEFAULT_CONFIG_FILE = "/etc/calico/calicoctl.cfg"
TYPES = ("local", "etcdv3")


class ConfigError(DatastoreError):
    """The datastore configuration is invalid (the message names the setting)."""


@dataclass(frozen=True)
class DatastoreConfig:
    """Which datastore to open and how (the SQLite path, or etcd endpoints with TLS and auth);
    immutable, and checked when built, so a bad combination is a ConfigError before any connect."""

    type: str = "local"
    path: str | None = None  # local: the SQLite file (None: $CALICO_DATASTORE_PATH or default)
    path_source: str | None = field(default=None, compare=False)  # who chose `path`
    etcd_endpoints: tuple[str, ...] = field(default=("http://127.0.0.1:2379",))
    etcd_ca_cert_file: str | None = None
    etcd_cert_file: str | None = None
    etcd_key_file: str | None = None
    etcd_username: str | None = None
    etcd_password: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ConfigError(f"datastore type {self.type!r} is not supported "
                              f"(expected one of {', '.join(TYPES)})")
        if self.type == "etcdv3":
            if not self.etcd_endpoints:
                raise ConfigError("etcdEndpoints (ETCD_ENDPOINTS) is required for etcdv3")
            for ep in self.etcd_endpoints:
                if not ep.startswith(("http://", "https://")):
                    raise ConfigError(f"etcd endpoint {ep!r} must start with http:// or "
                                      "https://")
            if bool(self.etcd_cert_file) != bool(self.etcd_key_file):
                raise ConfigError("etcdCertFile and etcdKeyFile must be given together")
            if bool(self.etcd_username) != bool(self.etcd_password):
                raise ConfigError("etcdUsername and etcdPassword must be given together")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DatastoreConfig:
        env = dict(os.environ if env is None else env)
        kind = (env.get("DATASTORE_TYPE") or "local").strip()
        return cls(
            type=kind,
            path=env.get("CALICO_DATASTORE_PATH") or None,
            path_source="CALICO_DATASTORE_PATH" if env.get("CALICO_DATASTORE_PATH") else None,
            etcd_endpoints=_endpoints(env.get("ETCD_ENDPOINTS") or "http://127.0.0.1:2379"),
            etcd_ca_cert_file=env.get("ETCD_CA_CERT_FILE") or None,
            etcd_cert_file=env.get("ETCD_CERT_FILE") or None,
            etcd_key_file=env.get("ETCD_KEY_FILE") or None,
            etcd_username=env.get("ETCD_USERNAME") or None,
            etcd_password=env.get("ETCD_PASSWORD") or None,
        )

    @classmethod
    def from_document(cls, doc: Any) -> DatastoreConfig:
        """From a parsed CalicoAPIConfig document."""
        if not isinstance(doc, dict) or doc.get("kind") != "CalicoAPIConfig":
            raise ConfigError("the datastore configuration must be a CalicoAPIConfig document")
        if doc.get("apiVersion") not in ("projectcalico.org/v3", "v1"):
            raise ConfigError(f"CalicoAPIConfig apiVersion {doc.get('apiVersion')!r} is not "
                              "supported (expected projectcalico.org/v3)")
        spec = doc.get("spec") or {}
        if not isinstance(spec, dict):
            raise ConfigError("CalicoAPIConfig spec must be a mapping")
        known = {"datastoreType", "datastorePath", "etcdEndpoints", "etcdCACertFile",
                 "etcdCertFile", "etcdKeyFile", "etcdUsername", "etcdPassword"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConfigError(f"CalicoAPIConfig spec.{unknown[0]} is not supported")
        return cls(
            type=spec.get("datastoreType") or "local",
            path=spec.get("datastorePath") or None,
            path_source="datastorePath" if spec.get("datastorePath") else None,
            etcd_endpoints=_endpoints(spec.get("etcdEndpoints") or "http://127.0.0.1:2379"),
            etcd_ca_cert_file=spec.get("etcdCACertFile") or None,
            etcd_cert_file=spec.get("etcdCertFile") or None,
            etcd_key_file=spec.get("etcdKeyFile") or None,
            etcd_username=spec.get("etcdUsername") or None,
            etcd_password=spec.get("etcdPassword") or None,
        )

    @classmethod
    def from_file(cls, path: str) -> DatastoreConfig:
        import yaml

        try:
            with open(path) as f:
                doc = yaml.safe_load(f)
        except OSError as err:
            raise ConfigError(f"cannot read {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
        try:
            config = cls.from_document(doc)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        if config.path_source:
            config = replace(config, path_source=f"datastorePath in {path}")
        return config

    @classmethod
    def load(cls, path: str | None = None) -> DatastoreConfig:
        """calicoctl's rule: the config file if given or present, else the environment."""
        if path is not None or os.path.exists(DEFAULT_CONFIG_FILE):
            return cls.from_file(path or DEFAULT_CONFIG_FILE)
        return cls.from_env()


def _endpoints(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        items = str(value).split(",")
    return tuple(e.strip().rstrip("/") for e in items if e.strip())


def connect(config: DatastoreConfig | None = None, *, create: bool = True) -> Backend:
    """Open the configured backend (default: `DatastoreConfig.load()`). Readers pass
    `create=False`: a missing local store is then an error naming its path and the setting
    that chose it (`localfile.StoreMissing`), not a new empty store."""
    config = config or DatastoreConfig.load()
    if config.type == "etcdv3":
        from .etcd import EtcdBackend

        return EtcdBackend(list(config.etcd_endpoints), ca_cert_file=config.etcd_ca_cert_file,
                           cert_file=config.etcd_cert_file, key_file=config.etcd_key_file,
                           username=config.etcd_username, password=config.etcd_password)
    from .local import LocalBackend

    return LocalBackend(config.path, create=create, path_source=config.path_source)
