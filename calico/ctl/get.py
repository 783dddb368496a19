"""`calicoctl get`: fetch what was asked for and hand Calico's result list to the printer.

Targets come from `KIND [NAME...]` or `-f`. A kind without names is listed (a `<Kind>List`
carrying the store's revision); each name or document is fetched alone, so several names
give several objects (several tables, or a bare YAML/JSON sequence). A missing one is
reported on stderr with Calico's line, after what was found is printed, and the exit code is 1.
`--export` strips cluster-specific metadata only when names are given, as Calico does.
"""

from __future__ import annotations

from typing import Any

import click

from calico import api
from calico.datastore import kv

from . import goformat, printer, tables
from .crud import _targets
from .session import CtlError, Session

_EXPORT_DROPS = ("namespace", "uid", "resourceVersion", "deletionTimestamp",
                 "deletionGracePeriodSeconds")


def _exported(doc: dict[str, Any]) -> dict[str, Any]:
    """Calico's --export: those fields cleared; creationTimestamp left as Go's zero time."""
    meta = {k: v for k, v in doc.get("metadata", {}).items() if k not in _EXPORT_DROPS}
    meta["creationTimestamp"] = None
    return {**doc, "metadata": meta}


def _ordered(kind: str, items: list[api.Resource]) -> list[api.Resource]:
    """Tiers list by their order, those without one last, as Calico's calicoctl lists them;
    everything else in the store's (key) order."""
    if kind != "Tier":
        return items
    order = [r.to_dict().get("spec", {}).get("order") for r in items]
    return [r for _, r in sorted(zip(order, items, strict=True),
                                 key=lambda p: (p[0] is None, p[0] or 0))]


def _as_number(session: Session) -> str:
    try:
        conf = session.client.get("BGPConfiguration", "default", None).to_dict()
    except kv.KeyNotFound:
        return "64512"
    except kv.DatastoreError:
        return "unknown"
    asn = conf.get("spec", {}).get("asNumber")
    return str(asn) if asn else "64512"


def get(session: Session, filename: str | None, recursive: bool, skip_empty: bool,
        namespace: str | None, all_namespaces: bool, output: str, export: bool,
        kind: str | None, names: tuple[str, ...]) -> bool:
    chosen = printer.make_printer(output)
    targets = _targets(filename, recursive, skip_empty, namespace, kind, names, all_namespaces)
    printer.check_headings(chosen, [k for k, _, _ in targets])
    client = session.client
    objects: list[dict[str, Any]] = []
    errors: list[str] = []
    for k, name, ns in targets:
        if name is None:
            listed = client.list(k, ns)
            items = [goformat.order_resource(r.to_dict()) for r in _ordered(k, listed.items)]
            objects.append(goformat.list_object(k, items, str(listed.revision)))
            continue
        if ns is None and api.KINDS[k].NAMESPACED:
            raise CtlError("cannot use --all-namespace flag for getting a single resource")
        try:
            doc = client.get(k, name, ns).to_dict()
        except kv.KeyNotFound:
            label = f"{k}({ns}/{name})" if ns else f"{k}({name})"
            errors.append(f"resource does not exist: {label} with error: <nil>")
            continue
        objects.append(goformat.order_resource(_exported(doc) if export and names else doc))
    ctx = tables.Context(as_number=lambda: _as_number(session))
    printer.print_objects(chosen, objects, lambda text: click.echo(text, nl=False),
                          all_namespaces or bool(namespace), ctx)
    for line in errors:
        click.echo(line, err=True)
    return not errors
