"""Output encodings exactly as Calico's (Go) calicoctl writes them, so scripts that parse or diff
its output get the same bytes from us.

- `to_yaml(obj)`: what `github.com/projectcalico/go-yaml-wrapper` (JSON, then gopkg.in/yaml.v2)
  prints: every mapping's keys in yaml.v2's order (letters after other runes, digit runs
  compared as numbers), and a string double-quoted exactly when yaml.v2 would read it back
  as something else (`"123"`, `"true"`, `""`, `"2024-01-02T03:04:05Z"`, `"80:90"`); strings
  with a newline in literal style; a long string folded at a space past column 80, as
  yaml.v2's emitter (a port of libyaml's, which PyYAML's C dumper is) folds it.
- `to_json(obj)`: `json.MarshalIndent(obj, "", "  ")`: struct fields in the Go struct's order
  (`kind`, `apiVersion`, `metadata`, `spec`; a List: `kind`, `apiVersion`, `metadata`,
  `items`), map keys sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped as Go escapes them,
  other non-ASCII text as UTF-8, whole floats without a fraction.
- `go_value(v)`: a value as Go's `fmt` `%v` prints it inside a template (`true`, `100`,
  `1e+06`, `<nil>`, `[a b]`, `map[k:v]`).

Inputs are plain JSON-shaped Python values (dicts, lists, str, int, float, bool, None), as
`Resource.to_dict()` gives them; `order_resource` puts a resource dict into Go's field order.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

import yaml

from calico.api import decode

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# ObjectMeta's fields in the order of the Go struct (k8s.io/apimachinery ObjectMeta).
_META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
               "generation", "creationTimestamp", "deletionTimestamp",
               "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
               "finalizers", "managedFields")
# Fields that are Go maps (keys sorted by encoding/json), not structs.
_MAP_FIELDS = frozenset(("labels", "annotations", "labelsToApply"))
# Fields holding Go structs that our models keep as plain dicts (FelixConfiguration's typed
# parameters): their keys in the Go struct's order, whatever order they came in.
_STRUCT_ORDER = {
    "routeTableRange": ("min", "max"), "routeTableRanges": ("min", "max"),
    "failsafeInboundHostPorts": ("protocol", "port", "net"),
    "failsafeOutboundHostPorts": ("protocol", "port", "net"),
    "healthTimeoutOverrides": ("name", "timeout"),
}


# ---- Go's field order ---------------------------------------------------------------------


def order_resource(doc: dict[str, Any]) -> dict[str, Any]:
    """A resource dict with its keys in Go's struct order: kind, apiVersion, metadata, spec,
    the rest as given; metadata in ObjectMeta's order; Go maps with sorted keys."""
    out: dict[str, Any] = {}
    for key in ("kind", "apiVersion"):
        if key in doc:
            out[key] = doc[key]
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: _sorted_maps(k, meta[k]) for k in _META_ORDER if k in meta}
        out["metadata"].update({k: v for k, v in meta.items() if k not in out["metadata"]})
    for key, value in doc.items():
        if key not in out:
            out[key] = _sorted_maps(key, value)
    return out


def _sorted_maps(key: str, value: Any) -> Any:
    if key in _MAP_FIELDS and isinstance(value, dict):
        return {k: value[k] for k in sorted(value)}
    if key in _STRUCT_ORDER:
        return _in_struct_order(_STRUCT_ORDER[key], value)
    if isinstance(value, dict):
        return {k: _sorted_maps(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sorted_maps("", v) for v in value]
    return value


def _in_struct_order(order: tuple[str, ...], value: Any) -> Any:
    if isinstance(value, list):
        return [_in_struct_order(order, v) for v in value]
    if not isinstance(value, dict):
        return value
    rank = {k: i for i, k in enumerate(order)}
    return {k: value[k] for k in sorted(value, key=lambda k: (rank.get(k, len(order)), k))}


def list_object(kind: str, items: list[dict[str, Any]], revision: str) -> dict[str, Any]:
    """A `<Kind>List` as Calico's client returns it (JSON field order)."""
    meta = {"resourceVersion": revision} if revision else {}
    return {"kind": f"{kind}List", "apiVersion": "projectcalico.org/v3", "metadata": meta,
            "items": items}


# ---- JSON -----------------------------------------------------------------------------------

_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                    "\u2029": "\\u2029"}
_GO_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def _go_json_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _go_json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_json_numbers(v) for v in value]
    return value


