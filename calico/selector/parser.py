"""Selector parser: tokens in, a syntax tree (calico.selector.ast) out.

Recursive descent with Calico's precedence (libcalico-go/lib/selector/parser/parser.go):
``||`` binds loosest, then ``&&``, then ``!``, which applies to one term::

    selector  := <empty> | or_expr EOF
    or_expr   := and_expr ("||" and_expr)*
    and_expr  := term ("&&" term)*
    term      := "!"* ( has(k) | all() | global() | "(" or_expr ")"
                      | k ("==" | "!=" | contains | starts with | ends with) STRING
                      | k ("in" | "not in") "{" [STRING ("," STRING)* [","]] "}" )

As in Calico: the empty (or all-blank) selector is ``all()``; a run of ``!`` folds to its
parity (``!!has(a)`` is ``has(a)``); a set may end with a trailing comma; parentheses leave no
node of their own; ``a && b && c`` is one And of three operands, while ``(a && b) && c``
keeps its grouping.

One deliberate difference: ``!(!x)`` folds to ``x``. Calico builds Not(Not(x)) and prints it
as ``!!x``, which its own parser then reads back as ``x``; folding here makes the canonical
form a fixed point and equals Calico's canonical form after one more round trip.

Nesting is limited to MAX_NESTING levels of parentheses (Calico has no limit; Python's stack
and compiler do).
"""

from __future__ import annotations

from calico.selector import ast
from calico.selector.errors import SelectorError
from calico.selector.tokenizer import (
    EXPECTED_OPERATOR,
    EXPECTED_TERM,
    Kind,
    Token,
    quote,
    tokenize,
)

MAX_NESTING = 100

_VALUE_OPS: dict[Kind, type[ast.LabelValue]] = {
    Kind.EQ: ast.Eq,
    Kind.NE: ast.Ne,
    Kind.CONTAINS: ast.Contains,
    Kind.STARTS_WITH: ast.StartsWith,
    Kind.ENDS_WITH: ast.EndsWith,
}
_SET_OPS: dict[Kind, type[ast.LabelSet]] = {Kind.IN: ast.In, Kind.NOT_IN: ast.NotIn}


def parse_node(text: str) -> ast.Node:
    """Parse ``text`` to a syntax tree (uncached); raise :class:`SelectorError`."""
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def parse(self) -> ast.Node:
        if self._peek().kind is Kind.EOF:
            return ast.All()
        node = self._or_expr()
        self._expect_end(Kind.EOF, '"&&", "||" or the end of the selector')
        return node

    # --- helpers --------------------------------------------------------------------------

    def _peek(self) -> Token:
        return self.tokens[self.i]

    def _next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not Kind.EOF:
            self.i += 1
        return token

    def _fail(self, token: Token, expected: str) -> SelectorError:
        return SelectorError(f"unexpected {token.describe()}", token.pos, expected, self.text)

    def _expect_end(self, kind: Kind, expected: str) -> None:
        token = self._next()
        if token.kind is not kind:
            raise self._fail(token, expected)

    # --- grammar --------------------------------------------------------------------------

    def _or_expr(self) -> ast.Node:
        operands = [self._and_expr()]
        while self._peek().kind is Kind.OR:
            self._next()
            operands.append(self._and_expr())
        return operands[0] if len(operands) == 1 else ast.Or(operands)

    def _and_expr(self) -> ast.Node:
        operands = [self._term()]
        while self._peek().kind is Kind.AND:
            self._next()
            operands.append(self._term())
        return operands[0] if len(operands) == 1 else ast.And(operands)

    def _term(self) -> ast.Node:
        negated = False
        while self._peek().kind is Kind.NOT:
            self._next()
            negated = not negated
        node = self._operation()
        if not negated:
            return node
        return node.operand if isinstance(node, ast.Not) else ast.Not(node)

    def _operation(self) -> ast.Node:
        token = self._next()
        kind = token.kind
        if kind is Kind.HAS:
            return ast.Has(token.value)
        if kind is Kind.ALL:
            return ast.All()
        if kind is Kind.GLOBAL:
            return ast.Global()
        if kind is Kind.LABEL:
            return self._comparison(token.value)
        if kind is Kind.LPAREN:
            return self._parenthesised(token)
        raise self._fail(token, EXPECTED_TERM)

    def _parenthesised(self, lparen: Token) -> ast.Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise SelectorError("parentheses nested too deeply", lparen.pos,
                                f"at most {MAX_NESTING} levels", self.text)
        node = self._or_expr()
        self._expect_end(Kind.RPAREN, '"&&", "||" or ")"')
        self.depth -= 1
        return node

    def _comparison(self, key: str) -> ast.Node:
        op = self._next()
        if op.kind in _VALUE_OPS:
            value = self._next()
            if value.kind is not Kind.STRING:
                raise self._fail(value, f"a quoted string after {op.kind.value}")
            return _VALUE_OPS[op.kind](key, value.value)
        if op.kind in _SET_OPS:
            return _SET_OPS[op.kind](key, self._set_literal(op))
        raise self._fail(op, f"{EXPECTED_OPERATOR} {quote(key)}")

    def _set_literal(self, op: Token) -> list[str]:
        brace = self._next()
        if brace.kind is not Kind.LBRACE:
            raise self._fail(brace, f'a set literal {{"a", "b", ...}} after {op.kind.value}')
        values: list[str] = []
        while self._peek().kind is Kind.STRING:
            values.append(self._next().value)
            if self._peek().kind is not Kind.COMMA:
                break
            self._next()
        after_value = self.tokens[self.i - 1].kind is Kind.STRING
        token = self._next()
        if token.kind is not Kind.RBRACE:
            raise self._fail(token, '"," or "}"' if after_value else 'a quoted string or "}"')
        return values
