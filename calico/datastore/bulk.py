"""Writing many resources at once (calicoctl apply/create/replace -f of a large manifest):
each resource keeps its own outcome, the store sees a few transactions instead of one per
resource.

    results = write_all(client, "apply", resources)   # a Resource or an exception, each

Per resource, the outcome is what `ResourceClient.create/update/apply` would give: the
same checks (`before_write`, a stale resourceVersion, an existing or missing resource), the
same "a write that changes nothing writes nothing", the same stored value. How:

1. read what is stored at every key: one list per kind when the batch holds many of that kind,
   else one get per resource;
2. plan each resource (create or update, its value, the revision it must still be at); a
   resource refused by a check gets its error and takes no part in step 3;
3. write the planned values CHUNK at a time, one transaction each, guarded by a compare on
   every key's revision (0: still absent). All writes of a chunk share its revision, as in
   an etcd transaction.

A chunk whose compare fails (another writer got in between the read and the write) is not
an error: its resources go through the single-resource methods, which read again and retry
as they always do. A resource whose key comes twice in one batch is written after the rest,
on its own. Kinds whose checks read other resources (IPPool overlap) or that live
outside /calico/resources (IPAM's kinds) always take the single-resource path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from calico.api import Resource

from . import ipamkinds
from .client import ResourceClient, kind_prefix, storage_key, with_version
from .errors import ResourceAlreadyExists, ResourceNotFound
from .kv import KV, Compare, DatastoreError, Put, Unreachable

CHUNK = 100  # writes per transaction: within etcd's default --max-txn-ops (128)
LIST_FROM = 50  # read a kind with one list when the batch holds at least this many of it
SINGLE_KINDS = {"IPPool", "AddressSpace"}  # their checks read other resources


@dataclass
class _Planned:
    index: int
    res: Resource  # with its identity (uid, creationTimestamp)
    key: str
    value: str
    mod_revision: int  # 0: the key must still be absent


def write_all(client: ResourceClient, action: str, resources: list[Resource]
              ) -> list[Resource | Exception]:
    """`action` ("create", "update" or "apply") for each resource; its result or error."""
    results: list[Resource | Exception | None] = [None] * len(resources)
    batch: list[int] = []
    for i, res in enumerate(resources):
        if res.KIND in SINGLE_KINDS or ipamkinds.owns_kind(res.KIND):
            results[i] = _single(client, action, res)
        else:
            batch.append(i)
    current = _read(client, [resources[i] for i in batch])
    planned: list[_Planned] = []
    deferred: list[int] = []  # a key written twice in one manifest: in order, after the rest
    keys: set[str] = set()
    for i in batch:
        key = storage_key(resources[i])
        if key in keys:
            deferred.append(i)
            continue
        keys.add(key)
        try:
            outcome = _plan(client, action, resources[i], current)
        except Unreachable:
            raise
        except (DatastoreError, ValueError) as err:
            results[i] = err
            continue
        if isinstance(outcome, Resource):
            results[i] = outcome
        else:
            outcome.index = i
            planned.append(outcome)
    for start in range(0, len(planned), CHUNK):
        chunk = planned[start:start + CHUNK]
        revision = client.backend.txn([Compare(p.key, p.mod_revision) for p in chunk],
                                      [Put(p.key, p.value) for p in chunk])
        for p in chunk:
            results[p.index] = (with_version(p.res, str(revision)) if revision is not None
                                else _single(client, action, resources[p.index]))
    for i in deferred:
        results[i] = _single(client, action, resources[i])
    return [r for r in results if r is not None]


def _single(client: ResourceClient, action: str, res: Resource) -> Resource | Exception:
    try:
        return getattr(client, action)(res)
    except Unreachable:
        raise
    except (DatastoreError, ValueError) as err:
        return err


def _read(client: ResourceClient, resources: list[Resource]) -> dict[str, KV | None]:
    """What is stored at each resource's key (None: nothing)."""
    out: dict[str, KV | None] = {}
    counts = Counter(r.KIND for r in resources)
    for kind, count in counts.items():
        if count >= LIST_FROM:
            items, _ = client.backend.list(kind_prefix(kind))
            out.update((kv.key, kv) for kv in items)
    for res in resources:
        key = storage_key(res)
        if counts[res.KIND] < LIST_FROM:
            out[key] = client.backend.get(key)
        else:
            out.setdefault(key, None)
    return out


def _plan(client: ResourceClient, action: str, res: Resource,
          current: dict[str, KV | None]) -> _Planned | Resource:
    """The write `action` needs for `res`, or its result when it needs none; raises the
    error the single-resource method would raise."""
    builtin = client.before_write(action, res)
    if builtin is not None:
        return builtin
    key = storage_key(res)
    stored = current.get(key)
    if action == "apply" and res.metadata.resourceVersion:
        action = "update"
    if stored is None:
        if action == "update":
            raise ResourceNotFound(res.KIND, res.name, res.namespace, key)
        res, key, value = client.prepare_create(res)
        return _Planned(-1, res, key, value, 0)
    if action == "create":
        raise ResourceAlreadyExists(res.KIND, res.name, res.namespace, key)
    res, value, expected = client.prepare_update(res, key, stored)
    if value is None:
        return with_version(res, str(stored.mod_revision))
    return _Planned(-1, res, key, value, expected)


__all__ = ["write_all"]
