"""The label index: which items (endpoints, network sets) each selector matches.

In: items with their own labels and an ordered list of parents (profiles, whose
`labelsToApply` they inherit: the item's own labels win, then the first parent that has the
key), parent label updates, and selectors registered under an id.
Out: `on_match(sel_id, item_id)` / `on_unmatch(sel_id, item_id)` callbacks, each exactly once
per change of the (selector, item) relation.

Cost. Neither side is ever scanned in full when it can be avoided. Every selector is analysed
once into *label restrictions* (`restrictions()`): the keys an item must carry, and, where the
selector says so, the only values they may have (`a == "x" && has(b)` → `a ∈ {x}`, `b`
present). A selector is then indexed under one restricted key (or key and values), so a new or
changed item is only evaluated against selectors whose restriction it could satisfy; and a new
selector is only evaluated against the items in the smallest matching bucket of the
item-by-label-value index. A label change on one item costs the selectors that look at a
changed key; a profile change costs its children. Only selectors with no restriction at all
(`all()`, `!has(a)`, `a != "x"`) are evaluated against every item.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping

from calico.felix.heap import compact
from calico.selector import Selector, ast

ItemID = Hashable
SelID = Hashable

# key -> allowed values (frozenset), or None for "must be present, any value"
Restrictions = dict[str, frozenset[str] | None]

_restriction_cache: dict[str, Restrictions] = {}


def restrictions(sel: Selector) -> Restrictions:
    """The label restrictions every item matching `sel` satisfies (cached by canonical text)."""
    text = str(sel)
    cached = _restriction_cache.get(text)
    if cached is None:
        if len(_restriction_cache) > 50_000:
            _restriction_cache.clear()
        cached = _restriction_cache[text] = _node_restrictions(sel.root)
    return cached


def _node_restrictions(node: ast.Node) -> Restrictions:
    match node:
        case ast.Eq(key=key, value=value):
            return {key: frozenset((value,))}
        case ast.In(key=key, values=values):
            return {key: frozenset(values)}
        case ast.Has(key=key) | ast.Contains(key=key) | ast.StartsWith(key=key) \
                | ast.EndsWith(key=key):
            return {key: None}
        case ast.And(operands=operands):
            out: Restrictions = {}
            for operand in operands:
                for key, values in _node_restrictions(operand).items():
                    if key not in out or out[key] is None:
                        out[key] = values
                    elif values is not None:
                        out[key] = out[key] & values  # type: ignore[operator]
            return out
        case ast.Or(operands=operands):
            parts = [_node_restrictions(o) for o in operands]
            common = set(parts[0]).intersection(*parts[1:])
            out = {}
            for key in common:
                vals = [p[key] for p in parts]
                out[key] = None if any(v is None for v in vals) else frozenset().union(*vals)
            return out
    return {}  # Ne, NotIn, Not, All, Global: nothing is required


class _Item:
    __slots__ = ("own", "parents", "labels")

    def __init__(self, own: Mapping[str, str], parents: tuple[str, ...]) -> None:
        self.own = own
        self.parents = parents
        self.labels: dict[str, str] = {}


class LabelIndex:
    """Which registered selectors match which items (with labels inherited from parents),
    kept incrementally: `on_match`/`on_unmatch` once per change of a (selector, item) pair."""

    def __init__(self, on_match: Callable[[SelID, ItemID], None],
                 on_unmatch: Callable[[SelID, ItemID], None]) -> None:
        self._on_match = on_match
        self._on_unmatch = on_unmatch
        self._items: dict[ItemID, _Item] = {}
        self._parent_labels: dict[str, Mapping[str, str]] = {}
        self._children: dict[str, set[ItemID]] = {}
        # key -> value -> items with that (effective) label
        self._by_value: dict[str, dict[str, set[ItemID]]] = {}
        self._key_count: dict[str, int] = {}
        # selectors
        self._selectors: dict[SelID, Selector] = {}
        self._sel_keys: dict[SelID, frozenset[str]] = {}
        self._sel_bucket: dict[SelID, tuple] = {}
        self._unrestricted: set[SelID] = set()
        self._sels_by_present: dict[str, set[SelID]] = {}
        self._sels_by_value: dict[tuple[str, str], set[SelID]] = {}
        # matches, both ways
        self._matches: dict[SelID, set[ItemID]] = {}
        self._item_matches: dict[ItemID, set[SelID]] = {}

    # ---- queries ---------------------------------------------------------------------------

    def matches(self, sel_id: SelID) -> frozenset[ItemID]:
        return frozenset(self._matches.get(sel_id, ()))

    def item_matches(self, item_id: ItemID) -> frozenset[SelID]:
        return frozenset(self._item_matches.get(item_id, ()))

    def labels(self, item_id: ItemID) -> Mapping[str, str] | None:
        item = self._items.get(item_id)
        return None if item is None else item.labels

    # ---- selectors -------------------------------------------------------------------------

    def update_selector(self, sel_id: SelID, sel: Selector) -> None:
        old = self._selectors.get(sel_id)
        if old is not None:
            if old == sel:
                return
            self._unindex_selector(sel_id)
        self._selectors[sel_id] = sel
        self._sel_keys[sel_id] = sel.label_keys()
        self._index_selector(sel_id, sel)
        evaluate = sel.evaluate
        current = self._matches.setdefault(sel_id, set())
        new = {i for i in self._candidate_items(sel) if evaluate(self._items[i].labels)}
        for item_id in current - new:
            self._unmatch(sel_id, item_id)
        for item_id in new - current:
            self._match(sel_id, item_id)

    def remove_selector(self, sel_id: SelID, notify: bool = True) -> None:
        """Forget a selector; with `notify`, report an unmatch for each item it matched."""
        if sel_id not in self._selectors:
            return
        self._unindex_selector(sel_id)
        del self._selectors[sel_id], self._sel_keys[sel_id]
        for item_id in list(self._matches.get(sel_id, ())):
            if notify:
                self._unmatch(sel_id, item_id)
            else:
                self._item_matches[item_id].discard(sel_id)
        self._matches.pop(sel_id, None)

    def _index_selector(self, sel_id: SelID, sel: Selector) -> None:
        restr = restrictions(sel)
        if not restr:
            self._unrestricted.add(sel_id)
            self._sel_bucket[sel_id] = ()
            return
        # Index under the most selective restriction: a value set beats mere presence.
        key, values = min(restr.items(),
                          key=lambda kv: (kv[1] is None, len(kv[1] or ()), kv[0]))
        if values is None:
            self._sels_by_present.setdefault(key, set()).add(sel_id)
            self._sel_bucket[sel_id] = (key,)
        else:
            for value in values:
                self._sels_by_value.setdefault((key, value), set()).add(sel_id)
            self._sel_bucket[sel_id] = (key, values)

    def _unindex_selector(self, sel_id: SelID) -> None:
        bucket = self._sel_bucket.pop(sel_id)
        if not bucket:
            self._unrestricted.discard(sel_id)
        elif len(bucket) == 1:
            _discard(self._sels_by_present, bucket[0], sel_id)
        else:
            for value in bucket[1]:
                _discard(self._sels_by_value, (bucket[0], value), sel_id)

    def _candidate_items(self, sel: Selector) -> Iterable[ItemID]:
        restr = restrictions(sel)
        if not restr:
            return self._items
        best: list[set[ItemID]] = []
        best_size = -1
        for key, values in restr.items():
            by_value = self._by_value.get(key)
            if by_value is None:
                return ()
            if values is None:
                size = self._key_count.get(key, 0)
                if best_size < 0 or size < best_size:
                    best, best_size = list(by_value.values()), size
            else:
                sets = [by_value[v] for v in values if v in by_value]
                size = sum(map(len, sets))
                if best_size < 0 or size < best_size:
                    best, best_size = sets, size
        return _chain(best)

    def _candidate_selectors(self, labels: Mapping[str, str]) -> set[SelID]:
        out = set(self._unrestricted)
        by_present, by_value = self._sels_by_present, self._sels_by_value
        for kv in labels.items():
            sels = by_value.get(kv)
            if sels:
                out.update(sels)
            sels = by_present.get(kv[0])
            if sels:
                out.update(sels)
        return out

    # ---- items and parents -----------------------------------------------------------------

    def update_item(self, item_id: ItemID, labels: Mapping[str, str],
                    parents: Iterable[str] = ()) -> None:
        parents = tuple(parents)
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item(labels, parents)
            for parent in parents:
                self._children.setdefault(parent, set()).add(item_id)
            self._relabel(item_id, item, new=True)
            return
        if item.parents != parents:
            for parent in item.parents:
                _discard(self._children, parent, item_id)
            for parent in parents:
                self._children.setdefault(parent, set()).add(item_id)
        item.own, item.parents = labels, parents
        self._relabel(item_id, item, new=False)

    def remove_item(self, item_id: ItemID) -> None:
        item = self._items.pop(item_id, None)
        if item is None:
            return
        for parent in item.parents:
            _discard(self._children, parent, item_id)
        for sel_id in list(self._item_matches.get(item_id, ())):
            self._unmatch(sel_id, item_id)
        self._item_matches.pop(item_id, None)
        self._unindex_labels(item_id, item.labels)

    def update_parent(self, parent_id: str, labels: Mapping[str, str] | None) -> None:
        """A profile's labelsToApply (None or {} when it has none or is gone)."""
        labels = labels or {}
        if self._parent_labels.get(parent_id, {}) == labels:
            return
        if labels:
            self._parent_labels[parent_id] = labels
        else:
            self._parent_labels.pop(parent_id, None)
        for item_id in list(self._children.get(parent_id, ())):
            self._relabel(item_id, self._items[item_id], new=False)

    def _effective(self, item: _Item) -> dict[str, str]:
        if not item.parents:
            return dict(item.own)
        out: dict[str, str] = {}
        for parent in reversed(item.parents):
            plabels = self._parent_labels.get(parent)
            if plabels:
                out.update(plabels)
        out.update(item.own)
        return out

    def _relabel(self, item_id: ItemID, item: _Item, new: bool) -> None:
        old = item.labels
        labels = self._effective(item)
        if not new and labels == old:
            return
        item.labels = labels
        self._unindex_labels(item_id, old)
        self._index_labels(item_id, labels)
        matched = self._item_matches.setdefault(item_id, set())
        if new:
            candidates = self._candidate_selectors(labels)
        else:
            changed = {k for k in old.keys() | labels.keys() if old.get(k) != labels.get(k)}
            sel_keys = self._sel_keys
            candidates = {s for s in self._candidate_selectors(labels) | matched
                          if not changed.isdisjoint(sel_keys[s])}
        selectors = self._selectors
        for sel_id in candidates:
            now = selectors[sel_id].evaluate(labels)
            if now != (sel_id in matched):
                if now:
                    self._match(sel_id, item_id)
                else:
                    self._unmatch(sel_id, item_id)

    def _index_labels(self, item_id: ItemID, labels: Mapping[str, str]) -> None:
        by_value, counts = self._by_value, self._key_count
        for key, value in labels.items():
            by_value.setdefault(key, {}).setdefault(value, set()).add(item_id)
            counts[key] = counts.get(key, 0) + 1

    def _unindex_labels(self, item_id: ItemID, labels: Mapping[str, str]) -> None:
        by_value, counts = self._by_value, self._key_count
        for key, value in labels.items():
            values = by_value[key]
            _discard(values, value, item_id)
            if not values:
                del by_value[key]
            counts[key] -= 1
            if not counts[key]:
                del counts[key]

    # ---- match bookkeeping -----------------------------------------------------------------

    def _match(self, sel_id: SelID, item_id: ItemID) -> None:
        self._matches.setdefault(sel_id, set()).add(item_id)
        self._item_matches.setdefault(item_id, set()).add(sel_id)
        self._on_match(sel_id, item_id)

    def _unmatch(self, sel_id: SelID, item_id: ItemID) -> None:
        matches, item_matches = self._matches[sel_id], self._item_matches[item_id]
        matches.discard(item_id)
        item_matches.discard(sel_id)
        compact(matches)
        compact(item_matches)
        self._on_unmatch(sel_id, item_id)


def _discard(multidict: dict, key: Hashable, value: Hashable) -> None:
    values = multidict.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del multidict[key]
        else:
            compact(values)


def _chain(sets: Iterable[Iterable[ItemID]]) -> list[ItemID]:
    out: list[ItemID] = []
    for s in sets:
        out.extend(s)
    return out
