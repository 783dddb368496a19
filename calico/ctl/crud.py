"""The resource commands of calicoctl: create, apply, replace, delete, get, patch, label, version.

Each function takes a Session and the parsed flags, prints results, and returns False if any
resource failed (the caller turns that into exit code 1). Documents are read and parsed
before anything is written: a file with a syntax error writes nothing at all.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import click

from calico import api
from calico.api.base import shown
from calico.datastore import kv
from calico.datastore.bulk import write_all
from calico.datastore.errors import ResourceError
from calico.version import CALICO_VERSION

from . import guards, resources
from .errors import calico_message, failed_summary, identifier
from .session import CtlError, Session

CLIENT_VERSION = CALICO_VERSION

_CLIENT_ACTIONS = {"create": "create", "apply": "apply", "replace": "update"}
_PAST = {"create": "created", "apply": "applied", "replace": "replaced", "delete": "deleted",
         "validate": "validated"}


@dataclass
class Doc:
    source: str
    body: dict[str, Any]


# ---- reading input ----------------------------------------------------------------------


def read_documents(filename: str, recursive: bool = False, skip_empty: bool = False
                   ) -> list[Doc]:
    """Every document of a file, a directory (.yaml .yml .json) or stdin ('-')."""
    docs: list[Doc] = []
    for source, text in _read_sources(filename, recursive):
        parsed = api.parse_documents(text, source)
        if not parsed and not skip_empty:
            raise CtlError(f"No resources specified in file {source}")
        docs.extend(Doc(source, d) for d in parsed)
    if not docs and not skip_empty:
        raise CtlError(f"No resources specified in {filename}")
    return docs


def _read_sources(filename: str, recursive: bool) -> Iterable[tuple[str, str]]:
    if filename == "-":
        yield "stdin", _text("stdin", sys.stdin.buffer.read())
        return
    if os.path.isdir(filename):
        walker = os.walk(filename) if recursive else [(filename, [], os.listdir(filename))]
        for root, _dirs, files in walker:
            for name in sorted(files):
                if name.endswith((".yaml", ".yml", ".json")):
                    path = os.path.join(root, name)
                    yield path, _read_file(path)
        return
    yield filename, _read_file(filename)


def _read_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise CtlError(f"cannot read {path}: {err.strerror}") from None
    return _text(path, data)


def _text(source: str, data: bytes) -> str:
    """The manifest text; a file that is not UTF-8 text is named, with where it stops."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CtlError(f"{source}: not a YAML or JSON manifest: byte 0x{data[err.start]:02x} "
                       f"at offset {err.start} is not UTF-8 text (a binary file?)") from None


