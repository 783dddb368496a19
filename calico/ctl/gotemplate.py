"""The part of Go's text/template that people write for `calicoctl get -o go-template=...`.

Supported: text; `{{.}}` and field paths (`.metadata.name`, `.spec.ipNetworks`); string
(`"..."`, raw `` `...` ``), number and boolean literals; `{{if X}}...{{else if Y}}...{{else}}
...{{end}}`; `{{range X}}...{{else}}...{{end}}` (inside, `.` is the element); `{{with X}}`;
`$` (the top-level data); trim markers `{{-` / `-}}`; comments `{{/* */}}`; and the functions
`join`, `joinAndTruncate` (Calico's), `eq`, `ne`, `not`, `and`, `or`, `len`, `index`,
`printf` (verbs %s %v %d %q %t %f with width and precision). Anything
else (variables, pipes, parentheses, other functions) is refused with an error naming it.

Field names match the JSON names, case-insensitively, so templates written against Calico's
Go structs work too: `.ObjectMeta.Name`, `.Spec.CIDR`, `.Items`, and a field of the metadata
named directly on a resource (`.Name`) as Go's embedded ObjectMeta allows. Values print as
Go's %v prints them; a field that is absent prints `<no value>` (Go's rule for a missing map
key) and compares equal to "" in `eq`/`ne` (as an unset Go string field does).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .goformat import go_value
from .tables import join_and_truncate


class TemplateError(ValueError):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\$?[.\w]+|\S)')


@dataclass
class Node:
    kind: str                       # text | value | if | range | with
    text: str = ""
    args: list[str] = field(default_factory=list)
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def parse(template: str) -> list[Node]:
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        before = template[pos:m.start()]
        if m.group(1):
            before = before.rstrip()
        pieces.append(("text", before))
        pieces.append(("action", m.group(2).strip()))
        pos = m.end()
        if m.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
    pieces.append(("text", template[pos:]))
    nodes, stop, _ = _parse_block(pieces, 0)
    if stop is not None:
        raise TemplateError(f"unexpected {{{{{stop}}}}}")
    return nodes


def _parse_block(pieces: list[tuple[str, str]], i: int
                 ) -> tuple[list[Node], str | None, int]:
    """Nodes until `end`/`else` (returned as the stop word) or the end of input."""
    out: list[Node] = []
    while i < len(pieces):
        kind, text = pieces[i]
        i += 1
        if kind == "text":
            if text:
                out.append(Node("text", text=text))
            continue
        if text.startswith("/*"):
            continue
        words = _tokens(text)
        head = words[0] if words else ""
        if head in ("end", "else"):
            return out, text, i
        if head in ("if", "range", "with"):
            node, i = _parse_control(head, words[1:], pieces, i)
            out.append(node)
        else:
            out.append(Node("value", args=words))
    return out, None, i


def _parse_control(head: str, args: list[str], pieces: list[tuple[str, str]], i: int
                   ) -> tuple[Node, int]:
    if not args:
        raise TemplateError(f"missing value for {head}")
    node = Node(head, args=args)
    node.body, stop, i = _parse_block(pieces, i)
    if stop is None:
        raise TemplateError(f"unexpected EOF: {{{{{head}}}}} without {{{{end}}}}")
    if stop.startswith("else"):
        rest = _tokens(stop)[1:]
        if rest and rest[0] == "if" and head == "if":
            inner, i = _parse_control("if", rest[1:], pieces, i)
            node.orelse = [inner]
            return node, i
        if rest:
            raise TemplateError(f"unsupported {{{{{stop}}}}}")
        node.orelse, stop, i = _parse_block(pieces, i)
        if stop != "end":
            raise TemplateError(f"expected {{{{end}}}} to close {{{{{head}}}}}")
    return node, i


def _tokens(text: str) -> list[str]:
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            break
        tok = m.group(1)
        if tok in ("|", "(", ")", ":=", "=") or (tok.startswith("$") and tok not in ("$",)
                                                  and not tok.startswith("$.")):
            raise TemplateError(f"unsupported template syntax {tok!r} in {{{{{text}}}}} "
                                "(supported: fields, if, range, with, literals and "
                                "join, joinAndTruncate, eq, ne, not, and, or, len, index, printf)")
        out.append(tok)
        pos = m.end()
    return out


# ---- evaluation -----------------------------------------------------------------------------


class TopLevel(list):
    """Calico runs the template on the list of printed objects; field access on it goes to
    its only object, so kubectl-style `{{range .items}}` works on a listing too."""


def _field(value: Any, name: str) -> Any:
    if isinstance(value, TopLevel):
        if len(value) != 1:
            raise TemplateError(f"can't evaluate field {name}: the data is a list of "
                                f"{len(value)} objects (use {{{{range .}}}})")
        value = value[0]
    if not isinstance(value, dict):
        raise TemplateError(f"can't evaluate field {name} in type {_type(value)}")
    if name in value:
        return value[name]
    lower = name.lower()
    for key, v in value.items():
        if key.lower() == lower:
            return v
    if lower == "objectmeta" and "metadata" in value:
        return value["metadata"]
    meta = value.get("metadata")
    if isinstance(meta, dict) and "kind" in value:
        for key, v in meta.items():
            if key.lower() == lower:
                return v
    return _MISSING


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


_MISSING = _Missing()


def _type(value: Any) -> str:
    return {str: "string", bool: "bool", int: "int", float: "float64", list: "slice",
            dict: "map"}.get(type(value), type(value).__name__)


def _truth(value: Any) -> bool:
    return value is not _MISSING and bool(value)


def _literal(tok: str, dot: Any, top: Any) -> Any:
    if tok.startswith('"'):
        try:
            return json.loads(tok)
        except ValueError:
            raise TemplateError(f"unsupported escape in string {tok}") from None
    if tok.startswith("`"):
        return tok[1:-1]
    if tok in ("true", "false"):
        return tok == "true"
    if tok == "nil":
        return None
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    if re.fullmatch(r"-?\d*\.\d+", tok):
        return float(tok)
    if tok.startswith(".") or tok.startswith("$"):
        cur = top if tok.startswith("$") else dot
        for part in tok.lstrip("$").split(".")[1:]:
            if part:
                cur = _field(cur, part)
        return cur
    raise TemplateError(f'function "{tok}" not defined')


def _call(args: list[str], dot: Any, top: Any) -> Any:
    fn, rest = args[0], [_literal(a, dot, top) for a in args[1:]]
    if fn not in _FUNCS:
        if len(args) == 1:
            return _literal(fn, dot, top)
        raise TemplateError(f'function "{fn}" not defined' if not fn.startswith((".", "$"))
                            else f"can't give argument to non-function {fn}")
    try:
        return _FUNCS[fn](*rest)
    except TypeError as err:
        raise TemplateError(f"wrong arguments for {fn}: {err}") from None


def _same(a: Any, b: Any) -> bool:
    """`eq`: an absent field compares as the empty string (Calico's Go struct fields are
    never absent, so its own templates compare them with "")."""
    a = "" if a is _MISSING and isinstance(b, str) else a
    b = "" if b is _MISSING and isinstance(a, str) else b
    return a == b


_NO_ARG = object()
_VERB = re.compile(r"%([-+ 0]*)(\d+)?(?:\.(\d+))?([svdqtf%])")


def _printf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %s %v %d %q %t %f %% (flags - + 0,
    width, precision)."""
    values = iter(args)

    def one(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            return "%"
        value = next(values, _NO_ARG)
        if value is _NO_ARG:
            return f"%!{verb}(MISSING)"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if verb == "d" and number and float(value).is_integer():
            text = f"{int(value):{'+' if '+' in flags else ''}d}"
        elif verb == "f" and number:
            text = f"{value:.{int(prec) if prec else 6}f}"
        elif verb == "q" and isinstance(value, str):
            text = json.dumps(value, ensure_ascii=False)
        elif verb in "sv" or (verb == "t" and isinstance(value, bool)):
            text = "<no value>" if value is _MISSING else go_value(value)
            text = text[:int(prec)] if prec and verb in "sv" else text
        else:  # Go's report of a verb that does not fit its argument
            return f"%!{verb}({'<no value>' if value is _MISSING else go_value(value)})"
        if width:
            pad = "0" if "0" in flags and verb in "df" and "-" not in flags else " "
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width), pad)
        return text
    return _VERB.sub(one, fmt)