def to_json(obj: Any) -> str:
    """`json.MarshalIndent(obj, "", "  ")` plus the newline calicoctl prints after it."""
    text = json.dumps(_go_json_numbers(obj), indent=2, ensure_ascii=False)
    return _GO_JSON_ESCAPE_RE.sub(lambda m: _GO_JSON_ESCAPES[m.group(0)], text) + "\n"


# ---- YAML (gopkg.in/yaml.v2) ---------------------------------------------------------------

_V2_SPECIAL = frozenset((
    "", "~", "null", "Null", "NULL", "<<",
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
    "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
    ".nan", ".NaN", ".NAN"))
_V2_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)$")
_V2_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_V2_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
                           r"(([Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?"
                           r"(Z|[-+][0-9]{1,2}(:[0-9]{2})?)?)"
                           r"|( [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?))?$")
_V2_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


def v2_resolves_to_non_string(s: str) -> bool:
    """Whether yaml.v2 would read `s`, written plain, as something other than a string."""
    if s in _V2_SPECIAL or _V2_BASE60.match(s):
        return True
    first = s[0]
    if first == ".":
        return bool(_V2_FLOAT.match(s))
    if first not in "+-0123456789":
        return False
    plain = s.replace("_", "")
    if _V2_INT.match(plain) or _V2_FLOAT.match(plain):
        return True
    return first.isdigit() and bool(_V2_TIMESTAMP.match(s))


@functools.lru_cache(maxsize=4096)
def _v2_key(key: Any) -> tuple[tuple[int, Any], ...]:
    """A sort key giving yaml.v2's keyList order for string keys: at the first differing rune,
    two letters compare as runes, a non-letter sorts before a letter, and runs of digits
    compare by value (then by length). Cached: the same field names recur in every object."""
    s = str(key)
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch.isdigit():
            j = i
            while j < len(s) and s[j].isdigit():
                j += 1
            out.append((0, (int(s[i:j]), j - i, s[i:j])))
            i = j
        else:
            out.append((1 if ch.isalpha() else 0, (-1, 0, ch) if not ch.isalpha() else ch))
            i += 1
    return tuple(out)


def _v2_sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _v2_sorted(value[k]) for k in sorted(value, key=_v2_key)}
    if isinstance(value, list):
        return [_v2_sorted(v) for v in value]
    return value


class _GoYAMLDumper(_Dumper):  # type: ignore[misc, valid-type]
    pass


def _represent_str(dumper: Any, data: str) -> Any:
    if "\n" in data:
        style = "|"
    elif v2_resolves_to_non_string(data):
        style = '"'
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_float(dumper: Any, data: float) -> Any:
    """A float as yaml.v2 writes what came through JSON: whole numbers as integers, the rest
    in Go's shortest form, always plain (tagged with whatever the plain text reads back as,
    so no explicit tag is written)."""
    if data.is_integer() and abs(data) < 1e21:
        return dumper.represent_scalar("tag:yaml.org,2002:int", str(int(data)))
    text = go_float(data, yaml_form=True)
    return dumper.represent_scalar(dumper.resolve(yaml.ScalarNode, text, (True, False)), text)


_GoYAMLDumper.add_representer(str, _represent_str)
_GoYAMLDumper.add_representer(float, _represent_float)


def to_yaml(obj: Any) -> str:
    # libyaml's emitter, of which yaml.v2's is a port, with the same defaults (a long string
    # is folded at spaces past column 80, as yaml.v2 v2.4 does without FutureLineWrap).
    return yaml.dump(_v2_sorted(obj), Dumper=_GoYAMLDumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True)


# ---- fmt %v --------------------------------------------------------------------------------


def go_float(value: float, yaml_form: bool = False) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64), as fmt's %v prints a float64 and yaml.v2 writes
    one (`yaml_form`: YAML's spellings of infinity and NaN)."""
    if yaml_form and math.isnan(value):
        return ".nan"
    if yaml_form and math.isinf(value):
        return "-.inf" if value < 0 else ".inf"
    return decode.go_float(value)


def go_value(value: Any) -> str:
    """`value` as Go's fmt prints it with %v (what a template's {{.field}} writes)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    return str(value)
