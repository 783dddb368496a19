"""The Selector API other packages code against: helpers, caching, equality, tree building."""

import pytest

from calico.selector import Selector, SelectorError, ast, parse
from calico.selector.parser import MAX_NESTING
from calico.selector.selector import compile_node


def test_parse_is_cached_and_selectors_compare_by_canonical_form():
    assert parse("has(a)") is parse("has(a)")
    assert parse("has( a )") == parse("has(a)")
    assert hash(parse("has( a )")) == hash(parse("has(a)"))
    assert parse("has(a)") != parse("has(b)")
    assert repr(parse("a == 'x'")) == "Selector('a == \"x\"')"


def test_is_all():
    assert parse("").is_all() and parse(" ( all() ) ").is_all()
    assert not parse("global()").is_all()
    assert not parse("all() && all()").is_all()
    assert not parse("!all()").is_all()


def test_is_global_marks_any_global_term():
    assert parse("global()").is_global()
    assert parse("has(a) && global()").is_global()
    assert parse("!global()").is_global()
    assert not parse("all()").is_global()
    assert parse("global()").evaluate({}) and parse("global()").evaluate({"a": "b"})


def test_label_keys():
    sel = parse("a == 'x' && (has(b) || c in {'1'}) && !d contains 'y' && e not in {} "
                "&& f != 'z' && g starts with 'q' || h ends with 'r' || all() || global()")
    assert sel.label_keys() == frozenset("abcdefgh")
    assert parse("").label_keys() == frozenset()


def test_unique_id_is_calicos_scheme():
    # hash.MakeUniqueID("s", "all()") as asserted by Calico's own parser tests.
    assert parse("all()").unique_id() == "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
    assert parse("has(a)").unique_id() == parse(" has( a ) ").unique_id()
    assert parse("has(a)").unique_id() != parse("has(b)").unique_id()


def test_selector_from_a_tree():
    tree = ast.And([ast.Eq("projectcalico.org/namespace", "prod"),
                    ast.Not(ast.Has("quarantine")), ast.In("role", ["web", "api", "web"])])
    sel = Selector(tree)
    assert str(sel) == ('(projectcalico.org/namespace == "prod" && !has(quarantine) && '
                        'role in {"api", "web"})')
    assert sel == parse(str(sel))
    assert sel.evaluate({"projectcalico.org/namespace": "prod", "role": "api"})
    assert not sel.evaluate({"projectcalico.org/namespace": "prod", "role": "db"})


@pytest.mark.parametrize("build", [
    lambda: ast.Has(""),
    lambda: ast.Has("a b"),
    lambda: ast.Eq("a" * 513, "x"),
    lambda: ast.Eq("a", "both ' and \""),
    lambda: ast.In("a", ["ok", "both ' and \""]),
    lambda: ast.And([ast.All()]),
    lambda: ast.Or([]),
    lambda: ast.Not(ast.Not(ast.All())),
])
def test_trees_that_cannot_be_written_are_refused(build):
    with pytest.raises(ValueError):
        build()


def test_nesting_limit():
    ok = "(" * MAX_NESTING + "has(a)" + ")" * MAX_NESTING
    assert str(parse(ok)) == "has(a)"
    deep = "(" * (MAX_NESTING + 1) + "has(a)" + ")" * (MAX_NESTING + 1)
    with pytest.raises(SelectorError, match=f"nested too deeply at position {MAX_NESTING}"):
        parse(deep)


def test_deep_trees_still_evaluate():
    # !(has(k0) && !(has(k1) && ...)) at the parser's nesting limit: deeper than the
    # generated Python may nest parentheses, so it falls back to walking the tree.
    text = "has(z)"
    for i in range(MAX_NESTING):
        text = f"!(has(k{i}) && {text})"
    sel = parse(text)
    labels = {f"k{i}": "" for i in range(MAX_NESTING)}
    assert sel.evaluate(labels) == sel.root.evaluate(labels)
    assert sel.evaluate({}) is True
    assert sel.evaluate == sel.root.evaluate  # the fallback
    node = ast.Has("a")
    for _ in range(150):
        node = ast.And([ast.Not(node), ast.All()])
    assert compile_node(node)({"a": ""}) is True


def test_generated_code_cannot_be_injected():
    sel = parse('a == "\'); import os; os._exit(1) #" || b in {"\')", "x\\n"}')
    assert sel.evaluate({"a": "'); import os; os._exit(1) #"})
    assert sel.evaluate({"b": "')"}) and sel.evaluate({"b": "x\\n"})
    assert not sel.evaluate({"b": "x"})
