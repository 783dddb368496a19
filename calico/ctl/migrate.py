"""`calicoctl datastore migrate lock|unlock|export|import`: move a cluster between datastores.

This is how a cluster outgrows one machine (the embedded `local` store to etcd) or comes back.
The steps, as with Calico's command:

    calicoctl datastore migrate lock               # source: ClusterInformation datastoreReady=false
    calicoctl datastore migrate export > dump      # source must be locked
    calicoctl datastore migrate import -f dump -c etcd.cfg   # target must hold no Calico data;
                                                   #   it is left locked
    (point every host's calico.env / felix.cfg / calicoctl.cfg at the target, restart calico-node)
    calicoctl datastore migrate unlock -c etcd.cfg

Lock and unlock are Calico's: they set `spec.datastoreReady` of the ClusterInformation
`default` to false / true (creating it when absent); writes still work while locked.

The export is three parts separated by lines `===`, as Calico's: every v3 resource as YAML
(uid, resourceVersion and creationTimestamp removed), the ClusterInformation as JSON, and
then, where Calico has its IPAM JSON, every key of the IPAM state (blocks with their
allocations, affinities, handles, the IPAM config) and of the DHCP agent's subnet records as
JSON `{"kind": "CalicoDatastoreKeys", "keys": {key: value}}` — copied as they are, since both
backends keep Calico's key layout. Unlike Calico's export (aimed at Kubernetes, which
regenerates them) WorkloadEndpoints and Profiles are exported: without them the workloads
would lose their endpoints. Keys attached to a lease (Felix status, the Neutron election) are
not exported: their owners rewrite them.

Import checks the whole file (every resource validates) before it writes anything, then
writes resources in dependency order (tiers before policies, pools before endpoints), the
cluster's GUID and version, and the keys in transactions of up to 100.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import yaml

from calico import api
from calico.api import codec
from calico.datastore import kv
from calico.datastore.builtins import DEFAULT_ALLOW_PROFILE
from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceNotFound

from .session import CtlError, Session

CONFIG_HELP = "Path to the file containing connection configuration in YAML or JSON format."
DEFAULT_CONFIG = "/etc/calico/calicoctl.cfg"
SEPARATOR = "===\n"
KEYS_KIND = "CalicoDatastoreKeys"
KEY_PREFIXES = ("/calico/ipam/v2/", "/calico/dhcp/v2/")
TXN_SIZE = 100

# Dependency order: what a later kind refers to comes first.
ORDER = ("Tier", "IPPool", "IPReservation", "BGPFilter", "BGPPeer", "GlobalNetworkSet",
         "GlobalNetworkPolicy", "StagedGlobalNetworkPolicy", "KubeControllersConfiguration",
         "Profile", "NetworkSet", "NetworkPolicy", "StagedNetworkPolicy", "Node",
         "BGPConfiguration", "FelixConfiguration", "HostEndpoint", "WorkloadEndpoint")
# ClusterInformation is its own part; the IPAM kinds live under /calico/ipam/v2/ (the keys).
NOT_RESOURCES = ("ClusterInformation", "IPAMConfiguration", "BlockAffinity")


def kinds() -> list[str]:
    rest = sorted(k for k in api.KINDS if k not in ORDER and k not in NOT_RESOURCES)
    return [k for k in ORDER if k in api.KINDS] + rest


# ---- lock / unlock ---------------------------------------------------------------------

def set_ready(client: ResourceClient, ready: bool) -> None:
    """ClusterInformation default's datastoreReady := ready (created when absent)."""
    try:
        info = client.get("ClusterInformation", "default").to_dict()
    except ResourceNotFound:
        client.create({"apiVersion": "projectcalico.org/v3", "kind": "ClusterInformation",
                       "metadata": {"name": "default"}, "spec": {"datastoreReady": ready}})
        return
    info.setdefault("spec", {})["datastoreReady"] = ready
    client.update(info)


def is_locked(client: ResourceClient) -> bool:
    try:
        info = client.get("ClusterInformation", "default").to_dict()
    except ResourceNotFound:
        return False
    return (info.get("spec") or {}).get("datastoreReady") is False


# ---- export ----------------------------------------------------------------------------

def _exported(res: Any) -> dict[str, Any]:
    doc = res.to_dict()
    meta = doc.get("metadata") or {}
    for field in ("uid", "resourceVersion", "creationTimestamp"):
        meta.pop(field, None)
    return doc


def export_text(client: ResourceClient) -> str:
    if not is_locked(client):
        raise CtlError("datastore is not locked. Run the `calicoctl datastore migrate lock` "
                       "command in order to begin migration")
    docs = [_exported(r) for kind in kinds() for r in _stored(client, kind)]
    info = client.get("ClusterInformation", "default").to_dict()
    keys: dict[str, Any] = {}
    for prefix in KEY_PREFIXES:
        items, _ = client.backend.list(prefix)
        for item in items:
            if not item.lease:
                keys[item.key] = json.loads(item.value)
    resources = "".join("---\n" + yaml.safe_dump(d, sort_keys=False) for d in docs)
    return (resources + SEPARATOR + json.dumps(info, indent=2) + "\n" + SEPARATOR +
            json.dumps({"kind": KEYS_KIND, "keys": keys}, indent=2, sort_keys=True) + "\n")


# ---- import ----------------------------------------------------------------------------

