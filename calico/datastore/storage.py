"""Where each projectcalico.org/v3 resource is stored, and in what form: the key layout and the
stored JSON, shared by the typed client (client.py) and the AddressSpace rules (spaces.py).

    /calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>   most kinds
    /calico/ipam/v2/...                                   IPAMConfiguration, BlockAffinity
                                                          (ipamkinds.py)

`encode` is Calico's JSON without `resourceVersion` (it is the key's mod revision, never
stored); `decode` validates a stored value back into its model with that version filled in,
and raises CorruptResource for a value that is not JSON, not valid, or not the resource its
key names. Pure: no backend, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from calico.api import KINDS, Resource, ValidationError, validate
from calico.api.base import API_GROUP

from . import ipamkinds
from .errors import CorruptResource

RESOURCE_PREFIX = f"/calico/resources/v3/{API_GROUP}/"


def kind_class(kind: str) -> type[Resource]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValidationError("resource", None, "kind",
                              f'"{kind}" is not a known projectcalico.org/v3 kind') from None


def kind_prefix(kind: str, namespace: str | None = None) -> str:
    """The key prefix holding every resource of `kind` (in `namespace`, if namespaced)."""
    cls = kind_class(kind)
    if ipamkinds.owns_kind(kind):
        return ipamkinds.prefix(kind)
    prefix = f"{RESOURCE_PREFIX}{cls.PLURAL}/"
    return f"{prefix}{namespace}/" if cls.NAMESPACED and namespace else prefix


def parse_key(key: str) -> tuple[str, str | None, str] | None:
    """(kind, namespace, name) of a resource key; None if `key` is not one."""
    if ipamkinds.owns_key(key):
        return ipamkinds.parse_key(key)
    if not key.startswith(RESOURCE_PREFIX):
        return None
    plural, _, rest = key[len(RESOURCE_PREFIX):].partition("/")
    for kind, cls in KINDS.items():
        if cls.PLURAL == plural:
            if cls.NAMESPACED:
                namespace, _, name = rest.partition("/")
                return (kind, namespace, name) if namespace and name else None
            return (kind, None, rest) if rest and "/" not in rest else None
    return None


def encode(resource: Resource) -> str:
    """The stored JSON: Calico's form without resourceVersion."""
    if ipamkinds.owns_kind(resource.KIND):
        return ipamkinds.encode(resource)
    data = resource.to_dict()
    data.get("metadata", {}).pop("resourceVersion", None)
    return json.dumps(data, separators=(",", ":"))


def decode(key: str, value: str, mod_revision: int) -> Resource:
    """The validated resource stored at `key`, with resourceVersion filled in.
    Raises CorruptResource if it is not JSON, not valid, or not the resource its key names."""
    if ipamkinds.owns_key(key):
        try:
            return with_version(ipamkinds.decode(key, value), str(mod_revision))
        except (ValueError, ValidationError, RecursionError) as err:
            raise CorruptResource(key, str(err)) from None
    try:
        doc = json.loads(value)
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if isinstance(meta, dict):  # the version goes in before validation: no model copies
            meta["resourceVersion"] = str(mod_revision)
            res = validate(doc)
        else:
            res = with_version(validate(doc), str(mod_revision))
    except (ValueError, ValidationError, RecursionError) as err:
        raise CorruptResource(key, str(err)) from None
    if res.key() != key:
        raise CorruptResource(key, f"it holds {res.KIND} {res.namespace or ''}/{res.name}")
    return res


def storage_key(res: Resource) -> str:
    """Where a resource is stored (the IPAM kinds live under /calico/ipam/v2/)."""
    return ipamkinds.key_of(res) if ipamkinds.owns_kind(res.KIND) else res.key()


def with_version(res: Resource, version: str | None, **meta: Any) -> Resource:
    return res.model_copy(update={"metadata": res.metadata.model_copy(
        update={"resourceVersion": version, **meta})})
