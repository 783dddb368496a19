"""Calico's own selector examples: its parser, tokenizer and canonicalisation tables
(libcalico-go/lib/selector/{parser,tokenizer}/*_test.go) and the documented operators."""

import pytest

from calico.selector import SelectorError, normalise, parse
from calico.selector.tokenizer import Kind, tokenize

# (selector, label maps it matches, label maps it does not match)
MATCHES = [
    ('a == "b"', [{"a": "b"}, {"a": "b", "c": "d"}], [{}, {"a": "c"}, {"c": "d"}]),
    ('a == "b" && c == "d"', [{"a": "b", "c": "d"}],
     [{}, {"a": "b", "c": "e"}, {"a": "c", "c": "d"}, {"c": "d"}, {"a": "b"}]),
    ('a == "b" || c == "d"', [{"a": "b", "c": "d"}, {"a": "b"}, {"c": "d"}],
     [{}, {"a": "e", "c": "e"}, {"c": "e"}, {"a": "e"}]),
    ("a in {\"'\", '\"', \"c\"}", [{"a": "c"}, {"a": '"'}, {"a": "'"}], [{}, {"a": "e"}]),
    ("a not in {\"'\", '\"', \"c\"}", [{}, {"a": "e"}], [{"a": "c"}, {"a": '"'}, {"a": "'"}]),
    ("a == 'a'", [{"a": "a"}], [{"a": "b"}, {}]),
    ('a == "a"', [{"a": "a"}], []),
    ('a != "b"', [{"a": "a"}], []),
    ('a != "a"', [{}], [{"a": "a"}]),
    ("a != 'a'", [], [{"a": "a"}]),
    ('a contains "a"', [{"a": "a"}, {"a": "bab"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"b": "aaa"}]),
    ('a starts with "a"', [{"a": "a"}, {"a": "abb"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"a": "baa"}, {"b": "aaa"}]),
    ('a ends with "a"', [{"a": "a"}, {"a": "bba"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"a": "aab"}, {"b": "aaa"}]),
    ('a in {"a"}', [{"a": "a"}], [{"a": "b"}]),
    ('!a in {"a"}', [{"a": "b"}], []),
    ('a in {"a", "b"}', [{"a": "a"}, {"a": "b"}], [{"a": "c"}]),
    ('a not in {"d", "e"}', [{"a": "a"}], []),
    ('a not in {"a"}', [], [{"a": "a"}]),
    ("has(a)", [{"a": "b"}], []),
    ("has(b)", [], [{"a": "b"}]),
    ("!has(a)", [{"b": "b"}], [{"a": "b"}]),
    ("", [{}, {"a": "b"}], []),
    (" ", [{}], []),
    ("all()", [{}], []),
    (" all()", [{}, {"a": "b"}], []),
    ("global()", [{}], []),
    (" global()", [{}, {"a": "b"}], []),
    ("!!has(b)", [], [{"a": "b"}]),
    ("! has(a)", [], [{"a": "b"}]),
    ("!!! has(a)", [], [{"a": "b"}]),
    ("!!!has(a)", [], [{"a": "b"}]),
    ("!! ! has(a)", [], [{"a": "b"}]),
    ("! !!has(a)", [], [{"a": "b"}]),
    # Boolean expressions.
    ("a == 'a1' && b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a == 'a1' && b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && !b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("!a == 'a1' && b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("has(a) && !has(b)", [{"a": "a"}], []),
    ("!has(b) && has(a)", [{"a": "a"}], []),
    ("!(!has(a) || has(b))", [{"a": "a"}], []),
    ("!(has(b) || !has(a))", [{"a": "a"}], []),
    ("a == 'a1' || b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a == 'a1' || b != 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a != 'a1' || b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a != 'a1' || b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("! a == 'a1' || ! b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    # Documented operators (docs.tigera.io, "Selectors" reference), Kubernetes-style keys.
    ("k == 'v'", [{"k": "v"}], [{}, {"k": "w"}]),
    ("k != 'v'", [{}, {"k": "w"}], [{"k": "v"}]),
    ("!has(k)", [{}], [{"k": ""}]),
    ("k in { 'v1', 'v2' }", [{"k": "v1"}, {"k": "v2"}], [{}, {"k": "v3"}]),
    ("k not in { 'v1', 'v2' }", [{}, {"k": "v3"}], [{"k": "v1"}]),
    ("k contains 's'", [{"k": "xsx"}], [{}, {"k": "x"}]),
    ("k starts with 's'", [{"k": "sx"}], [{}, {"k": "xs"}]),
    ("k ends with 's'", [{"k": "xs"}], [{}, {"k": "sx"}]),
    ("k in {}", [], [{}, {"k": ""}]),
    ("k not in {}", [{}, {"k": ""}], []),
    ('k contains ""', [{"k": ""}], [{}]),
    ("has(projectcalico.org/orchestrator) && projectcalico.org/orchestrator == 'k8s'",
     [{"projectcalico.org/orchestrator": "k8s"}], [{"projectcalico.org/orchestrator": "x"}]),
    ("has(sg.projectcalico.org/openstack-abc)",
     [{"sg.projectcalico.org/openstack-abc": ""}], [{"sg.projectcalico.org/openstack-ab": ""}]),
    ('calico/k8s_ns == "kube-system" && k8s-app == "kube-dns"',
     [{"calico/k8s_ns": "kube-system", "k8s-app": "kube-dns"}], [{"k8s-app": "kube-dns"}]),
    # Precedence: ! binds tightest, then &&, then ||.
    ("has(a) || has(b) && has(c)", [{"a": ""}, {"b": "", "c": ""}], [{"b": ""}]),
    ("!has(a) && has(b)", [{"b": ""}], [{"a": "", "b": ""}, {}]),
]


@pytest.mark.parametrize(("text", "matches", "non_matches"), MATCHES)
def test_calico_match_table(text, matches, non_matches):
    sel = parse(text)
    again = parse(str(sel))
    for labels in matches:
        assert sel.evaluate(labels), (text, labels)
        assert sel.root.evaluate(labels), (text, labels)
        assert again.evaluate(labels), (str(sel), labels)
    for labels in non_matches:
        assert not sel.evaluate(labels), (text, labels)
        assert not sel.root.evaluate(labels), (text, labels)
        assert not again.evaluate(labels), (str(sel), labels)


BAD = [
    "b == b",
    "b contains b",
    "b starts with b",
    "b ends with b",
    "'b1' == b",
    "b",
    "a b",
    "!",
    'foo == "bar" &',
    'foo == "bar" |',
    "foo != ||",
    'foo in {"", ||',
    'foo in ""',
    '"FOO',
    "\"FOO'",
    "'FOO",
    "(",
    '(a == "foo"',
    ")",
    "()",
    "%",
    'a == "b" && %',
    'a == "b" || %',
    "a ",
    "has(foo) &&",
    # Tokenizer rejects.
    'label starts foo "value"',
    'label ends foo "value"',
    'label squiggles "value"',
    # More: set syntax, word boundaries, whitespace other than space and tab.
    'a in {,}',
    'a in {"x" "y"}',
    'a in {"x",,}',
    'acontains "x"',
    'a containsx "x"',
    "has (a)",
    "has()",
    "all(x)",
    "a = 'b'",
    'a == "b"\n',
    'a\t==\t"b" &&\nhas(c)',
    "a" * 513 + " == 'x'",
]


@pytest.mark.parametrize("text", BAD)
def test_calico_rejects(text):
    with pytest.raises(SelectorError):
        parse(text)


# (input, canonical form, Calico's unique id or "")
CANONICAL = [
    ("", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    (" all() ", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    (" (all() )", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    ("! (has( b)||! has(a ))", "!(has(b) || !has(a))", "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"),
    ('! (a == "b"&&! c != "d")', '!(a == "b" && !c != "d")',
     "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"),
    ("a == \"'\"", "a == \"'\"", ""),
    ("a == '\"'", "a == '\"'", ""),
    ("a contains '\"'", "a contains '\"'", ""),
    ("a contains \"'\"", "a contains \"'\"", ""),
    ("a startswith '\"'", "a starts with '\"'", ""),
    ("a endswith \"'\"", "a ends with \"'\"", ""),
    ("a!='\"'", "a != '\"'", ""),
    ('a in {"d"}', 'a in {"d"}', ""),
    ('a in {"a", "b"}', 'a in {"a", "b"}', ""),
    ('a in {"d", "a", "b"}', 'a in {"a", "b", "d"}', ""),
    ('a in {"z", "x", "y", "a"}', 'a in {"a", "x", "y", "z"}', ""),
    ('a in {"z", "z", "x", "y", "x", "a"}', 'a in {"a", "x", "y", "z"}', ""),
    # Calico's visitor tests, without the visitor's prefix.
    ("k == 'v' && x == 'y'", '(k == "v" && x == "y")', ""),
    ("k == 'v' || has(x)", '(k == "v" || has(x))', ""),
    ("!(k == 'v')", '!k == "v"', ""),
    ("k in {'v'}", 'k in {"v"}', ""),
    ("k not in {'v'}", 'k not in {"v"}', ""),
    ("!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))",
     '!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})', ""),
    # And more: flattening, grouping, empty sets, trailing commas, global().
    ("a == 'x' && b == 'y' && c == 'z'", '(a == "x" && b == "y" && c == "z")', ""),
    ("(a == 'x' && b == 'y') && c == 'z'", '((a == "x" && b == "y") && c == "z")', ""),
    ("has(a) || has(b) && has(c)", "(has(a) || (has(b) && has(c)))", ""),
    ("a in {}", "a in {}", ""),
    ("a not in {'x',}", 'a not in {"x"}', ""),
    ("a notin{'x'}", 'a not in {"x"}', ""),
    ("a not \t in {'x'}", 'a not in {"x"}', ""),
    ("global()", "global()", ""),
    ("\tglobal( ) && has( a )", "(global() && has(a))", ""),
    ("!!has(a)", "has(a)", ""),
    ("!(!has(a))", "has(a)", ""),  # Calico prints !!has(a), which it then reads as has(a)
]


@pytest.mark.parametrize(("text", "canonical", "uid"), CANONICAL)
def test_calico_canonical_form_and_unique_id(text, canonical, uid):
    sel = parse(text)
    assert str(sel) == canonical
    again = parse(canonical)
    assert str(again) == canonical
    assert again.unique_id() == sel.unique_id()
    assert sel.unique_id().startswith("s:")
    if uid:
        assert sel.unique_id() == uid


TOKENS = [
    ('a=="b"', [(Kind.LABEL, "a"), (Kind.EQ, None), (Kind.STRING, "b")]),
    ('contains contains "contains"',
     [(Kind.LABEL, "contains"), (Kind.CONTAINS, None), (Kind.STRING, "contains")]),
    ('label contains"value"', [(Kind.LABEL, "label"), (Kind.CONTAINS, None), (Kind.STRING, "value")]),
    ('label startswith "v"', [(Kind.LABEL, "label"), (Kind.STARTS_WITH, None), (Kind.STRING, "v")]),
    ('startswith starts  with "v"',
     [(Kind.LABEL, "startswith"), (Kind.STARTS_WITH, None), (Kind.STRING, "v")]),
    ('endswith ends with "v"', [(Kind.LABEL, "endswith"), (Kind.ENDS_WITH, None), (Kind.STRING, "v")]),
    ('a not in "bar" && !has(foo) || b in c',
     [(Kind.LABEL, "a"), (Kind.NOT_IN, None), (Kind.STRING, "bar"), (Kind.AND, None),
      (Kind.NOT, None), (Kind.HAS, "foo"), (Kind.OR, None), (Kind.LABEL, "b"), (Kind.IN, None),
      (Kind.LABEL, "c")]),
    ('a notin"bar"&&!has(foo)||b in"c"',
     [(Kind.LABEL, "a"), (Kind.NOT_IN, None), (Kind.STRING, "bar"), (Kind.AND, None),
      (Kind.NOT, None), (Kind.HAS, "foo"), (Kind.OR, None), (Kind.LABEL, "b"), (Kind.IN, None),
      (Kind.STRING, "c")]),
    ("has(calico/k8s_NS-.1/role)", [(Kind.HAS, "calico/k8s_NS-.1/role")]),
    ("a not in {}", [(Kind.LABEL, "a"), (Kind.NOT_IN, None), (Kind.LBRACE, None),
                     (Kind.RBRACE, None)]),
    ("global()", [(Kind.GLOBAL, None)]),
    ("all()", [(Kind.ALL, None)]),
]


@pytest.mark.parametrize(("text", "expected"), TOKENS)
def test_calico_tokenizer_table(text, expected):
    tokens = tokenize(text)
    assert tokens[-1].kind is Kind.EOF and tokens[-1].pos == len(text.rstrip(" \t"))
    assert len(tokens) == len(expected) + 1
    got = [(t.kind, t.value if e[1] is not None else None)
           for t, e in zip(tokens[:-1], expected, strict=True)]
    assert got == expected


def test_token_positions():
    assert [t.pos for t in tokenize("a  in {'x', \"y\"} && has( b )")] == [0, 3, 6, 7, 10, 12, 15, 17, 20, 28]


@pytest.mark.parametrize(("text", "message"), [
    ('a == "b" && }', 'unexpected "}" at position 12, expected a label key, has(...), all(), '
                      'global(), "!" or "("'),
    ("has()", 'unexpected ")" at position 4, expected a label key'),
    ("'b1' == b", 'unexpected string "b1" at position 0, expected a label key'),
    ("b == b", 'unexpected label key "b" at position 5, expected a quoted string after "=="'),
    ('"FOO', 'unterminated string at position 0, expected a closing "'),
    ("a = 'b'", 'unexpected "=" at position 2, expected "=="'),
    ("a b", 'unexpected "b" at position 2, expected an operator ("==", "!=", "in", "not in", '
            '"contains", "starts with" or "ends with") after label key "a"'),
    ("(a == 'x'", "unexpected end of selector at position 9, expected \"&&\", \"||\" or \")\""),
    ("a == 'x')", 'unexpected ")" at position 8, expected "&&", "||" or the end of the selector'),
    ("a in 'x'", "unexpected string \"x\" at position 5, expected a set literal"),
    ("a in {'x' 'y'}", 'unexpected string "y" at position 10, expected "," or "}"'),
    ("a in {'x', )", 'unexpected ")" at position 11, expected a quoted string or "}"'),
    ("a ==\n'b'", "unexpected '\\n' at position 4, expected a label key"),
    ("has(a", 'unexpected end of selector at position 5, expected ")" to close has('),
])
def test_error_messages_name_position_and_expectation(text, message):
    with pytest.raises(SelectorError) as err:
        parse(text)
    assert str(err.value).startswith(message)
    assert isinstance(err.value, ValueError)
    assert err.value.selector == text
    assert str(err.value) == f"{err.value.found} at position {err.value.position}, " \
                             f"expected {err.value.expected}"


def test_normalise_like_calico():
    assert normalise("  ! (has( b)||! has(a ))\n") == "!(has(b) || !has(a))"
    assert normalise("") == "all()"
    assert normalise(" not a selector ") == "not a selector"
