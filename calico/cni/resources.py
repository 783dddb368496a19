"""Where a plugin request gets its datastore connection and its IPAM from.

- `ONE_SHOT` (a plugin process): a fresh connection per request, closed when it ends; a fresh
  IPAM; the process's logging is the plugin's to configure (`log_level`, `log_file_path`).
- `WarmResources` (calico-node's CNI server, many requests, many threads): one connection per
  datastore configuration, kept open; one IPAM per (connection, node), kept with its block,
  handle and affinity caches and lent to one request at a time (an IPAM instance is not
  thread-safe). A cache another writer made stale costs one failed compare-and-swap and a
  re-read, never a wrong answer (calico.ipam). Logging stays calico-node's.

Both backends are thread-safe (calico.datastore), so concurrent requests share a connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from calico.datastore import DatastoreConfig
from calico.datastore.kv import Backend

from .spec import open_backend


def _new_ipam(backend: Backend, node: str, space: str | None = None) -> Any:
    from calico.ipam import IPAM

    return IPAM(backend, node, address_space=space)


class Resources(Protocol):
    """What a request needs: a datastore connection (`backend`, handed back with `done`) and
    an IPAM lent for the request's duration (`ipam`, a context manager)."""

    own_process: bool  # True: the request owns the process (logging, stdio)

    def backend(self, config: DatastoreConfig) -> Backend: ...
    def done(self, backend: Backend) -> None: ...
    def ipam(self, backend: Backend, node: str, space: str | None = None
             ) -> contextlib.AbstractContextManager: ...


class OneShot:
    """A plugin process's resources: a fresh connection per request, closed by `done`, and a
    fresh IPAM; the process is the request's own (see the module docstring)."""

    own_process = True

    def backend(self, config: DatastoreConfig) -> Backend:
        return open_backend(config)

    def done(self, backend: Backend) -> None:
        backend.close()

    @contextlib.contextmanager
    def ipam(self, backend: Backend, node: str, space: str | None = None) -> Iterator[Any]:
        yield _new_ipam(backend, node, space)


ONE_SHOT = OneShot()


class WarmResources:
    """Connections and IPAM instances kept across requests (see the module docstring)."""

    own_process = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._backends: dict[DatastoreConfig, Backend] = {}
        self._ipams: dict[tuple[int, str], tuple[threading.Lock, Any]] = {}

    def backend(self, config: DatastoreConfig) -> Backend:
        if config.type == "local" and config.path is None:
            # The plugin's process would open the default file; this process's own
            # $CALICO_DATASTORE_PATH must not decide for it.
            from calico.datastore.local import DEFAULT_PATH

            config = dataclasses.replace(config, path=DEFAULT_PATH)
        with self._lock:
            backend = self._backends.get(config)
        if backend is not None:
            return backend
        fresh = open_backend(config)  # outside the lock: an etcd connect can take a while
        with self._lock:
            backend = self._backends.setdefault(config, fresh)
        if backend is not fresh:
            fresh.close()
        return backend

    def done(self, backend: Backend) -> None:
        pass  # kept for the next request

    @contextlib.contextmanager
    def ipam(self, backend: Backend, node: str, space: str | None = None) -> Iterator[Any]:
        key = (id(backend), node, space)
        with self._lock:
            entry = self._ipams.get(key)
            if entry is None:
                entry = self._ipams[key] = (threading.Lock(), _new_ipam(backend, node, space))
        with entry[0]:
            yield entry[1]

    def close(self) -> None:
        with self._lock:
            backends, self._backends, self._ipams = list(self._backends.values()), {}, {}
        for backend in backends:
            backend.close()
