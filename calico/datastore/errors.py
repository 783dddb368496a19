"""Errors of the typed resource client, named in the user's terms (kind, namespace/name).

Each subclasses the matching KV error, so code that handles `KeyExists`, `KeyNotFound` or
`RevisionConflict` from a backend handles these too:

    IPPool "pool1" already exists
    GlobalNetworkPolicy "x" does not exist
    update conflict: resource NetworkPolicy "ns/x" was modified: resourceVersion 12 is stale (current 15)

(`update conflict` is libcalico-go's phrase for the same error; scripts look for it.)
"""

from __future__ import annotations

from .kv import DatastoreError, KeyExists, KeyNotFound, RevisionConflict


def describe(kind: str, name: str, namespace: str | None = None) -> str:
    """`IPPool "pool1"`, `NetworkPolicy "ns/x"`."""
    return f'{kind} "{namespace}/{name}"' if namespace else f'{kind} "{name}"'


class ResourceError(DatastoreError):
    kind: str
    name: str
    namespace: str | None

    def _set(self, kind: str, name: str, namespace: str | None, key: str) -> None:
        self.kind, self.name, self.namespace, self.key = kind, name, namespace, key


class ResourceAlreadyExists(ResourceError, KeyExists):
    def __init__(self, kind: str, name: str, namespace: str | None, key: str) -> None:
        DatastoreError.__init__(self, f"{describe(kind, name, namespace)} already exists")
        self._set(kind, name, namespace, key)


class ResourceNotFound(ResourceError, KeyNotFound):
    def __init__(self, kind: str, name: str, namespace: str | None, key: str) -> None:
        DatastoreError.__init__(self, f"{describe(kind, name, namespace)} does not exist")
        self._set(kind, name, namespace, key)


class ResourceConflict(ResourceError, RevisionConflict):
    """An update or delete carried a resourceVersion that is no longer current."""

    def __init__(self, kind: str, name: str, namespace: str | None, key: str,
                 expected: int, actual: int | None) -> None:
        DatastoreError.__init__(
            self, f"update conflict: resource {describe(kind, name, namespace)} was modified: "
                  f"resourceVersion {expected} is stale (current {actual})")
        self._set(kind, name, namespace, key)
        self.expected, self.actual = expected, actual


class CorruptResource(DatastoreError):
    """A stored value is not a valid resource (written by something else, or an old version)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: the stored value is not a valid resource: {reason}")
        self.key = key


class OperationNotSupported(DatastoreError):
    """An operation Calico refuses on this resource (libcalico-go's ErrorOperationNotSupported,
    with its message: "operation delete is not supported on default: Cannot delete default
    tier")."""

    def __init__(self, operation: str, identifier: str, reason: str = "") -> None:
        text = f"operation {operation} is not supported on {identifier}"
        super().__init__(f"{text}: {reason}" if reason else text)
        self.operation, self.identifier, self.reason = operation, identifier, reason
