"""How calicoctl reaches the datastore: its configuration (the `CalicoAPIConfig` file, else
the environment, else the embedded local store) and a lazily connected client.

Only commands that create resources (create, apply, replace, datastore migrate import) pass
`create=True`; every other command on a missing local store fails with one line naming the
path and the setting that chose it, instead of creating an empty store.

On connecting, a session checks the cluster's version against the client's
(`guards.check_version`) unless it was made with `connect=False` (`calicoctl version`) or the
command line carried `--allow-version-mismatch` (recorded by the `calicoctl` group in
`click`'s context meta as ALLOW_MISMATCH)."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from calico.datastore import kv

ALLOW_MISMATCH = "calicoctl.allow_version_mismatch"


class CtlError(Exception):
    """A calicoctl failure with a message for a person."""


def _mismatch_allowed() -> bool:
    import click

    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(ALLOW_MISMATCH))


class Session:
    """One command's datastore: its configuration, then a backend and a typed client, each made
    on first use (the version check on connecting, see above)."""

    def __init__(self, config_path: str, connect: bool = True, create: bool = False) -> None:
        self.config_path = config_path
        self._connect = connect
        self._create = create

    @classmethod
    def from_config(cls, config_path: str, connect: bool = True,
                    create: bool = False) -> Session:
        return cls(config_path, connect, create)

    @cached_property
    def datastore_config(self) -> Any:
        """calicoctl's rule: the config file when it exists, else the environment."""
        from calico.datastore import DatastoreConfig

        if self.config_path and os.path.exists(self.config_path):
            return DatastoreConfig.from_file(self.config_path)
        return DatastoreConfig.from_env()

    @cached_property
    def backend(self) -> kv.Backend:
        from calico.datastore import connect

        backend = connect(self.datastore_config, create=self._create)
        if self._connect and not _mismatch_allowed():
            from calico.datastore.client import ResourceClient

            from .guards import check_version
            check_version(ResourceClient(backend))
        return backend

    @cached_property
    def client(self) -> Any:
        from calico.datastore.client import ResourceClient

        return ResourceClient(self.backend)
