"""The datastore's side of address spaces (our extension; the model is calico/api/addressspace.py).

Key layout (the default space keeps every Calico key unchanged):

    /calico/resources/v3/projectcalico.org/addressspaces/<name>   the AddressSpace JSON
    /calico/ipam/v2/translationprefix/<prefix as 64:ff9b:1::-96>  the space name: the claim
    /calico/ipam/v2/spaces/<name>/...                             that space's IPAM keys
                                                                  (ipamkeys.SpaceKeys)

A space is created in one transaction with the claim of its prefix, both guarded on being
absent: two writers can never hold one prefix, and a space whose prefix is allocated (none
given) retries with the next free /96 when it loses that race. Nothing is written when a check
fails. The prefix of a space cannot change; an update that omits it keeps the stored one (so a
manifest without a prefix applies again). A space still named by an IPPool or a
WorkloadEndpoint cannot be deleted; deleting one deletes its claim in the same transaction.

Pools and endpoints are checked here against the stored spaces (`check_write`), as the
client checks a pool against the other pools.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from calico.api import Resource, ValidationError
from calico.api import addressspace as api_space
from calico.api.addressspace import AddressSpace

from .errors import CorruptResource, OperationNotSupported, ResourceAlreadyExists
from .kv import KV, Backend, Compare, Delete, KeyNotFound, Put, RevisionConflict
from .storage import decode, encode

if TYPE_CHECKING:
    from .client import ResourceClient

CLAIM_PREFIX = "/calico/ipam/v2/translationprefix/"
CREATE_ATTEMPTS = 10


def claim_key(prefix: ipaddress.IPv6Network) -> str:
    return CLAIM_PREFIX + str(prefix).replace("/", "-")


def _spaces(client: ResourceClient) -> list[AddressSpace]:
    return list(client.list("AddressSpace").items)  # type: ignore[arg-type]


def _pool_cidrs(client: ResourceClient) -> list[tuple[str, str]]:
    return [(p.name, p.spec.cidr) for p in client.list("IPPool").items]


def check_write(client: ResourceClient, res: Resource) -> None:
    """Checks of an IPPool or WorkloadEndpoint against the stored address spaces."""
    if res.KIND == "IPPool":
        if res.spec.addressSpace is None and res.network.version == 4:
            return
        api_space.check_pool_space(res.name, res.spec.cidr, res.spec.addressSpace,
                                   _spaces(client))
    elif res.KIND == "WorkloadEndpoint" and res.spec.addressSpace is not None:
        api_space.check_endpoint_space(res.KIND, res.name, res.spec.addressSpace,
                                       _spaces(client))


def create(client: ResourceClient, res: AddressSpace, key: str) -> tuple[AddressSpace, int]:
    """Write a new space and its prefix claim atomically (see above); returns (space, revision)."""
    given = res.prefix
    for _ in range(CREATE_ATTEMPTS):
        spaces = _spaces(client)
        if any(s.name == res.name for s in spaces):
            raise ResourceAlreadyExists(res.KIND, res.name, None, key)
        prefix = given or api_space.allocate_prefix(
            api_space.prefix_range(), [s.prefix for s in spaces if s.prefix] +
            [ipaddress.ip_network(c) for _, c in _pool_cidrs(client)
             if ipaddress.ip_network(c).version == 6], res.name)
        candidate = res.model_copy(update={"spec": res.spec.model_copy(
            update={"translationPrefix": str(prefix)})})
        api_space.check_space_prefix(candidate, spaces, _pool_cidrs(client))
        revision = client.backend.txn(
            [Compare(key, 0), Compare(claim_key(prefix), 0)],
            [Put(key, encode(candidate)), Put(claim_key(prefix), res.name)])
        if revision is not None:
            return candidate, revision
        if client.backend.get(key) is not None:
            raise ResourceAlreadyExists(res.KIND, res.name, None, key)
        holder = client.backend.get(claim_key(prefix))
        if given is not None and holder is not None:
            raise ValidationError("AddressSpace", res.name, "spec.translationPrefix",
                                  f'"{prefix}" collides with AddressSpace "{holder.value}"')
    raise ValidationError("AddressSpace", res.name, "spec.translationPrefix",
                          "could not be claimed: other writers kept taking the candidates")


def before_update(res: AddressSpace, current: AddressSpace) -> AddressSpace:
    """The update keeps the stored prefix: omitted means unchanged, another is refused."""
    if res.spec.translationPrefix is None:
        return res.model_copy(update={"spec": res.spec.model_copy(
            update={"translationPrefix": current.spec.translationPrefix})})
    if res.prefix != current.prefix:
        raise ValidationError("AddressSpace", res.name, "spec.translationPrefix",
                              f'"{res.spec.translationPrefix}" cannot be modified '
                              f'(was "{current.spec.translationPrefix}")')
    return res


def check_delete(client: ResourceClient, name: str) -> None:
    """A space still named by a pool or an endpoint stays."""
    for kind in ("IPPool", "WorkloadEndpoint"):
        for res in client.list(kind).items:
            if res.spec.addressSpace == name:
                raise OperationNotSupported(
                    "Delete", f"AddressSpace({name})",
                    f'{kind} "{res.name}" is in address space "{name}"')


def delete(backend: Backend, key: str, current: KV) -> None:
    """Delete the stored space `current` (compare-and-swap on its revision) and its prefix
    claim in one transaction (no claim to delete when the stored value was unreadable)."""
    try:
        space = decode(key, current.value, current.mod_revision)
    except CorruptResource:
        space = None
    claim = [] if space is None or space.prefix is None else [Delete(claim_key(space.prefix))]
    if backend.txn([Compare(key, current.mod_revision)], [Delete(key), *claim]) is None:
        actual = backend.get(key)
        if actual is None:
            raise KeyNotFound(key)
        raise RevisionConflict(key, current.mod_revision, actual.mod_revision)
