"""Reading and writing manifests: YAML or JSON, multi-document, `List` kinds.

Parsing and printing run in libyaml (PyYAML's CSafeLoader / CSafeDumper); only the resolvers,
the constructors and the representers are Python. The loader's resolvers are the safe
loader's minus two YAML 1.1 rules that Calico's (Go) decoder does not have and that would
silently corrupt manifests: sexagesimal numbers (`80:90`, a port range, would load as the
integer 4890) and timestamps (`creationTimestamp` must stay a string).

A key given twice in one mapping fails the document ("key "order" already set in map"), as
Calico's strict decoder fails it; PyYAML alone would keep the last.

Aliases: libyaml shares the node an alias names, so a "billion laughs" manifest loads as a few
hundred shared objects but expands to billions of values the moment anything walks it. After
loading, `_check_expansion` counts the values each document expands to (each shared object
once, memoised), and refuses a document that expands to more values than its text has bytes,
beyond a floor of MAX_EXPANDED_FLOOR: no manifest without aliases can do that. It costs one
pass over the distinct objects and refuses a 500-byte bomb in microseconds, with bounded
memory. (Go's yaml.v2 refuses "excessive aliasing" by a ratio of the same kind.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from .base import ValidationError, render_value, validate

_INT = re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""", re.X)
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)


MAX_EXPANDED_FLOOR = 100_000
_MERGE = "tag:yaml.org,2002:merge"
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        """A key given twice in one mapping is an error, as in Calico's strict decoder (YAML
        merge keys `<<` may still be overridden)."""
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                    continue
                if (key_node.tag, key_node.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f'key "{key_node.value}" already set in map',
                        key_node.start_mark)
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                           "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class ManifestError(ValueError):
    """The text is not valid YAML/JSON, or a document is not a resource object."""


def parse_documents(text: str, source: str = "input") -> list[dict[str, Any]]:
    """Raw documents from YAML or JSON text, with `List` / `<Kind>List` expanded into items.
    Empty documents are dropped. Raises ManifestError on a syntax error."""
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
        _check_expansion(docs, len(text), source)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())  # one line
        if "maximum nesting depth" in problem:  # libyaml's own limit (1,000 levels)
            problem = "nested too deeply"
        raise ManifestError(f"{source}: invalid YAML/JSON{where}: {problem}") from None
    except RecursionError:
        raise ManifestError(f"{source}: invalid YAML/JSON: nested too deeply") from None
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        out.extend(_expand(doc, source))
    return out


def _check_expansion(docs: list[Any], text_length: int, source: str) -> None:
    """Refuse documents whose aliases expand them beyond what their text could spell out."""
    limit = max(MAX_EXPANDED_FLOOR, text_length)
    sizes: dict[int, int] = {}

    def size(obj: Any) -> int:
        if isinstance(obj, dict):
            items: Any = [v for kv in obj.items() for v in kv]
        elif isinstance(obj, list):
            items = obj
        else:
            return 1
        known = sizes.get(id(obj))
        if known is not None:
            return known
        sizes[id(obj)] = limit + 1  # a self-referencing alias counts as too big
        total = 1
        for item in items:
            total += size(item)
            if total > limit:
                break
        sizes[id(obj)] = total
        return total

    total = 0
    for doc in docs:
        total += size(doc)
        if total > limit:
            raise ManifestError(
                f"{source}: refused: its aliases expand {text_length} bytes of YAML to more "
                f"than {limit} values (excessive aliasing)")


def _expand(doc: Any, source: str) -> list[dict[str, Any]]:
    if isinstance(doc, list):
        return [d for item in doc for d in _expand(item, source)]
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: {render_value(doc)} is not a resource object")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise ManifestError(f"{source}: {kind}.items is not a list")
        item_kind = kind[: -len("List")]
        expanded = []
        for item in items:
            if isinstance(item, dict) and item_kind and "kind" not in item:
                item = {"kind": item_kind, **item}
            if isinstance(item, dict) and "apiVersion" not in item and "apiVersion" in doc:
                item = {"apiVersion": doc["apiVersion"], **item}
            expanded.extend(_expand(item, source))
        return expanded
    return [doc]


def load(text: str, source: str = "input") -> list:
    """Validated resources from YAML or JSON text (multi-document, List kinds).
    Raises ManifestError or ValidationError for the first bad document."""
    return [validate(doc) for doc in parse_documents(text, source)]


def dump_yaml(resources: list, list_kind: bool | None = None) -> str:
    """YAML as calicoctl prints it: one document, or a `<Kind>List` for several."""
    dicts = [r.to_dict() if hasattr(r, "to_dict") else r for r in resources]
    if list_kind is None:
        list_kind = len(dicts) != 1
    body: Any = dicts[0] if not list_kind else _as_list(dicts)
    return yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def dump_json(resources: list, list_kind: bool | None = None) -> str:
    dicts = [r.to_dict() if hasattr(r, "to_dict") else r for r in resources]
    if list_kind is None:
        list_kind = len(dicts) != 1
    body: Any = dicts[0] if not list_kind else _as_list(dicts)
    return json.dumps(body, indent=2) + "\n"


def _as_list(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = {d.get("kind") for d in dicts}
    kind = f"{kinds.pop()}List" if len(kinds) == 1 else "List"
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "items": dicts,
            "metadata": {"resourceVersion": ""}}


__all__ = ["ManifestError", "ValidationError", "dump_json", "dump_yaml", "load",
           "parse_documents"]