def _present(value: Any) -> Any:
    return None if value is _MISSING else value


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return value


_FUNCS = {
    "join": lambda items, sep: join_and_truncate(_present(items), 0, sep),
    "joinAndTruncate": lambda items, sep, n: join_and_truncate(_present(items), n, sep),
    "eq": lambda a, *bs: any(_same(a, b) for b in bs),
    "ne": lambda a, b: not _same(a, b),
    "not": lambda a: not _truth(a),
    "and": lambda *xs: next((x for x in xs if not _truth(x)), xs[-1]),
    "or": lambda *xs: next((x for x in xs if _truth(x)), xs[-1]),
    "len": lambda x: len(x),
    "printf": _printf,
    "index": _index,
}


def execute(nodes: list[Node], dot: Any, top: Any | None = None) -> str:
    top = dot if top is None else top
    out: list[str] = []
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "value":
            value = _call(node.args, dot, top)
            out.append("<no value>" if value is _MISSING else go_value(value))
        elif node.kind == "if":
            chosen = node.body if _truth(_call(node.args, dot, top)) else node.orelse
            out.append(execute(chosen, dot, top))
        elif node.kind == "with":
            value = _call(node.args, dot, top)
            out.append(execute(node.body, value, top) if _truth(value)
                       else execute(node.orelse, dot, top))
        else:
            out.append(_range(node, _call(node.args, dot, top), dot, top))
    return "".join(out)


def _range(node: Node, value: Any, dot: Any, top: Any) -> str:
    if isinstance(value, dict):
        elems = [value[k] for k in sorted(value)]
    elif isinstance(value, list):
        elems = list(value)
    elif value is _MISSING or value is None:
        elems = []
    else:
        raise TemplateError(f"range can't iterate over {go_value(value)}")
    if not elems:
        return execute(node.orelse, dot, top)
    return "".join(execute(node.body, e, top) for e in elems)


def render(template: str, data: list[Any]) -> str:
    """Run `template` on the printed objects, as calicoctl runs it."""
    return execute(parse(template), TopLevel(data))
