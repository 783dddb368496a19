"""Property tests: random trees and random spellings of them.

* every tree renders to canonical text that parses back to the same tree (so the canonical
  form round-trips and is idempotent);
* a random non-canonical spelling of a tree (spacing, quote style, redundant parentheses,
  runs of "!", shuffled and repeated set members, trailing commas, optional precedence
  parentheses) parses to that same tree, and evaluates like the canonical form;
* the compiled evaluator agrees with the tree-walking reference on random label maps;
* any text either parses or raises SelectorError, and what parses is canonical after one round.
"""

from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from calico.selector import Selector, SelectorError, ast, parse
from calico.selector.selector import compile_node

KEYS = ["a", "b", "k8s-app", "projectcalico.org/orchestrator", "sg.projectcalico.org/openstack-1"]
VALUES = st.text(alphabet="xy'\" é", max_size=3).filter(lambda v: not ('"' in v and "'" in v))
LABELS = st.dictionaries(st.sampled_from([*KEYS, "other"]), st.text(alphabet="xy'\" é", max_size=3))

keys = st.sampled_from(KEYS)
leaves = st.one_of(
    st.builds(ast.All),
    st.builds(ast.Global),
    st.builds(ast.Has, keys),
    *(st.builds(cls, keys, VALUES)
      for cls in (ast.Eq, ast.Ne, ast.Contains, ast.StartsWith, ast.EndsWith)),
    st.builds(ast.In, keys, st.lists(VALUES, max_size=4)),
    st.builds(ast.NotIn, keys, st.lists(VALUES, max_size=4)),
)


def _negate(node: ast.Node) -> ast.Node:
    return node.operand if isinstance(node, ast.Not) else ast.Not(node)


trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        children.map(_negate),
        st.lists(children, min_size=2, max_size=4).map(ast.And),
        st.lists(children, min_size=2, max_size=4).map(ast.Or),
    ),
    max_leaves=16,
)


# --- Random spellings -----------------------------------------------------------------------


def _ws(draw) -> str:
    return draw(st.sampled_from(["", "", " ", "  ", "\t", " \t "]))


def _quote(draw, value: str) -> str:
    if '"' in value:
        return f"'{value}'"
    if "'" in value:
        return f'"{value}"'
    q = draw(st.sampled_from(["'", '"']))
    return f"{q}{value}{q}"


def _word(draw, *words: str) -> str:
    """A word operator after a label: needs a space before it, may run its words together."""
    return " " + _ws(draw) + _ws(draw).join(words)


def spell(draw, node: ast.Node, needs_parens: bool = False) -> str:
    """Some text that must parse to exactly ``node``."""
    w = lambda: _ws(draw)  # noqa: E731
    match node:
        case ast.All():
            text = f"all({w()})"
        case ast.Global():
            text = f"global({w()})"
        case ast.Has(key=key):
            text = f"has({w()}{key}{w()})"
        case ast.Eq() | ast.Ne():
            text = f"{node.key}{w()}{node.op}{w()}{_quote(draw, node.value)}"
        case ast.LabelValue():
            text = f"{node.key}{_word(draw, *node.op.split())}{w()}{_quote(draw, node.value)}"
        case ast.LabelSet():
            members = list(node.values) + draw(st.lists(st.sampled_from(node.values), max_size=2)) \
                if node.values else []
            members = draw(st.permutations(members))
            body = f"{w()},{w()}".join(_quote(draw, m) for m in members)
            if members and draw(st.booleans()):
                body += ","
            text = f"{node.key}{_word(draw, *node.op.split())}{w()}{{{w()}{body}{w()}}}"
        case ast.Not(operand=operand):
            bangs = "!" * draw(st.sampled_from([1, 1, 3]))
            text = f"{bangs}{w()}{spell(draw, operand, needs_parens=True)}"
        case ast.And(operands=operands):
            # An And inside an And keeps its own group, so it needs parentheses; an Or does
            # too (precedence); anything else may go without.
            parts = [spell(draw, o, needs_parens=isinstance(o, ast.BoolOp)) for o in operands]
            text = f"{w()}&&{w()}".join(parts)
        case ast.Or(operands=operands):
            # An And inside an Or needs no parentheses: && binds tighter than ||.
            parts = [spell(draw, o, needs_parens=isinstance(o, ast.Or)) for o in operands]
            text = f"{w()}||{w()}".join(parts)
        case _:
            raise AssertionError(node)
    for _ in range(draw(st.integers(0, 2)) + (1 if needs_parens and isinstance(node, ast.BoolOp)
                                              else 0)):
        text = f"({w()}{text}{w()})"
    return f"{w()}{text}{w()}"


@st.composite
def spelled_trees(draw):
    node = draw(trees)
    return node, spell(draw, node)


# --- Properties -----------------------------------------------------------------------------


@given(trees)
@settings(max_examples=500)
def test_canonical_form_round_trips_and_is_idempotent(node):
    text = str(node)
    sel = parse(text)
    assert sel.root == node
    assert str(sel) == text
    assert str(parse(str(sel))) == text
    assert sel.unique_id() == Selector(node).unique_id()


@given(spelled_trees(), st.lists(LABELS, max_size=8))
@settings(max_examples=500)
def test_any_spelling_parses_to_the_tree_and_evaluates_like_the_canonical_form(case, label_maps):
    node, text = case
    sel = parse(text)
    assert sel.root == node, text
    canonical = parse(str(sel))
    for labels in label_maps:
        expected = node.evaluate(labels)
        assert sel.evaluate(labels) is expected, (text, labels)
        assert canonical.evaluate(labels) is expected, (str(sel), labels)


@given(trees, st.lists(LABELS, max_size=8))
@settings(max_examples=500)
def test_compiled_evaluation_matches_reference(node, label_maps):
    compiled = compile_node(node)
    for labels in label_maps:
        assert compiled(labels) is node.evaluate(labels), (str(node), labels)
        assert compiled(MappingProxyType(labels)) is node.evaluate(labels)


@given(st.text(alphabet="ab(){}!=&|,'\" \tincotsarwhdxelgb", max_size=40))
@settings(max_examples=1000)
def test_arbitrary_text_parses_or_raises_selector_error(text):
    try:
        sel = parse(text)
    except SelectorError as err:
        assert 0 <= err.position <= len(text)
        return
    canonical = str(sel)
    assert str(parse(canonical)) == canonical
