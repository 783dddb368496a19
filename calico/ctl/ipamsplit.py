"""`calicoctl ipam split NUMBER (--cidr=CIDR | --name=NAME)`: split an IP pool into NUMBER
(a power of two) equal pools, as Calico's does.

Like Calico's, it runs only while the datastore is locked (`calicoctl datastore migrate
lock`: ClusterInformation `default` has `datastoreReady: false`), so no address is assigned
meanwhile. The children are named `split-<name>-<i>`, copy the pool's spec, labels and
annotations with their part of the CIDR and are enabled. Calico disables the pool, creates the
children and deletes the pool in three writes; we do the delete and the creates in one
transaction (guarded on the pool's revision and on the children not existing), so nothing is
half-done if a write fails or someone changed the pool meanwhile. Every child is validated
before anything is written. Existing blocks stay where they are: each lies inside one child.

Output is Calico's, byte for byte (its first line has no newline of its own, and the last
line none either).
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime
from typing import Any

import click

from calico import api
from calico.datastore import kv
from calico.datastore.client import encode, storage_key

from .session import CtlError, Session

_DROP_META = ("uid", "resourceVersion", "creationTimestamp", "generation", "selfLink",
              "generateName")


def split_cidr(cidr: str, parts: int) -> list[str]:
    """`parts` equal subnets of `cidr` (its address masked first), in address order."""
    power = parts.bit_length() - 1
    if parts < 2 or parts != 1 << power:
        raise ValueError(f"number to split CIDR into is not a valid power of 2: {parts}")
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"error reading CIDR {cidr} before attempting to split it") from None
    if net.prefixlen + power > net.max_prefixlen:
        raise ValueError(f"the CIDR {cidr} is not large enough to be split into {parts} parts")
    return [str(sub) for sub in net.subnets(prefixlen_diff=power)]


def _locked(session: Session) -> bool:
    try:
        info = session.client.get("ClusterInformation", "default", None).to_dict()
    except kv.DatastoreError as err:
        raise CtlError(f"error while checking if datastore was locked: Error retrieving "
                       f"ClusterInformation: {err}") from None
    return info.get("spec", {}).get("datastoreReady") is False


def _find(session: Session, cidr: str | None, name: str | None) -> api.Resource:
    client = session.client
    if name:
        try:
            return client.get("IPPool", name, None)
        except kv.KeyNotFound as err:
            raise CtlError(f"unable to find IP pool with name {name}: {err}") from None
    found = [p for p in client.list("IPPool").items if p.to_dict()["spec"]["cidr"] == cidr]
    if not found:
        raise CtlError(f"unable to find IP pool {name or ''} covering the specified CIDR "
                       f"{cidr}")
    return found[-1]


def _child(pool: dict[str, Any], index: int, cidr: str) -> api.Resource:
    name = pool["metadata"]["name"]
    new_name = f"split-{name}-{index}"
    if len(new_name) > 253:
        new_name = f"split-{name[:245]}-{index}"
    meta = {k: v for k, v in pool["metadata"].items() if k not in _DROP_META}
    meta["name"] = new_name
    spec = {k: v for k, v in pool["spec"].items() if k != "disabled"}
    spec["cidr"] = cidr
    res = api.validate({**pool, "metadata": meta, "spec": spec})
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return res.model_copy(update={"metadata": res.metadata.model_copy(
        update={"uid": str(uuid.uuid4()), "creationTimestamp": stamp})})


def split(session: Session, number: str, cidr: str | None, name: str | None) -> bool:
    try:
        parts = int(number)
    except ValueError as err:
        raise CtlError(f"error reading number to split IP pools into. {number} is not a valid "
                       f"number: {err}") from None
    if not cidr and not name:
        raise CtlError("no name or CIDR provided. Provide a name or CIDR to denote the IP pool "
                       "to split")
    if not _locked(session):
        raise CtlError("datastore is not locked. Run the `calicoctl datastore migrate lock` "
                       "command in order split the IP pools")
    pool = _find(session, cidr, name)
    body = pool.to_dict()
    try:
        cidrs = split_cidr(body["spec"]["cidr"], parts)
    except ValueError as err:
        raise CtlError(f"error splitting the CIDR {body['spec']['cidr']} into {parts} CIDRs: "
                       f"{err}") from None
    children = [_child(body, i, c) for i, c in enumerate(cidrs)]
    old_key = storage_key(pool)
    compares = [kv.Compare(old_key, int(pool.metadata.resourceVersion or 0))]
    compares += [kv.Compare(storage_key(c), 0) for c in children]
    ops: list[kv.Put | kv.Delete] = [kv.Delete(old_key)]
    ops += [kv.Put(storage_key(c), encode(c)) for c in children]
    if session.backend.txn(compares, ops) is None:
        raise CtlError(f"error splitting IP pool {pool.name}: it changed meanwhile, or a pool "
                       f"named split-{pool.name}-<n> exists; nothing was written")
    click.echo(f"IP Pool {pool.name} was successfully split into {parts} smaller pools.",
               nl=False)
    for child in children:
        click.echo(f"Created {child.name} with CIDR {child.to_dict()['spec']['cidr']}.")
    click.echo("Please refer to the documentation for final steps.", nl=False)
    return True
