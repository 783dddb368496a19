"""Bad resources made from good ones: hypothesis strategies that take a valid fixture manifest
(tests/fixtures/manifests/**) and break it at one place.

A `Mutant` is the broken document plus what was done to it (`op`, `path`), so a failing
example reads as "BGPPeer "tor-rack1": spec.asNumber <- out_of_range 4294967296".

Operations, each applied at one path drawn from every path of the document:

- `wrong_type`     the value replaced by one of another JSON type (a list for a string, ...)
- `out_of_range`   a number that no field accepts everywhere (-1, 65536, 2**63, 1e308, NaN)
- `bad_cidr`       an address/CIDR that is not one (10.0.0.0/33, 256.1.1.1, fd00::/129)
- `bad_selector`   a selector that does not parse (`a ==`, `has(`, `a === 'b'`)
- `unknown_field`  an extra key in an object (`x-unknown-...`)
- `huge_string`    a string of 254 characters to 1 MB
- `unicode`        text from every Unicode category but surrogates (RTL, zero-width, NUL)
- `nesting`        the value wrapped in up to 60 lists / objects
- `missing`        the key deleted
- `null`           the value set to null

`MUST_REJECT` names the operations after which the document can never be valid (at paths
outside free-form maps such as labels, annotations and ownerReferences).
"""

from __future__ import annotations

import copy
import glob
import math
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from calico import api

MANIFESTS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "manifests")

Path = tuple[str | int, ...]


def fixture_documents() -> list[dict[str, Any]]:
    """Every valid document of the fixture manifests (List kinds expanded), with the
    defaults-free form the user wrote."""
    docs = []
    for path in sorted(glob.glob(os.path.join(MANIFESTS, "**", "*.yaml"), recursive=True)):
        with open(path) as f:
            docs.extend(api.parse_documents(f.read(), path))
    for doc in docs:
        api.validate(doc)  # a fixture that is not valid is a broken test, not a finding
    return docs


DOCUMENTS = fixture_documents()

# Maps whose keys are data, not field names: an extra key there can be valid.
FREEFORM = {"labels", "annotations", "labelsToApply", "ownerReferences", "managedFields",
            "healthTimeoutOverrides", "nodeSelector", "namespaceSelector"}

BAD_CIDRS = [
    "10.0.0.0/33", "256.1.1.1/24", "10.0.0/8", "fd00::/129", "fd00:::1/64", "10.0.0.0/8/8",
    "10.0.0.0/-1", "0x0a000000/8", "10.0.0.0 /8", "", "1.2.3.4.5", "::ffff:10.0.0.0/200",
    "fe80::1%eth0/64", "10.0.0.0/", "/24", "localhost", "10.0.0.1-10.0.0.9",
]
BAD_SELECTORS = [
    "a ==", "has(", "a == 'b", "a in {", "&&", "!(", "a === 'b'", "all(", "a == 'b' ||",
    "(a == 'b'", "a == 'b')", "has(a", "a not {'x'}", "a == b", "global(x)", "a contains",
    "a starts 'x'", "{}", "a in {'x',}", "a == 'b' && && c == 'd'", "!", "()", "all() all()",
]
BAD_NUMBERS = [-1, -65536, 65536, 65537, 2**31, 2**32, 2**63, -(2**63) - 1, 10**30, 10**400,
               0.5, -0.0, 1e308, -1e308, math.inf, -math.inf, math.nan]
WEIRD_KEYS = ["x-unknown", "x-unknown-field", "x-unknown.with.dots", "x-unknown/slash",
              "x-unknown \u202e rtl", "x-unknown\u0000nul"]

OPS = ("wrong_type", "out_of_range", "bad_cidr", "bad_selector", "unknown_field",
       "huge_string", "unicode", "nesting", "missing", "null")
MUST_REJECT = {"unknown_field"}


