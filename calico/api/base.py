"""The base of every projectcalico.org/v3 resource model, and how errors are reported.

A resource model is a pydantic model whose Python field names *are* Calico's JSON field names
(`ipipMode`, `notICMP`, `nodeToNodeMeshEnabled`): no alias tables to keep in step. Unknown
fields are rejected, as calicoctl's strict decoder does; a document that fails is read once more
as Go's decoder reads it (field names without regard to case, numbers in string fields as
text: `decode.py`) before it is refused.

Validation of a single value lives in small functions wrapped as annotated types (see
`checked`): they run *before* pydantic's own type handling, so a bad port gives one clear error
rather than one per member of a union. Cross-field rules live in `model_validator(mode="after")`
methods and raise `FieldError` naming the sub-field they blame.

Every failure reaches the caller as one `ValidationError` whose message names the kind, the
resource name, the field path and the bad value, e.g.

    GlobalNetworkPolicy "allow-dns": spec.ingress[0].destination.ports[1]: 70000 is not a valid port (1-65535)

Defaults: fields a user did not set stay `None` and are omitted by `to_dict()`. Calico's
server-side defaults (IPPool blockSize, policy types, ...) are filled by model validators, so a
validated resource is what Calico would store and `get` would show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict

API_VERSION = "projectcalico.org/v3"
API_GROUP = "projectcalico.org"

_MISSING: Any = object()


class ValidationError(ValueError):
    """A resource (or document) failed validation. `str(err)` is one line for a person."""

    def __init__(self, kind: str, name: str | None, path: str, reason: str) -> None:
        self.kind = kind or "resource"
        self.name = name
        self.path = path
        self.reason = reason
        kind_text = shown(self.kind)
        who = f"{kind_text} {shown(name, quote=True)}" if name else f"{kind_text} (no name)"
        where = f"{path}: " if path else ""
        super().__init__(f"{who}: {where}{reason}")


class FieldError(ValueError):
    """Raised by a validator. `field` is the path below the validated value that is to blame
    (e.g. ("ports", 1)), `value` the bad value; `reason` reads after the value:
    `FieldError("is not a valid port (1-65535)", field=("ports", 1), value=70000)`."""

    def __init__(self, reason: str, *, field: Iterable[str | int] = (), value: Any = _MISSING):
        super().__init__(reason)
        self.reason = reason
        self.field = tuple(field)
        self.value = value


def render_value(value: Any) -> str:
    """A bad value as it appears in a message: JSON, short."""
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def shown(text: str, quote: bool = False) -> str:
    """A kind, name or key in a message: as it is when printable and at most 253 characters
    (every valid name is), else as `render_value` shows a value, so a message stays one line."""
    if text.isprintable() and len(text) <= 253:
        return f'"{text}"' if quote else text
    return render_value(text)


def format_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{shown(part)}" if out else shown(str(part))
    return out


_PYDANTIC_REASONS = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "int_type": "is not an integer",
    "int_parsing": "is not an integer",
    "int_from_float": "is not an integer",
    "bool_type": "is not a boolean",
    "bool_parsing": "is not a boolean",
    "string_type": "is not a string",
    "list_type": "is not a list",
    "dict_type": "is not an object",
    "model_type": "is not an object",
    "model_attributes_type": "is not an object",
    "float_type": "is not a number",
    "float_parsing": "is not a number",
}


def _reason_for(err: dict[str, Any]) -> tuple[tuple, str]:
    """(extra loc, message) for one pydantic error."""
    loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
    ctx = err.get("ctx") or {}
    exc = ctx.get("error")
    if isinstance(exc, FieldError):
        value = err.get("input") if exc.value is _MISSING else exc.value
        loc = loc + exc.field
        return loc, f"{render_value(value)} {exc.reason}"
    if isinstance(exc, ValueError):
        return loc, f"{render_value(err.get('input'))} {exc}"
    typ = err.get("type", "")
    if typ == "missing":
        return loc, "is required"
    if typ == "extra_forbidden":
        return loc, "is not a known field"
    if typ == "literal_error":
        expected = ctx.get("expected", "")
        return loc, f"{render_value(err.get('input'))} is not one of {expected}"
    reason = _PYDANTIC_REASONS.get(typ) or err.get("msg", "is not valid").lower()
    return loc, f"{render_value(err.get('input'))} {reason}"


def _is_union_tag(part: Any) -> bool:
    # pydantic adds the union member or function name to `loc` for some errors
    return isinstance(part, str) and (
        part.startswith("function-") or part in {"int", "str", "float", "bool", "list", "dict"}
        or re.fullmatch(r"[\w-]+\[.*\]", part) is not None
    )


def convert_error(exc: pydantic.ValidationError, kind: str, name: str | None,
                  prefix: tuple = ()) -> ValidationError:
    first = exc.errors(include_url=False)[0]
    loc, reason = _reason_for(first)
    return ValidationError(kind, name, format_path(prefix + loc), reason)


def checked(base: Any, fn: Callable[[Any], Any]) -> Any:
    """An annotated type: `fn` validates (and may normalise) the raw value, raising
    ValueError / FieldError with a reason; pydantic then checks it is a `base`."""
    return Annotated[base, BeforeValidator(fn)]


class CalicoModel(BaseModel):
    """Base for every part of a resource: Calico's JSON names, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=False,
                              protected_namespaces=(), arbitrary_types_allowed=False)

    def to_dict(self) -> dict[str, Any]:
        """Calico's JSON form: unset (None) fields omitted."""
        return self.model_dump(mode="json", exclude_none=True)


