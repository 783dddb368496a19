"""The datastore: a KV backend contract (local SQLite, etcd v3), the typed client and the syncer."""