@dataclass(frozen=True)
class Mutant:
    doc: dict[str, Any]
    source: dict[str, Any]  # the valid document it came from
    op: str
    path: Path

    def describe(self) -> str:
        meta = self.source.get("metadata") or {}
        return f'{self.source.get("kind")} "{meta.get("name")}": {format_path(self.path)} <- {self.op}'

    @property
    def under_freeform(self) -> bool:
        return any(isinstance(p, str) and p in FREEFORM for p in self.path)


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path below `value` (objects' keys and lists' indexes), depth first."""
    out: list[Path] = []
    if isinstance(value, dict):
        for key, child in value.items():
            out.append(prefix + (key,))
            out.extend(paths(child, prefix + (key,)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.append(prefix + (i,))
            out.extend(paths(child, prefix + (i,)))
    return out


def get_at(doc: Any, path: Path) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def set_at(doc: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    get_at(out, path[:-1])[path[-1]] = value
    return out


def delete_at(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    del get_at(out, path[:-1])[path[-1]]
    return out


# ---- values ----------------------------------------------------------------------------------

unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), unicode_text)


def _other_type(value: Any) -> st.SearchStrategy[Any]:
    """A value of a JSON type other than `value`'s."""
    options: list[st.SearchStrategy[Any]] = []
    if not isinstance(value, str):
        options.append(st.sampled_from(["", "x", "true", "80", "10.0.0.0/8", "all()"]))
    if isinstance(value, bool) or not isinstance(value, int | float):
        options.append(st.integers(-5, 70000))
    if not isinstance(value, bool):
        options.append(st.booleans())
    if not isinstance(value, list):
        options.append(st.lists(scalars, max_size=3))
    if not isinstance(value, dict):
        options.append(st.dictionaries(st.sampled_from(["a", "name", "x"]), scalars,
                                       max_size=2))
    return st.one_of(options)


def _nested(value: Any) -> st.SearchStrategy[Any]:
    def wrap(shape: list[str]) -> Any:
        out = value
        for s in shape:
            out = [out] if s == "list" else {"x": out}
        return out
    return st.lists(st.sampled_from(["list", "dict"]), min_size=1, max_size=60).map(wrap)


HUGE_SIZES = (254, 1025, 65_537, 1_000_000)


def _huge(max_size: int) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["a", "é", "\u202e", "0", "-", "\u4e2d"]),
                     st.sampled_from([n for n in HUGE_SIZES if n <= max_size])
                     ).map(lambda t: t[0] * t[1])


@st.composite
def mutants(draw: st.DrawFn, docs: list[dict[str, Any]] | None = None,
            ops: tuple[str, ...] = OPS, huge_max: int = 1_000_000) -> Mutant:
    """One broken document; `huge_max` caps `huge_string` (PyYAML reads about 1 MB/s)."""
    source = draw(st.sampled_from(docs or DOCUMENTS))
    op = draw(st.sampled_from(ops))
    all_paths = paths(source)
    if op == "unknown_field":
        objects = [()] + [p for p in all_paths if isinstance(get_at(source, p), dict)]
        where = draw(st.sampled_from(objects))
        key = draw(st.one_of(st.sampled_from(WEIRD_KEYS),
                             unicode_text.map(lambda t: "x-unknown-" + t)))
        value = draw(scalars)
        doc = copy.deepcopy(source)
        get_at(doc, where)[key] = value
        return Mutant(doc, source, op, where + (key,))
    path = draw(st.sampled_from(all_paths))
    old = get_at(source, path)
    if op == "missing":
        return Mutant(delete_at(source, path), source, op, path)
    value: Any
    if op == "wrong_type":
        value = draw(_other_type(old))
    elif op == "out_of_range":
        value = draw(st.sampled_from(BAD_NUMBERS))
    elif op == "bad_cidr":
        value = draw(st.sampled_from(BAD_CIDRS))
        value = [value] if isinstance(old, list) else value
    elif op == "bad_selector":
        value = draw(st.sampled_from(BAD_SELECTORS))
    elif op == "huge_string":
        value = draw(_huge(huge_max))
    elif op == "unicode":
        value = draw(unicode_text)
    elif op == "nesting":
        value = draw(_nested(old))
    else:  # null
        value = None
    return Mutant(set_at(source, path, value), source, op, path)