def parse_export(text: str, source: str) -> tuple[list[dict], dict, dict[str, Any]]:
    """(resources, ClusterInformation, keys) of an export, every resource validated."""
    parts = text.split(SEPARATOR)
    if len(parts) != 3:
        raise CtlError(f"{source} is not a `calicoctl datastore migrate export` file "
                       f"(expected 3 parts separated by '===' lines, found {len(parts)})")
    resources = [d for d in codec.parse_documents(parts[0], source) if d]
    for doc in resources:
        api.validate(doc)  # raises ValidationError naming the resource and field
    try:
        info, keys = json.loads(parts[1]), json.loads(parts[2])
    except ValueError as err:
        raise CtlError(f"{source}: the ClusterInformation or keys part is not JSON: {err}") \
            from None
    if not isinstance(keys, dict) or keys.get("kind") != KEYS_KIND or \
            not isinstance(keys.get("keys"), dict):
        raise CtlError(f"{source}: the last part must be a {KEYS_KIND} JSON object")
    bad = [k for k in keys["keys"] if not k.startswith(KEY_PREFIXES)]
    if bad:
        raise CtlError(f"{source}: key {bad[0]} is outside {', '.join(KEY_PREFIXES)}")
    return resources, info, keys["keys"]


def _stored(client: ResourceClient, kind: str) -> list:
    """The resources of `kind` that were written: not the built-in default-allow Profile,
    which every datastore shows and none stores."""
    return [r for r in client.list(kind).items
            if not (kind == "Profile" and r.name == DEFAULT_ALLOW_PROFILE)]


def check_empty(client: ResourceClient) -> None:
    for kind in kinds():
        found = _stored(client, kind)
        if found:
            raise CtlError(f"Datastore already has Calico resources: found {kind} "
                           f"\"{found[0].name}\". Import needs an empty datastore")
    for prefix in KEY_PREFIXES:
        items, _ = client.backend.list(prefix)
        if items:
            raise CtlError(f"Datastore already has Calico data: found {items[0].key}. "
                           "Import needs an empty datastore")


def import_all(client: ResourceClient, resources: list[dict], info: dict,
               keys: dict[str, Any]) -> tuple[int, int]:
    check_empty(client)
    set_ready(client, False)
    rank = {k: i for i, k in enumerate(kinds())}
    for doc in sorted(resources, key=lambda d: rank.get(d.get("kind"), len(rank))):
        client.create(doc)
    current = client.get("ClusterInformation", "default").to_dict()
    spec = current.setdefault("spec", {})
    for field in ("clusterGUID", "calicoVersion", "clusterType"):
        value = (info.get("spec") or {}).get(field)
        if value:
            spec[field] = value
    client.update(current)
    items = sorted(keys.items())
    for start in range(0, len(items), TXN_SIZE):
        ops = [kv.Put(k, json.dumps(v, separators=(",", ":"))) for k, v in
               items[start:start + TXN_SIZE]]
        if client.backend.txn([kv.Compare(op.key, 0) for op in ops], ops) is None:
            raise CtlError(f"another writer created keys under {KEY_PREFIXES[0]} during the "
                           f"import; {start} of {len(items)} keys were written")
    return len(resources), len(items)


# ---- commands --------------------------------------------------------------------------

def _session(config: str, create: bool = False) -> Session:
    return Session.from_config(config, create=create)


def _config_option(fn: Any) -> Any:
    return click.option("-c", "--config", default=DEFAULT_CONFIG, show_default=True,
                        help=CONFIG_HELP)(fn)


@click.group()
def datastore() -> None:
    """Calico datastore management."""


@datastore.group()
def migrate() -> None:
    """Migrate the cluster between datastores (local and etcdv3)."""


@migrate.command()
@_config_option
def lock(config: str) -> None:
    """Lock the datastore for migration: Calico resources stop taking effect."""
    from .main import _run

    def run() -> None:
        set_ready(_session(config).client, False)
        click.echo("Datastore locked.")
    _run(run)


@migrate.command()
@_config_option
def unlock(config: str) -> None:
    """Unlock the datastore after migration: Calico resources take effect again."""
    from .main import _run

    def run() -> None:
        set_ready(_session(config).client, True)
        click.echo("Datastore unlocked.")
    _run(run)


@migrate.command()
@_config_option
@click.option("--allow-version-mismatch", is_flag=True, help="Accepted for compatibility.")
def export(config: str, allow_version_mismatch: bool) -> None:
    """Export every resource and the IPAM state of a locked datastore to stdout."""
    from .main import _run

    def run() -> None:
        click.echo(export_text(_session(config).client), nl=False)
    _run(run)


@migrate.command("import")
@_config_option
@click.option("-f", "--filename", required=True, help="The export file ('-' for stdin).")
@click.option("--allow-version-mismatch", is_flag=True, help="Accepted for compatibility.")
def import_(config: str, filename: str, allow_version_mismatch: bool) -> None:
    """Import an export into an empty datastore (which is left locked)."""
    from .main import _run

    def run() -> None:
        if filename == "-":
            text, source = sys.stdin.read(), "stdin"
        else:
            with open(filename) as f:
                text, source = f.read(), filename
        resources, info, keys = parse_export(text, source)
        n_res, n_keys = import_all(_session(config, create=True).client, resources, info,
                                   keys)
        click.echo(f"Successfully applied {n_res} resource(s)")
        click.echo(f"Successfully applied {n_keys} IPAM resource(s)")
        click.echo("Datastore information successfully imported. The datastore is locked: "
                   "point the hosts at it, then run `calicoctl datastore migrate unlock`.")
    _run(run)
