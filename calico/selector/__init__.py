"""Calico's selector language: tokenizer, parser, evaluation and canonical form.

    from calico.selector import parse
    sel = parse("role == 'db' && has(projectcalico.org/namespace)")
    sel.evaluate({"role": "db", "projectcalico.org/namespace": "prod"})  # True
    str(sel)          # '(role == "db" && has(projectcalico.org/namespace))'
    sel.unique_id()   # 's:...' as Calico computes it
"""

from calico.selector.errors import SelectorError
from calico.selector.selector import Selector, check, normalise, parse

__all__ = ["Selector", "SelectorError", "check", "normalise", "parse"]
