"""How calicoctl reaches the datastore: its configuration (the `CalicoAPIConfig` file, else
the environment, else the embedded local store) and a lazily connected client.

Only commands that create resources (create, apply, replace, datastore migrate import) pass
`create=True`; every other command on a missing local store fails with one line naming the
path and the setting that chose it, instead of creating an empty store."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from calico.datastore import kv


class CtlError(Exception):
    """A calicoctl failure with a message for a person."""


class Session:
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

        return connect(self.datastore_config, create=self._create)

    @cached_property
    def client(self) -> Any:
        from calico.datastore.client import ResourceClient

        return ResourceClient(self.backend)
