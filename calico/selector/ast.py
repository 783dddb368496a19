"""Selector syntax tree: small immutable nodes, their canonical text, a reference evaluator.

The nodes mirror Calico's (libcalico-go/lib/selector/parser/ast.go) one for one, and
``str(node)`` writes Calico's canonical form, fragment for fragment:

* ``key == "value"``, ``key != "value"``, ``key contains "value"``, ``key starts with "value"``,
  ``key ends with "value"``: one space around the operator; the value in double quotes, or in
  single quotes when it contains a double quote;
* ``key in {"a", "b"}`` / ``key not in {"a", "b"}``: members sorted (byte order) and
  de-duplicated, each quoted as above, separated by ``", "``; ``{}`` when empty;
* ``has(key)``, ``all()``, ``global()``;
* ``!`` directly followed by its operand, no space and no parentheses of its own
  (``!a == "b"``, ``!has(a)``, ``!(a == "b" && has(c))``);
* every ``&&`` / ``||`` group, however many operands, wrapped in one pair of parentheses
  (``(a == "b" && c == "d")``), so nesting is always explicit and precedence never matters.

Nodes validate what they hold so that any tree renders to text that parses back to an equal
tree: label keys obey the tokenizer's rule, no value holds both kinds of quote, ``&&``/``||``
have at least two operands, and ``!`` is never applied directly to ``!`` (the parser folds
``!(!x)`` to ``x``; see parser.py).

``Node.evaluate`` is the plain tree-walking evaluator: the reference semantics that the
compiled form in selector.py is tested against, and its fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

from calico.selector.tokenizer import LABEL_KEY_RE, MAX_LABEL_LENGTH, quote


def _check_key(key: str) -> None:
    if not (0 < len(key) <= MAX_LABEL_LENGTH and LABEL_KEY_RE.fullmatch(key)):
        raise ValueError(f"invalid selector label key {key!r}: want 1-{MAX_LABEL_LENGTH} "
                         "characters of a-z, A-Z, 0-9, '_', '.', '/' and '-'")


class Node:
    """Base of all selector nodes: immutable and hashable; `evaluate(labels)` is the reference
    semantics, `write()` / `str()` Calico's canonical text, which parses back to an equal tree."""

    __slots__ = ()

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        raise NotImplementedError

    def children(self) -> tuple[Node, ...]:
        return ()

    def walk(self) -> Iterator[Node]:
        """This node and all nodes below it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def write(self, out: list[str]) -> None:
        """Append this node's canonical text, in fragments, to ``out``."""
        raise NotImplementedError

    def __str__(self) -> str:
        out: list[str] = []
        self.write(out)
        return "".join(out)


# --- Leaves ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class All(Node):
    """``all()``: matches everything (also what the empty selector parses to)."""

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return True

    def write(self, out: list[str]) -> None:
        out.append("all()")


@dataclass(frozen=True, slots=True)
class Global(Node):
    """``global()``: matches everything; marks a namespaceSelector that selects
    non-namespaced resources (host endpoints, global network sets)."""

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return True

    def write(self, out: list[str]) -> None:
        out.append("global()")


@dataclass(frozen=True, slots=True)
class Has(Node):
    """``has(key)``: the label is present, whatever its value."""

    key: str

    def __post_init__(self) -> None:
        _check_key(self.key)

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels

    def write(self, out: list[str]) -> None:
        out += ("has(", self.key, ")")


@dataclass(frozen=True, slots=True)
class LabelValue(Node):
    """Base of the ``key <op> "value"`` comparisons."""

    key: str
    value: str
    op: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _check_key(self.key)
        quote(self.value)  # raises if the value cannot be written

    def write(self, out: list[str]) -> None:
        out += (self.key, " ", self.op, " ", quote(self.value))


@dataclass(frozen=True, slots=True)
class Eq(LabelValue):
    """``key == "value"``: false when the label is absent."""

    op: ClassVar[str] = "=="

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels and labels[self.key] == self.value


@dataclass(frozen=True, slots=True)
class Ne(LabelValue):
    """``key != "value"``: TRUE when the label is absent."""

    op: ClassVar[str] = "!="

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key not in labels or labels[self.key] != self.value


@dataclass(frozen=True, slots=True)
class Contains(LabelValue):
    """``key contains "s"``: false when the label is absent."""

    op: ClassVar[str] = "contains"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels and self.value in labels[self.key]


@dataclass(frozen=True, slots=True)
class StartsWith(LabelValue):
    """``key starts with "s"``: false when the label is absent."""

    op: ClassVar[str] = "starts with"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels and labels[self.key].startswith(self.value)


@dataclass(frozen=True, slots=True)
class EndsWith(LabelValue):
    """``key ends with "s"``: false when the label is absent."""

    op: ClassVar[str] = "ends with"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels and labels[self.key].endswith(self.value)


@dataclass(frozen=True, slots=True)
class LabelSet(Node):
    """Base of ``key in {...}`` and ``key not in {...}``; ``values`` is kept sorted and unique."""

    key: str
    values: tuple[str, ...]
    op: ClassVar[str] = ""

    def __init__(self, key: str, values: Iterable[str]) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "values", tuple(sorted(set(values))))
        _check_key(key)
        for value in self.values:
            quote(value)

    def write(self, out: list[str]) -> None:
        out += (self.key, " ", self.op, " {", ", ".join(map(quote, self.values)), "}")


@dataclass(frozen=True, slots=True, init=False)
class In(LabelSet):
    """``key in {"a", "b"}``: false when the label is absent."""

    op: ClassVar[str] = "in"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels and labels[self.key] in self.values


@dataclass(frozen=True, slots=True, init=False)
class NotIn(LabelSet):
    """``key not in {"a", "b"}``: TRUE when the label is absent."""

    op: ClassVar[str] = "not in"

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.key not in labels or labels[self.key] not in self.values


# --- Operators ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Not(Node):
    """``!operand``; never directly around another Not (the canonical form folds ``!!x`` to x)."""

    operand: Node

    def __post_init__(self) -> None:
        if isinstance(self.operand, Not):
            raise ValueError("Not(Not(x)) is not canonical: use x")

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return not self.operand.evaluate(labels)

    def write(self, out: list[str]) -> None:
        out.append("!")
        self.operand.write(out)


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    """Base of ``&&`` and ``||`` over two or more operands, evaluated left to right."""

    operands: tuple[Node, ...]
    op: ClassVar[str] = ""

    def __init__(self, operands: Iterable[Node]) -> None:
        object.__setattr__(self, "operands", tuple(operands))
        if len(self.operands) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two operands")

    def children(self) -> tuple[Node, ...]:
        return self.operands

    def write(self, out: list[str]) -> None:
        out.append("(")
        for i, operand in enumerate(self.operands):
            if i:
                out.append(self.op)
            operand.write(out)
        out.append(")")


@dataclass(frozen=True, slots=True, init=False)
class And(BoolOp):
    """``(a && b && ...)``."""

    op: ClassVar[str] = " && "

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return all(operand.evaluate(labels) for operand in self.operands)


@dataclass(frozen=True, slots=True, init=False)
class Or(BoolOp):
    """``(a || b || ...)``."""

    op: ClassVar[str] = " || "

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return any(operand.evaluate(labels) for operand in self.operands)
