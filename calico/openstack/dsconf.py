"""The datastore named by the ML2 `[calico]` section (ml2_conf.ini), without importing
Neutron: `section_datastore(values)` takes the section's option values by name.

    [calico]
    datastore_type = local | etcdv3      # ours; unset: see below
    datastore_path = /var/lib/calico/calico.db
    etcd_endpoints = https://10.0.0.1:2379,https://10.0.0.2:2379   # ours (a list)
    etcd_host = 10.0.0.1                 # networking-calico's single-endpoint form, with
    etcd_port = 2379                     #   etcd_port and etcd_scheme
    etcd_scheme = https
    etcd_ca_cert_file / etcd_cert_file / etcd_key_file / etcd_username / etcd_password

One rule: `datastore_type` when set; else etcd when any etcd_* option names a server (as in
networking-calico, whose driver knows only etcd); else what calicoctl would use
(/etc/calico/calicoctl.cfg, else the environment). `etcd_endpoints` wins over
`etcd_host`/`etcd_port`/`etcd_scheme`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from calico.datastore.config import DatastoreConfig

TLS_AND_AUTH = (("etcd_ca_cert_file", "etcd_ca_cert_file"), ("etcd_cert_file", "etcd_cert_file"),
                ("etcd_key_file", "etcd_key_file"), ("etcd_username", "etcd_username"),
                ("etcd_password", "etcd_password"))


def section_datastore(values: Mapping[str, Any]) -> DatastoreConfig:
    kind = values.get("datastore_type")
    endpoints = tuple(e.strip().rstrip("/") for e in values.get("etcd_endpoints") or ()
                      if e.strip())
    if not endpoints and values.get("etcd_host"):
        scheme = values.get("etcd_scheme") or "http"
        endpoints = (f"{scheme}://{values['etcd_host']}:{values.get('etcd_port') or 2379}",)
    if not kind:
        if not endpoints:
            return DatastoreConfig.load()
        kind = "etcdv3"
    kwargs: dict[str, Any] = {"type": kind, "path": values.get("datastore_path") or None,
                              "path_source": "datastore_path in [calico]"
                              if values.get("datastore_path") else None}
    if endpoints:
        kwargs["etcd_endpoints"] = endpoints
    for option, attr in TLS_AND_AUTH:
        if values.get(option):
            kwargs[attr] = values[option]
    return DatastoreConfig(**kwargs)
