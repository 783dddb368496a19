"""Selector tokenizer: text in, a list of positioned tokens out (always ending in EOF).

It follows Calico's tokenizer (libcalico-go/lib/selector/tokenizer) rule for rule, so that
what Calico accepts we accept and what it rejects we reject:

* whitespace is only space and tab;
* a label key is 1-512 characters of ``[a-zA-Z0-9_./-]``, so DNS-subdomain prefixes
  (``projectcalico.org/orchestrator``) need no special case;
* strings are quoted with ``"`` or ``'`` and have no escapes: a string ends at the next
  occurrence of its opening quote;
* the word operators (``contains``, ``starts with``, ``ends with``, ``not in``, ``in``) are only
  recognised straight after a label key, must end at a word boundary, and the two-word ones
  may be written with any run of whitespace between the words, or none (``startswith``);
* ``has(``, ``all(`` and ``global(`` are single tokens (whitespace is allowed inside the
  parentheses, not before the ``(``).

Unlike Calico, every token and every error carries its character offset.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from calico.selector.errors import SelectorError

MAX_LABEL_LENGTH = 512
LABEL_KEY_CHARS = "a-zA-Z0-9_./-"
LABEL_KEY_RE = re.compile(f"[{LABEL_KEY_CHARS}]+")

_WHITESPACE = " \t"


class Kind(enum.Enum):
    """Token kinds; each value is how error messages name the kind."""

    LABEL = "label key"
    STRING = "string"
    LBRACE = '"{"'
    RBRACE = '"}"'
    COMMA = '","'
    EQ = '"=="'
    NE = '"!="'
    IN = '"in"'
    NOT_IN = '"not in"'
    CONTAINS = '"contains"'
    STARTS_WITH = '"starts with"'
    ENDS_WITH = '"ends with"'
    NOT = '"!"'
    HAS = "has()"
    ALL = "all()"
    GLOBAL = "global()"
    LPAREN = '"("'
    RPAREN = '")"'
    AND = '"&&"'
    OR = '"||"'
    EOF = "end of selector"


class Token(NamedTuple):
    kind: Kind
    value: str
    pos: int

    def describe(self) -> str:
        """How an error message names this token: ``"}"``, ``label key "a"``, ..."""
        if self.kind is Kind.LABEL or self.kind is Kind.STRING:
            return f"{self.kind.value} {quote(self.value)}"
        if self.kind is Kind.HAS:
            return f'"has({self.value})"'
        return self.kind.value


def quote(value: str) -> str:
    """Quote ``value`` as Calico's canonical form does: ``"..."`` unless it contains ``"``.

    A selector string cannot contain its own quote character (there are no escapes), so a
    value holding both kinds of quote cannot be written at all.
    """
    if '"' not in value:
        return f'"{value}"'
    if "'" in value:
        raise ValueError(f"a selector value cannot contain both kinds of quote: {value!r}")
    return f"'{value}'"


_SIMPLE = {
    "(": Kind.LPAREN,
    ")": Kind.RPAREN,
    "{": Kind.LBRACE,
    "}": Kind.RBRACE,
    ",": Kind.COMMA,
}
_DOUBLED = {"=": Kind.EQ, "&": Kind.AND, "|": Kind.OR}
_BOUNDARY = f"(?![{LABEL_KEY_CHARS}])"
_WORD_OPERATORS = (  # tried in this order, straight after a label key
    (re.compile(f"contains{_BOUNDARY}"), Kind.CONTAINS),
    (re.compile(f"starts[ \t]*with{_BOUNDARY}"), Kind.STARTS_WITH),
    (re.compile(f"ends[ \t]*with{_BOUNDARY}"), Kind.ENDS_WITH),
    (re.compile(f"not[ \t]*in{_BOUNDARY}"), Kind.NOT_IN),
    (re.compile(f"in{_BOUNDARY}"), Kind.IN),
)
# What error messages say was expected at the start of a term and after a label key.
EXPECTED_TERM = 'a label key, has(...), all(), global(), "!" or "("'
EXPECTED_OPERATOR = ('an operator ("==", "!=", "in", "not in", "contains", "starts with" or '
                     '"ends with") after label key')


def _skip_whitespace(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WHITESPACE:
        i += 1
    return i


def _unexpected(text: str, i: int) -> str:
    if i >= len(text):
        return "unexpected end of selector"
    c = text[i]
    return f"unexpected {quote(c) if c.isprintable() else ascii(c)}"


def _label_key(text: str, i: int) -> str:
    """The label key starting at ``i``; raise if there is none or it is too long."""
    m = LABEL_KEY_RE.match(text, i)
    if m is None:
        raise SelectorError(_unexpected(text, i), i, "a label key", text)
    key = m.group()
    if len(key) > MAX_LABEL_LENGTH:
        raise SelectorError(f"label key of {len(key)} characters", i,
                            f"at most {MAX_LABEL_LENGTH} characters", text)
    return key


def _close_paren(text: str, i: int, what: str) -> int:
    i = _skip_whitespace(text, i)
    if not text.startswith(")", i):
        raise SelectorError(_unexpected(text, i), i, f'")" to close {what}(', text)
    return i + 1


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raise :class:`SelectorError` on a lexical error."""
    tokens: list[Token] = []
    n = len(text)
    i = 0
    while True:
        i = _skip_whitespace(text, i)
        if i >= n:
            tokens.append(Token(Kind.EOF, "", i))
            return tokens
        c = text[i]
        start = i
        if c in _SIMPLE:
            tokens.append(Token(_SIMPLE[c], c, i))
            i += 1
        elif c == '"' or c == "'":
            end = text.find(c, i + 1)
            if end < 0:
                raise SelectorError("unterminated string", i, f"a closing {c}", text)
            tokens.append(Token(Kind.STRING, text[i + 1:end], i))
            i = end + 1
        elif c in _DOUBLED:
            if not text.startswith(c + c, i):
                raise SelectorError(_unexpected(text, i), i, quote(c + c), text)
            tokens.append(Token(_DOUBLED[c], c + c, i))
            i += 2
        elif c == "!":
            if text.startswith("!=", i):
                tokens.append(Token(Kind.NE, "!=", i))
                i += 2
            else:
                tokens.append(Token(Kind.NOT, "!", i))
                i += 1
        elif tokens and tokens[-1].kind is Kind.LABEL:
            for regex, kind in _WORD_OPERATORS:
                m = regex.match(text, i)
                if m is not None:
                    tokens.append(Token(kind, m.group(), i))
                    i = m.end()
                    break
            else:
                raise SelectorError(_unexpected_word(text, i), i,
                                    f"{EXPECTED_OPERATOR} {quote(tokens[-1].value)}", text)
        elif text.startswith("has(", i):
            i = _skip_whitespace(text, i + 4)
            key = _label_key(text, i)
            i = _close_paren(text, i + len(key), "has")
            tokens.append(Token(Kind.HAS, key, start))
        elif text.startswith("all(", i):
            i = _close_paren(text, i + 4, "all")
            tokens.append(Token(Kind.ALL, "all()", start))
        elif text.startswith("global(", i):
            i = _close_paren(text, i + 7, "global")
            tokens.append(Token(Kind.GLOBAL, "global()", start))
        elif LABEL_KEY_RE.match(text, i):
            key = _label_key(text, i)
            tokens.append(Token(Kind.LABEL, key, i))
            i += len(key)
        else:
            raise SelectorError(_unexpected(text, i), i, EXPECTED_TERM, text)


def _unexpected_word(text: str, i: int) -> str:
    m = LABEL_KEY_RE.match(text, i)
    return f"unexpected {quote(m.group())}" if m else _unexpected(text, i)
