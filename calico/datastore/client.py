"""The typed resource client: projectcalico.org/v3 resources over any `kv.Backend`.

Every kind in `calico.api.KINDS` is stored as its JSON at
`/calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>`, as libcalico-go's
etcdv3 backend stores it, so a store written by Calico's tools reads back here and vice versa
(the key layout and the stored form: storage.py).

Metadata, as Calico keeps it:
- `uid` (a uuid4) and `creationTimestamp` (RFC 3339, UTC) are set on create and kept on every
  update, whatever the caller sent;
- `resourceVersion` is the key's mod revision as a string. It is never stored in the value;
  reads fill it in. Create refuses one (as libcalico-go does). Update with a resourceVersion
  is compare-and-swap on it; without one it replaces whatever is current (calicoctl replace
  does the same by reading it first). `apply` = create, or update of the current version,
  retried when it races with another writer (after a random, growing pause, so that writers
  racing for one key take turns instead of colliding again in lockstep).

Every write is validated with `calico.api.validate` (which fills Calico's defaults); a new
IPPool is also checked against the other pools with `calico.api.ippool.check_pool_overlap`
(that check reads then writes, so two pools created at the same instant can still overlap — as
in Calico), and an update of one against its stored version (`check_pool_update`: CIDR and
blockSize cannot change). AddressSpaces (our extension) and the pools and endpoints naming
them are checked, created and deleted by `spaces.py`. Errors are `calico.datastore.errors`
(subclasses of the KV errors) and `calico.api.ValidationError`.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from calico.api import Resource, ValidationError, ippool, validate
from calico.api.endpoints import check_workload_endpoint_name

from . import builtins, ipamkinds, spaces
from .errors import (
    CorruptResource,
    OperationNotSupported,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceNotFound,
)
from .kv import KV, Backend, EventType, KeyExists, KeyNotFound, RevisionConflict, Watcher
from .storage import RESOURCE_PREFIX as RESOURCE_PREFIX  # re-exported: callers' import
from .storage import decode, encode, kind_class, kind_prefix, parse_key, storage_key, with_version

log = logging.getLogger(__name__)

APPLY_ATTEMPTS = 10


def _pause_before_retry(attempt: int) -> None:
    """A random pause, its bound doubling with `attempt` from 2 ms up to 200 ms (about 0.6 s
    over all attempts at most): writers racing for one key spread out and take turns."""
    time.sleep(random.uniform(0, min(0.001 * 2 ** attempt, 0.2)))


def _same_json(value: str, stored: str) -> bool:
    """Whether two encodings hold the same JSON (False when the stored one is not JSON)."""
    try:
        return json.loads(value) == json.loads(stored)
    except ValueError:
        return False


def _stored_identity(value: str) -> tuple[str | None, str | None]:
    """(uid, creationTimestamp) of a stored value, without decoding it into a model; Nones
    when it is not a resource's JSON (it is then replaced, with a new identity)."""
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):
        log.warning("replacing a stored value that is not JSON: %.80s", value)
        return None, None
    meta = doc.get("metadata") if isinstance(doc, dict) else None  # IPAM kinds have none
    if not isinstance(meta, dict):
        return None, None
    uid, created = meta.get("uid"), meta.get("creationTimestamp")
    return (uid if isinstance(uid, str) else None,
            created if isinstance(created, str) else None)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ResourceList:
    items: list[Resource]
    revision: int  # watch(kind, revision=this) continues after this list


@dataclass(frozen=True)
class ResourceEvent:
    type: str  # "ADDED", "MODIFIED" or "DELETED"
    kind: str
    namespace: str | None
    name: str
    resource: Resource | None  # None for DELETED
    revision: int


