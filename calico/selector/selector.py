"""Parsed selectors: canonical text, unique id, and a compiled, fast ``evaluate``.

Felix evaluates selectors against label maps millions of times (every endpoint against every
policy and IP-set selector), so a Selector does not walk its tree: it compiles the tree once
into one Python function whose body is a single boolean expression over ``labels.get``, e.g.
``a == "x" && b in {"p", "q"}`` becomes::

    def evaluate(labels):
        return ((labels.get('a') == 'x') and (labels.get('b') in {'p', 'q'}))

where CPython turns the set display into a frozenset constant. Calico's absent-label rules
fall out of ``get`` returning None: ``==`` / ``in`` are false and ``!=`` / ``not in`` are
true when the label is absent; ``contains`` / ``starts with`` / ``ends with`` read an absent
label as ``""``, which is only wrong for an empty operand, and that case compiles to
``has(key)`` (what the operator means then). Strings enter the generated source only through
``repr``, so no selector text can inject code. A tree too deep for Python's compiler falls
back to the (slower) tree-walking evaluator.

``parse`` is cached: Felix and the API parse the same few selectors over and over. ``check``
validates a selector without compiling it (the API checks thousands of selectors that only
Felix evaluates), and shares its cache of parsed trees with ``parse``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable, Mapping

from calico.selector import ast
from calico.selector.parser import parse_node

Evaluator = Callable[[Mapping[str, str]], bool]


class Selector:
    """A parsed selector. Immutable; two selectors are equal when their canonical forms are.

    Build one with :func:`parse`, or from a tree: ``Selector(ast.Has("a"))``.
    """

    def __init__(self, root: ast.Node) -> None:
        self.root = root
        self._text = str(root)
        self._uid: str | None = None
        # An instance attribute shadows the method below: calling sel.evaluate(labels) then
        # runs the compiled function directly, with no extra Python frame.
        self.evaluate: Evaluator = compile_node(root)  # type: ignore[method-assign]

    def evaluate(self, labels: Mapping[str, str]) -> bool:  # noqa: F811 (documentation only)
        """True if ``labels`` (label key → value) match this selector."""
        return self.root.evaluate(labels)

    def unique_id(self) -> str:
        """Calico's id for this selector: ``"s:"`` + unpadded URL-safe base64 of
        SHA-224(``"s:"`` + canonical form) (libcalico-go/lib/hash.MakeUniqueID)."""
        if self._uid is None:
            digest = hashlib.sha224(("s:" + self._text).encode()).digest()
            self._uid = "s:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return self._uid

    def label_keys(self) -> frozenset[str]:
        """The label keys this selector looks at (for indexing endpoints by label)."""
        return frozenset(n.key for n in self.root.walk() if isinstance(n, _KEYED))

    def is_all(self) -> bool:
        """True for exactly ``all()`` (which is also what the empty selector parses to)."""
        return isinstance(self.root, ast.All)

    def is_global(self) -> bool:
        """True if the selector contains ``global()``, the namespaceSelector marker for
        non-namespaced resources."""
        return any(isinstance(n, ast.Global) for n in self.root.walk())

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Selector({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selector) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)


_KEYED = (ast.Has, ast.LabelValue, ast.LabelSet)


@functools.lru_cache(maxsize=16384)
def _tree(text: str) -> ast.Node:
    return parse_node(text)


@functools.lru_cache(maxsize=16384)
def parse(text: str) -> Selector:
    """Parse selector ``text``; raise :class:`SelectorError` (a ValueError) if it is invalid.

    Cached: the same text returns the same (immutable) Selector.
    """
    return Selector(_tree(text))


def check(text: str) -> None:
    """Raise :class:`SelectorError` if ``text`` is not a valid selector; compiles nothing."""
    _tree(text)


def normalise(text: str) -> str:
    """Calico's ``selector.Normalise``: the canonical form of ``text`` with surrounding
    whitespace removed, or the stripped text unchanged if it does not parse."""
    text = text.strip()
    try:
        return str(parse(text))
    except ValueError:
        return text


# --- Compilation ----------------------------------------------------------------------------


def _match_all(labels: Mapping[str, str]) -> bool:
    return True


def compile_node(node: ast.Node) -> Evaluator:
    """Compile ``node`` to a function of a label mapping (see the module docstring)."""
    if isinstance(node, ast.All | ast.Global):
        return _match_all
    try:
        source = f"def evaluate(labels):\n    return {_expression(node)}\n"
        namespace: dict[str, object] = {}
        exec(compile(source, "<selector>", "exec"), namespace)  # noqa: S102 (see docstring)
        return namespace["evaluate"]  # type: ignore[return-value]
    except (SyntaxError, RecursionError, MemoryError):
        return node.evaluate


def _get(key: str, or_empty: bool = False) -> str:
    """``labels.get(key)``, or ``labels.get(key, '')`` when absent should read as empty.

    (Calling ``labels.get`` each time is faster on CPython 3.11 than binding it once to a
    local: the method call needs no bound-method object.)
    """
    return f"labels.get({key!r}, '')" if or_empty else f"labels.get({key!r})"


def _expression(node: ast.Node) -> str:
    """A Python boolean expression for ``node`` over ``labels``."""
    match node:
        case ast.All() | ast.Global():
            return "True"
        case ast.Has(key=key):
            return f"({key!r} in labels)"
        case ast.Eq(key=key, value=value):
            return f"({_get(key)} == {value!r})"
        case ast.Ne(key=key, value=value):
            return f"({_get(key)} != {value!r})"
        case ast.Contains(key=key, value=value) if value:
            return f"({value!r} in {_get(key, or_empty=True)})"
        case ast.StartsWith(key=key, value=value) if value:
            return f"{_get(key, or_empty=True)}.startswith({value!r})"
        case ast.EndsWith(key=key, value=value) if value:
            return f"{_get(key, or_empty=True)}.endswith({value!r})"
        case ast.Contains(key=key) | ast.StartsWith(key=key) | ast.EndsWith(key=key):
            return f"({key!r} in labels)"  # an empty operand matches any present value
        case ast.In(key=key, values=values) | ast.NotIn(key=key, values=values):
            negated = isinstance(node, ast.NotIn)
            if not values:
                return "True" if negated else "False"
            if len(values) == 1:
                return f"({_get(key)} {'!=' if negated else '=='} {values[0]!r})"
            # A set display of constants on the right of "in" compiles to a frozenset
            # constant.
            members = ", ".join(map(repr, values))
            return f"({_get(key)} {'not in' if negated else 'in'} {{{members}}})"
        case ast.Not(operand=operand):
            return f"(not {_expression(operand)})"
        case ast.And(operands=operands):
            return "(" + " and ".join(map(_expression, operands)) + ")"
        case ast.Or(operands=operands):
            return "(" + " or ".join(map(_expression, operands)) + ")"
    raise TypeError(f"not a selector node: {node!r}")