# ---- names, labels, annotations (shared by metadata and by many specs) -------------------

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_dns1123_subdomain(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("is not a valid name")
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(
            "is not a valid name: lower case alphanumeric characters, '-' or '.', "
            "starting and ending with an alphanumeric character (at most 253)")
    return value


def check_dns1123_label(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(
            "is not a valid name: lower case alphanumeric characters or '-', "
            "starting and ending with an alphanumeric character (at most 63)")
    return value


def check_label_key(key: Any) -> str:
    """A Kubernetes qualified name, optionally with a DNS subdomain prefix: `prefix/name`."""
    if not isinstance(key, str) or not key:
        raise FieldError("is not a valid label key", value=key)
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        raise FieldError("is not a valid label key: the prefix must be a DNS subdomain", value=key)
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise FieldError(
            "is not a valid label key: at most 63 alphanumeric characters, '-', '_' or '.', "
            "starting and ending with an alphanumeric character", value=key)
    return key


def check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return labels
    if not isinstance(labels, dict):
        raise ValueError("is not a map of labels")
    for key, value in labels.items():
        try:
            check_label_key(key)
        except FieldError as err:
            raise FieldError(err.reason, field=(key,), value=key) from None
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise FieldError(
                "is not a valid label value: at most 63 alphanumeric characters, '-', '_' or '.',"
                " starting and ending with an alphanumeric character", field=(key,), value=value)
    return labels


def check_annotations(annotations: Any) -> dict[str, str]:
    if annotations is None:
        return annotations
    if not isinstance(annotations, dict):
        raise ValueError("is not a map of annotations")
    total = 0
    for key, value in annotations.items():
        try:
            # Kubernetes' ValidateAnnotations checks the key lower-cased: "Example.COM/Key"
            # is accepted (Calico's validator uses it), unlike a label key.
            check_label_key(key.lower() if isinstance(key, str) else key)
        except FieldError as err:
            raise FieldError(err.reason.replace("label", "annotation"), field=(key,),
                             value=key) from None
        if not isinstance(value, str):
            raise FieldError("is not a string", field=(key,), value=value)
        total += len(key) + len(value)
    if total > 256 * 1024:
        raise ValueError("annotations are larger than 256 KiB")
    return annotations


Labels = checked(dict[str, str] | None, check_labels)
Annotations = checked(dict[str, str] | None, check_annotations)


class ObjectMeta(CalicoModel):
    """Kubernetes-style metadata, as Calico keeps it. `name` is validated per kind by the
    resource class (`Resource.check_name`)."""

    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    selfLink: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    deletionGracePeriodSeconds: int | None = None
    labels: Labels = None
    annotations: Annotations = None
    ownerReferences: list[dict[str, Any]] | None = None
    finalizers: list[str] | None = None
    managedFields: list[dict[str, Any]] | None = None


# ---- resources -----------------------------------------------------------------------------

KINDS: dict[str, type[Resource]] = {}


class Resource(CalicoModel):
    """A projectcalico.org/v3 resource. Subclasses declare `spec` (and `status` where Calico
    has one) and register with `class IPPool(Resource, kind="IPPool", plural="ippools")`."""

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = False

    apiVersion: str = API_VERSION
    kind: str = ""
    metadata: ObjectMeta = ObjectMeta()

    def __init_subclass__(cls, *, kind: str = "", plural: str = "", namespaced: bool = False,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            cls.KIND, cls.PLURAL, cls.NAMESPACED = kind, plural, namespaced
            KINDS[kind] = cls

    @classmethod
    def check_name(cls, name: str) -> None:
        """Raise ValueError if `name` is not valid for this kind. Default: a DNS subdomain."""
        check_dns1123_subdomain(name)

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace

    def key(self) -> str:
        """The datastore key: /calico/resources/v3/projectcalico.org/<plural>/[<ns>/]<name>."""
        return resource_key(self.KIND, self.name, self.namespace)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["kind"] = self.KIND
        out["apiVersion"] = API_VERSION
        return out


def resource_key(kind: str, name: str, namespace: str | None = None) -> str:
    cls = KINDS[kind]
    ns = f"{namespace}/" if cls.NAMESPACED else ""
    return f"/calico/resources/v3/{API_GROUP}/{cls.PLURAL}/{ns}{name}"


# Metadata Calico does not keep: dropped from what is written, not stored.
DROPPED_METADATA = ("selfLink", "generation", "finalizers")
_TOP_FIELDS = ("apiVersion", "kind", "metadata")
_META_FIELDS = ("name", "namespace")


def _fold_keys(doc: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`doc` with keys that match one of `names` without regard to case renamed to it (Go's
    encoding/json rule); the same dict when every name is present or nothing matches."""
    if all(n in doc for n in names):
        return doc
    wanted = {n.lower(): n for n in names if n not in doc}
    out = {}
    for key, value in doc.items():
        out[wanted.get(key.lower(), key) if isinstance(key, str) else key] = value
    return out


def _scalar_text(value: Any) -> Any:
    from .decode import go_text
    return go_text(value) if isinstance(value, int | float) else value


def _kept(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and any(k in meta for k in DROPPED_METADATA):
        meta = {k: v for k, v in meta.items() if k not in DROPPED_METADATA}
        return {**obj, "metadata": meta}
    return obj


def validate(obj: Any) -> Resource:
    """Validate one resource document (a dict in Calico's JSON form) and return the model,
    with Calico's defaults filled in. Raises ValidationError naming kind, name, field and value.

    A document that fails as written is read once more as Calico's Go decoder reads it
    (`calico.api.decode`: field names without regard to case, YAML numbers and booleans
    in string fields as their text) before it is refused. Metadata Calico does not keep
    (DROPPED_METADATA) is dropped."""
    if not isinstance(obj, dict):
        raise ValidationError("resource", None, "", f"{render_value(obj)} is not an object")
    obj = _fold_keys(obj, _TOP_FIELDS)
    kind = obj.get("kind")
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        folded = _fold_keys(meta, _META_FIELDS)
        named = {k: _scalar_text(folded[k]) for k in _META_FIELDS if k in folded}
        if folded is not meta or any(named[k] is not folded[k] for k in named):
            meta = {**folded, **named}
            obj = {**obj, "metadata": meta}
    name = meta.get("name") if isinstance(meta, dict) else None
    name = name if isinstance(name, str) else None
    api_version = obj.get("apiVersion")
    if api_version != API_VERSION:
        raise ValidationError(kind if isinstance(kind, str) else "resource", name, "apiVersion",
                              f"{render_value(api_version)} is not supported "
                              f"(expected \"{API_VERSION}\")")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValidationError("resource", name, "kind",
                              f"{render_value(kind)} is not a known projectcalico.org/v3 kind")
    cls = KINDS[kind]
    if not isinstance(meta, dict):
        raise ValidationError(kind, None, "metadata", "is required")
    if not name:
        raise ValidationError(kind, None, "metadata.name", "is required")
    try:
        cls.check_name(name)
    except FieldError as err:
        raise ValidationError(kind, name, "metadata.name",
                              f"{render_value(name)} {err.reason}") from None
    except ValueError as err:
        raise ValidationError(kind, name, "metadata.name", f"{render_value(name)} {err}") from None
    obj = _with_namespace(cls, obj, meta, name)
    try:
        return cls.model_validate(_kept(obj))
    except pydantic.ValidationError as exc:
        first = exc
    from .decode import conform
    conformed = conform(cls, obj)
    if conformed == obj:
        raise convert_error(first, kind, name) from None
    try:
        return cls.model_validate(_kept(conformed))
    except pydantic.ValidationError as exc:
        raise convert_error(exc, kind, name) from None


def _with_namespace(cls: type[Resource], obj: dict[str, Any], meta: dict[str, Any],
                    name: str) -> dict[str, Any]:
    """`obj` with a namespaced kind's namespace defaulted ("default") and checked; a
    namespace on a kind that has none refused."""
    kind = cls.KIND
    namespace = meta.get("namespace")
    if cls.NAMESPACED:
        if namespace in (None, ""):
            return {**obj, "metadata": {**meta, "namespace": "default"}}
        try:
            check_dns1123_label(namespace)
        except ValueError as err:
            raise ValidationError(kind, name, "metadata.namespace",
                                  f"{render_value(namespace)} {err}") from None
    elif namespace not in (None, ""):
        raise ValidationError(kind, name, "metadata.namespace",
                              f"{render_value(namespace)}: {kind} is not namespaced")
    return obj
