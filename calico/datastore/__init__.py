"""The datastore: a KV backend contract (local SQLite, etcd v3), the typed client and the syncer.

`connect(DatastoreConfig.from_env())` opens a backend (`kv.Backend`); `client.ResourceClient`
reads and writes v3 resources through it; `syncer.Syncer` feeds a consumer a consistent
snapshot and then every change.
"""

from .config import ConfigError, DatastoreConfig, connect

__all__ = ["ConfigError", "DatastoreConfig", "connect"]