def _with_namespace(body: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """Apply `-n`: fill a namespaced resource's namespace; reject a mismatch or a namespace
    for a kind that has none."""
    if not namespace:
        return body
    kind = body.get("kind")
    cls = api.KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return body
    if not cls.NAMESPACED:
        raise CtlError(f"{kind} is not namespaced")
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    current = meta.get("namespace")
    if current and current != namespace:
        raise CtlError(f"resource namespace does not match client namespace. "
                       f"{current} != {namespace}")
    return {**body, "metadata": {**meta, "namespace": namespace}}


# ---- create / apply / replace ------------------------------------------------------------


def write(session: Session, action: str, filename: str | None, recursive: bool,
          skip_empty: bool, namespace: str | None, skip_exists: bool = False) -> bool:
    if not filename:
        raise CtlError(f"{action} needs -f FILENAME (a file, a directory or '-')")
    docs = read_documents(filename, recursive, skip_empty)
    if not docs:
        click.echo("No resources specified")
        return True
    # Every document is checked first, then the valid ones are written in a few transactions
    # (calico.datastore.bulk); each still gets its own result, in the order of the input.
    outcomes: list[api.Resource | Exception] = []
    valid: list[api.Resource] = []
    for doc in docs:
        try:
            res = api.validate(_with_namespace(doc.body, namespace))
            guards.check_write(action, res.KIND, res.name, res.namespace)
        except (api.ValidationError, CtlError, kv.DatastoreError, ValueError) as err:
            outcomes.append(err)
            continue
        outcomes.append(res)
        valid.append(res)
    written = iter(write_all(session.client, _CLIENT_ACTIONS[action], valid))
    done: list[api.Resource] = []
    errors: list[str] = []
    for doc, outcome in zip(docs, outcomes, strict=True):
        out = next(written) if isinstance(outcome, api.Resource) else outcome
        if isinstance(out, kv.KeyExists) and skip_exists:
            out = outcome
        if isinstance(out, Exception):
            errors.append(_failure(doc.body, out))
            what = f"'{out.kind}' resource: " if isinstance(out, ResourceError) else ""
            click.echo(f"Failed to {action} {what}{errors[-1]}", err=True)
            continue
        done.append(out)
        if len(docs) > 1:
            click.echo(f"{_PAST[action]} {out.KIND} {_qualified(out)}")
    summary(action, [d.body for d in docs], len(done), errors)
    return not errors

def summary(action: str, bodies: list[dict[str, Any]], done: int, errors: list[str]) -> None:
    """Calico's closing line(s): success on stdout; a partial success on stdout followed by
    `hit error: [...]` on stderr; a total failure on stderr."""
    kinds = {shown(b["kind"]) for b in bodies if isinstance(b.get("kind"), str)}
    past = _PAST[action]
    if not errors:
        what = f"'{next(iter(kinds))}' resource(s)" if len(kinds) == 1 else "resource(s)"
        click.echo(f"Successfully {past} {done} {what}")
    elif done:
        what = f"'{next(iter(kinds))}' resources" if len(kinds) == 1 else "resources"
        click.echo(f"Partial success: {past} the first {done} out of {len(bodies)} {what}:")
        click.echo(f"hit error: [{' '.join(errors)}]", err=True)
    else:
        click.echo(failed_summary(action, kinds, len(bodies), errors), err=True)


def _describe(body: dict[str, Any]) -> str:
    kind = shown(body["kind"]) if isinstance(body.get("kind"), str) else "resource"
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    name = meta.get("name")
    ns = meta.get("namespace")
    if not isinstance(name, str):
        return str(kind)
    return f"{kind} {shown(f'{ns}/{name}' if ns else name, quote=True)}"


def _failure(body: dict[str, Any], err: Exception) -> str:
    """`<Kind> "<name>": <why>` without repeating the kind and name when the error has them."""
    what, message = _describe(body), calico_message(err)
    if isinstance(err, ResourceError) or message.startswith(what):
        return message  # it names the resource already
    return f"{what}: {message}"


def _qualified(res: api.Resource) -> str:
    return f'"{res.namespace}/{res.name}"' if res.NAMESPACED else f'"{res.name}"'




# ---- delete -------------------------------------------------------------------------------


def _targets(filename: str | None, recursive: bool, skip_empty: bool, namespace: str | None,
             kind: str | None, names: tuple[str, ...], all_namespaces: bool = False
             ) -> list[tuple[str, str | None, str | None]]:
    """(kind, name or None for all, namespace or None) from -f or from KIND NAME..."""
    if filename:
        if kind:
            raise CtlError("give either -f FILENAME or KIND [NAME...], not both")
        return [(k, name, ns) for k, name, ns, _ in _file_targets(filename, recursive,
                                                                   skip_empty, namespace)]
    if not kind:
        raise CtlError("specify a resource type (and names) or -f FILENAME")
    info = resources.lookup(kind)
    cls = api.KINDS[info.kind]
    if cls.NAMESPACED:
        if namespace and all_namespaces:
            raise CtlError("cannot use both --namespace and --all-namespaces flags at the "
                           "same time")
        ns = None if all_namespaces else (namespace or "default")
    else:
        if namespace or all_namespaces:
            raise CtlError(f"{info.kind} is not namespaced")
        ns = None
    if any(n == "" for n in names):
        raise CtlError("resource name may not be empty")
    return [(info.kind, n, ns) for n in names] or [(info.kind, None, ns)]


def _file_targets(filename: str, recursive: bool, skip_empty: bool, namespace: str | None
                  ) -> list[tuple[str, str, str | None, str | None]]:
    """(kind, name, namespace, resourceVersion) of each document of -f."""
    out = []
    for doc in read_documents(filename, recursive, skip_empty):
        res = api.validate(_with_namespace(doc.body, namespace))
        out.append((res.KIND, res.name, res.namespace if res.NAMESPACED else None,
                    res.metadata.resourceVersion))
    return out


def delete(session: Session, filename: str | None, recursive: bool, skip_empty: bool,
           namespace: str | None, kind: str | None, names: tuple[str, ...],
           skip_not_exists: bool) -> bool:
    """Delete by name, or what -f names; a document's resourceVersion makes the delete
    conditional on it, as in Calico (a stale one fails with `update conflict`)."""
    if filename and not kind:
        targets = _file_targets(filename, recursive, skip_empty, namespace)
    else:
        targets = [(*t, None) for t in _targets(filename, recursive, skip_empty, namespace,
                                                 kind, names)]
    if any(name is None for _, name, _, _ in targets):
        raise CtlError("delete needs resource names (or -f FILENAME)")
    client = session.client
    failures, done = 0, 0
    for k, name, ns, version in targets:
        label = f'{k} "{ns}/{name}"' if ns else f'{k} "{name}"'
        try:
            guards.check_write("delete", k, name, ns)
            client.delete(k, name, ns, resource_version=version)
        except kv.KeyNotFound:
            if not skip_not_exists:
                failures += 1
                click.echo(f"Failed to delete '{k}' resource: resource does not exist: "
                           f"{identifier(k, name, ns)}", err=True)
                continue
        except kv.Unreachable:
            raise
        except kv.DatastoreError as err:
            failures += 1
            click.echo(f"Failed to delete '{k}' resource: {calico_message(err)}", err=True)
            continue
        done += 1
        if len(targets) > 1:
            click.echo(f"deleted {label}")
    kinds = {k for k, _, _, _ in targets}
    what = f"'{kinds.pop()}' resource(s)" if len(kinds) == 1 else "resource(s)"
    if failures == 0:
        click.echo(f"Successfully deleted {done} {what}")
    elif done:
        click.echo(f"Partial success: deleted {done} out of {len(targets)} {what}")
    return failures == 0


# ---- patch and label ----------------------------------------------------------------------


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _fetch(session: Session, kind: str, name: str, namespace: str | None
           ) -> tuple[api.Resource, str]:
    info = resources.lookup(kind)
    cls = api.KINDS[info.kind]
    if cls.NAMESPACED:
        ns = namespace or "default"
    elif namespace:
        raise CtlError(f"{info.kind} is not namespaced")
    else:
        ns = None
    try:
        return session.client.get(info.kind, name, ns), info.kind
    except kv.KeyNotFound:
        label = f"{info.kind}({ns}/{name})" if ns else f"{info.kind}({name})"
        raise CtlError(f"resource does not exist: {label}") from None


def patch(session: Session, kind: str, name: str, namespace: str | None,
          patch_text: str) -> bool:
    try:
        docs = api.parse_documents(patch_text, "patch")
    except api.ManifestError as err:
        raise CtlError(str(err)) from None
    if len(docs) != 1:
        raise CtlError("the patch must be one JSON or YAML object")
    current, real_kind = _fetch(session, kind, name, namespace)
    guards.check_write("patch", real_kind, name, current.namespace)
    merged = _merge_patch(current.to_dict(), docs[0])
    if merged.get("metadata", {}).get("name") != name or merged.get("kind") != real_kind:
        raise CtlError("a patch may not change the kind or the name")
    session.client.update(api.validate(merged))
    click.echo(f"Successfully patched 1 '{real_kind}' resource")
    return True


def label(session: Session, kind: str, name: str, namespace: str | None, label_arg: str,
          overwrite: bool, remove: bool) -> bool:
    current, real_kind = _fetch(session, kind, name, namespace)
    guards.check_write("label", real_kind, name, current.namespace)
    body = current.to_dict()
    labels = dict(body["metadata"].get("labels") or {})
    if remove:
        key = label_arg.split("=", 1)[0]
        if key not in labels:
            raise CtlError(f"can not remove label of {real_kind} {name}: label key {key} "
                           "is not found")
        del labels[key]
        verb = "removed"
    else:
        if "=" not in label_arg:
            raise CtlError(f"invalid label {label_arg!r}: expected key=value")
        key, value = label_arg.split("=", 1)
        if key in labels and not overwrite:
            raise CtlError(f"failed to update label of {real_kind} {name}: key {key} "
                           "already exists (use --overwrite)")
        labels[key] = value
        verb = "set"
    body["metadata"]["labels"] = labels
    session.client.update(api.validate(body))
    click.echo(f"Successfully {verb} label {key} on {real_kind} {name}")
    return True


# ---- version ------------------------------------------------------------------------------


def version(session: Session) -> bool:
    """Calico's four lines (this package has no build revision: `Git commit` is unknown);
    without ClusterInformation, Calico's error on stderr and exit 1."""
    click.echo(f"Client Version:    {CLIENT_VERSION}")
    click.echo("Git commit:        unknown")
    try:
        spec = session.client.get("ClusterInformation", "default", None).to_dict()["spec"]
    except (kv.DatastoreError, CtlError, LookupError) as err:
        why = (f"resource does not exist: {identifier('ClusterInformation', 'default')} with "
               "error: <nil>" if isinstance(err, kv.KeyNotFound) else calico_message(err))
        click.echo(f"Unable to retrieve Cluster Version or Type: {why}", err=True)
        return False
    click.echo(f"Cluster Version:   {spec.get('calicoVersion') or 'unknown'}")
    click.echo(f"Cluster Type:      {spec.get('clusterType') or 'unknown'}")
    return True