class ResourceWatch:
    """Changes to one kind; `events(timeout)` as `kv.Watcher.events`, or iterate."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def events(self, timeout: float | None = None) -> list[ResourceEvent]:
        out = []
        for e in self._watcher.events(timeout):
            parsed = parse_key(e.key)
            if parsed is None:
                continue
            kind, namespace, name = parsed
            resource = None
            if e.type is EventType.PUT:
                try:
                    resource = decode(e.key, e.value or "", e.revision)
                except CorruptResource as err:
                    log.warning("treating an invalid value as deleted: %s", err)
            if resource is None:
                out.append(ResourceEvent("DELETED", kind, namespace, name, None, e.revision))
            else:
                added = e.create_revision == e.revision
                out.append(ResourceEvent("ADDED" if added else "MODIFIED", kind, namespace,
                                         name, resource, e.revision))
        return out

    def __iter__(self) -> Iterator[ResourceEvent]:
        while True:
            yield from self.events()

    def close(self) -> None:
        self._watcher.close()

    def __enter__(self) -> ResourceWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResourceClient:
    """Typed reads, writes and watches of v3 resources over one backend: every write validated,
    metadata kept as Calico keeps it, an update with a resourceVersion compare-and-swap. It holds
    no state besides the backend, so it is as thread-safe as the backend."""

    def __init__(self, backend: Backend, *, now: Callable[[], str] = _now,
                 new_uid: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.backend = backend
        self._now = now
        self._new_uid = new_uid
        self._initialized = False  # ClusterInformation seen (or created) by this client

    # ---- reads ---------------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str | None = None) -> Resource:
        key, namespace = self._key(kind, name, namespace)
        kv = self.backend.get(key)
        if kv is None and builtins.is_builtin(key):
            kv = builtins.DEFAULT_ALLOW_KV
        if kv is None:
            raise ResourceNotFound(kind, name, namespace, key)
        return decode(key, kv.value, kv.mod_revision)

    def list(self, kind: str, namespace: str | None = None) -> ResourceList:
        """Every resource of `kind` (in `namespace`; all namespaces when None), sorted by key.
        Invalid stored values are logged and left out."""
        prefix = kind_prefix(kind, namespace)
        items, revision = self.backend.list(prefix)
        return ResourceList(self._decode_all(builtins.with_builtins(prefix, items)), revision)

    def _decode_all(self, items: list[KV]) -> list[Resource]:
        out = []
        for kv in items:
            try:
                out.append(decode(kv.key, kv.value, kv.mod_revision))
            except CorruptResource as err:
                log.warning("skipping %s", err)
        return out

    def watch(self, kind: str, namespace: str | None = None,
              revision: int | None = None) -> ResourceWatch:
        """Changes after `revision` (a ResourceList's revision; None: from now)."""
        prefix = kind_prefix(kind, namespace)
        start = (self.backend.revision() if revision is None else revision) + 1
        return ResourceWatch(self.backend.watch(prefix, start))

    # ---- writes --------------------------------------------------------------------------

    def create(self, resource: Resource | dict[str, Any]) -> Resource:
        res = self._validated(resource)
        if builtin := self.before_write("create", res):
            return builtin
        res, key, value = self.prepare_create(res)
        if res.KIND == "AddressSpace":
            res, revision = spaces.create(self, res, key)
            return with_version(res, str(revision))
        try:
            revision = self.backend.create(key, value)
        except KeyExists:
            raise ResourceAlreadyExists(res.KIND, res.name, res.namespace, key) from None
        return with_version(res, str(revision))

    def prepare_create(self, res: Resource) -> tuple[Resource, str, str]:
        """(resource with its new identity, key, stored value) for a create; raises if a
        create of `res` is refused before it reaches the store."""
        if res.metadata.resourceVersion:
            raise ValidationError(res.KIND, res.name, "metadata.resourceVersion",
                                  f'"{res.metadata.resourceVersion}" must not be set on create')
        res = with_version(res, None, uid=self._new_uid(), creationTimestamp=self._now())
        self._check_against_others(res)
        return res, storage_key(res), encode(res)

    def update(self, resource: Resource | dict[str, Any]) -> Resource:
        res = self._validated(resource)
        if builtin := self.before_write("update", res):
            return builtin
        key = storage_key(res)
        current = self.backend.get(key)
        if current is None:
            raise ResourceNotFound(res.KIND, res.name, res.namespace, key)
        return self._update_from(res, key, current)

    def prepare_update(self, res: Resource, key: str, current: KV
                       ) -> tuple[Resource, str | None, int]:
        """(resource with the stored identity, new value or None when nothing changes, the
        revision to compare-and-swap on) for an update of `current`: CAS on the caller's
        resourceVersion if it gave one (a stale one is a ResourceConflict), else on
        `current`'s."""
        expected = self._parse_version(res)
        if expected is None:
            expected = current.mod_revision
        elif expected != current.mod_revision:
            raise ResourceConflict(res.KIND, res.name, res.namespace, key, expected,
                                   current.mod_revision)
        uid, created = _stored_identity(current.value)
        res = with_version(res, None, uid=uid or self._new_uid(),
                            creationTimestamp=created or self._now())
        if res.KIND == "AddressSpace":
            res = spaces.before_update(res, decode(key, current.value, current.mod_revision))
        value = encode(res)
        if value == current.value or _same_json(value, current.value):
            # Nothing changed: no write, so no new revision and no watch event. Re-applying
            # the same manifests (GitOps loops) costs the cluster nothing. Compared as JSON
            # too: an untyped map (a route table range) may come back with its keys in
            # another order, as `get -o yaml` sorts them.
            return res, None, expected
        self._check_update(res, key, current)
        return res, value, expected

    def _update_from(self, res: Resource, key: str, current: KV) -> Resource:
        res, value, expected = self.prepare_update(res, key, current)
        if value is None:
            return with_version(res, str(current.mod_revision))
        try:
            revision = self.backend.update(key, value, expected)
        except KeyNotFound:
            raise ResourceNotFound(res.KIND, res.name, res.namespace, key) from None
        except RevisionConflict as err:
            raise ResourceConflict(res.KIND, res.name, res.namespace, key, expected,
                                   err.actual) from None
        return with_version(res, str(revision))

    def apply(self, resource: Resource | dict[str, Any]) -> Resource:
        """Create, or update the current version. With a resourceVersion: update (CAS)."""
        res = self._validated(resource)
        if res.metadata.resourceVersion:
            return self.update(res)
        if builtin := self.before_write("apply", res):
            return builtin
        key = storage_key(res)
        last: Exception | None = None
        for attempt in range(APPLY_ATTEMPTS):
            if attempt:
                _pause_before_retry(attempt)
            current = self.backend.get(key)
            try:
                if current is None:
                    return self.create(res)
                return self._update_from(res, key, current)
            except (ResourceAlreadyExists, ResourceConflict, ResourceNotFound) as err:
                last = err  # raced with another writer: go round again
        assert last is not None
        raise last

    def delete(self, kind: str, name: str, namespace: str | None = None, *,
               resource_version: str | None = None) -> Resource | None:
        """Delete and return the deleted resource (CAS when `resource_version` is given);
        None if the stored value was not a valid resource (deleting it is how one repairs it)."""
        key, namespace = self._key(kind, name, namespace)
        expected = self._parse_version_text(kind, name, resource_version)
        self._check_delete(kind, name, key)
        for attempt in range(APPLY_ATTEMPTS):
            if attempt:
                _pause_before_retry(attempt)
            current = self.backend.get(key)
            if current is None:
                raise ResourceNotFound(kind, name, namespace, key)
            if expected is not None and expected != current.mod_revision:
                raise ResourceConflict(kind, name, namespace, key, expected,
                                       current.mod_revision)
            try:
                self._delete_kv(kind, key, current)
            except KeyNotFound:
                raise ResourceNotFound(kind, name, namespace, key) from None
            except RevisionConflict as err:
                if expected is not None:
                    raise ResourceConflict(kind, name, namespace, key, expected,
                                           err.actual) from None
                continue
            try:
                return decode(key, current.value, current.mod_revision)
            except CorruptResource:
                return None
        raise ResourceConflict(kind, name, namespace, key, 0, None)

    def _delete_kv(self, kind: str, key: str, current: KV) -> None:
        """Delete `current` (CAS); an AddressSpace with its prefix claim (spaces.py)."""
        if kind == "AddressSpace":
            spaces.delete(self.backend, key, current)
        else:
            self.backend.delete(key, mod_revision=current.mod_revision)

    # ---- helpers -------------------------------------------------------------------------

    def _key(self, kind: str, name: str, namespace: str | None) -> tuple[str, str | None]:
        cls = kind_class(kind)
        if kind == "BlockAffinity":
            # Affinity keys hold node and CIDR, not the name: find the key with that name.
            keys, _ = self.backend.list(ipamkinds.prefix(kind))
            for item in keys:
                parsed = ipamkinds.parse_key(item.key)
                if parsed and parsed[2] == name:
                    return item.key, None
            return f"{ipamkinds.prefix(kind)}?{name}", None
        if ipamkinds.owns_kind(kind):
            key = ipamkinds.prefix(kind)
            return (key if name == "default" else f"{key}?{name}"), None
        namespace = (namespace or "default") if cls.NAMESPACED else None
        return kind_prefix(kind, namespace) + name, namespace

    @staticmethod
    def _validated(resource: Resource | dict[str, Any]) -> Resource:
        """A model is taken as it is: models are validated when they are built (`validate`,
        or the class itself), so validating again would only cost time (three passes over
        every net of a large GlobalNetworkSet, before)."""
        return resource if isinstance(resource, Resource) else validate(resource)

    @classmethod
    def _parse_version(cls, res: Resource) -> int | None:
        return cls._parse_version_text(res.KIND, res.name, res.metadata.resourceVersion)

    @staticmethod
    def _parse_version_text(kind: str, name: str, version: str | None) -> int | None:
        if not version:
            return None
        try:
            return int(version)
        except ValueError:
            raise ValidationError(kind, name, "metadata.resourceVersion",
                                  f'"{version}" is not a valid resourceVersion') from None

    def before_write(self, operation: str, res: Resource) -> Resource | None:
        """Checks before any write: a WorkloadEndpoint's name against its spec (Calico's
        client check); on this client's first write, create the ClusterInformation `default`
        if the datastore has none (see builtins.py). A write of the built-in profile is refused
        unless it changes nothing (`get -o yaml` output applies back); the built-in profile
        is then returned, and the caller writes nothing."""
        if res.KIND == "WorkloadEndpoint":
            check_workload_endpoint_name(res)
        if builtins.is_builtin(res.key()):
            kv = builtins.DEFAULT_ALLOW_KV
            current = decode(kv.key, kv.value, kv.mod_revision)
            if res.spec != current.spec or (res.metadata.labels or None):
                raise OperationNotSupported(operation.capitalize(), f"Profile({res.name})")
            return current
        if self._initialized or res.KIND == "ClusterInformation":
            return None
        if self.backend.get(builtins.CLUSTER_INFO_KEY) is None:
            try:
                self.backend.create(builtins.CLUSTER_INFO_KEY,
                                    builtins.cluster_information_value(self._now()))
            except KeyExists:
                pass  # another writer got there first
        self._initialized = True
        return None

    def _check_delete(self, kind: str, name: str, key: str) -> None:
        """Calico's refusals: the built-in profile; the default and kube-admin tiers, and a
        tier that still holds (staged) policies (clientv3 tier.go)."""
        if builtins.is_builtin(key):
            raise OperationNotSupported("Delete", f"Profile({name})")
        if kind == "AddressSpace":
            spaces.check_delete(self, name)
        if kind != "Tier":
            return
        if name in ("default", "kube-admin"):
            raise OperationNotSupported("Delete", name, f"Cannot delete {name} tier")
        for policy_kind in ("NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy",
                            "StagedGlobalNetworkPolicy"):
            if any(p.spec.tier == name for p in self.list(policy_kind).items):
                raise OperationNotSupported("delete", name, "Cannot delete a non-empty tier")

    def _check_against_others(self, res: Resource) -> None:
        """Rules for a new resource that need more than the resource, as clientv3 has them
        (today IPPools only): a new pool must not overlap another."""
        if res.KIND == "IPPool":
            ippool.check_pool_overlap(res, self.list("IPPool").items)
        spaces.check_write(self, res)

    def _check_update(self, res: Resource, key: str, current: KV) -> None:
        """Rules for an update against the stored version: an IPPool keeps its CIDR and
        blockSize. (Only then is the stored value decoded.)"""
        spaces.check_write(self, res)
        if res.KIND != "IPPool":
            return
        try:
            ippool.check_pool_update(res, decode(key, current.value, current.mod_revision))
        except CorruptResource as err:
            log.warning("replacing %s", err)
