"""How the package reads (STYLE.md, issue #20): every module opens with its contract, every
public class with more than two methods states its own, no module over 500 lines and no
function over 60, and the README's layout names every package and module of calico/. Checked
on the source (ast), so a new offender fails here and names itself.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import re

import calico

ROOT = pathlib.Path(calico.__file__).parent
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


@functools.cache
def _modules() -> dict[str, tuple[str, ast.Module]]:
    """Relative path -> (source, tree) of every module under calico/."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        out[str(path.relative_to(ROOT.parent))] = (text, ast.parse(text, str(path)))
    return out


def test_every_module_states_its_contract():
    missing = [rel for rel, (_, tree) in _modules().items() if not ast.get_docstring(tree)]
    assert missing == []


def test_no_module_over_500_lines():
    long = {rel: len(text.splitlines()) for rel, (text, _) in _modules().items()
            if len(text.splitlines()) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_over_60_lines():
    long = [f"{rel}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for rel, (_, tree) in _modules().items() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def _methods(cls: ast.ClassDef) -> int:
    return sum(isinstance(b, ast.FunctionDef | ast.AsyncFunctionDef) for b in cls.body)


def test_every_public_class_with_more_than_two_methods_states_its_contract():
    missing = [f"{rel}:{node.lineno} {node.name}"
               for rel, (_, tree) in _modules().items() for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
               and _methods(node) > 2 and not ast.get_docstring(node)]
    assert missing == []


def _readme_layout() -> set[str]:
    """The top-level names (`api`, `logsetup`, ...) the README's `calico/` layout block lists."""
    text = (ROOT.parent / "README.md").read_text()
    block = text[text.index("```\ncalico/\n"):]
    block = block[:block.index("\n```", 4)]
    names = set()
    for line in block.splitlines()[1:]:
        if line.startswith("  ") and not line.startswith("   "):
            head = re.split(r"\s{2,}", line.strip())[0]
            names.update(re.findall(r"([a-z_]+)(?:/|\.py)", head))
    return names


def test_readme_layout_names_every_package_and_module_of_the_tree():
    tree = {p.stem for p in ROOT.iterdir()
            if (p / "__init__.py").exists() or (p.suffix == ".py" and p.stem != "__init__")}
    assert _readme_layout() == tree
