"""The desired state of Felix's nftables table, what the kernel holds, and the difference.

Managers write *desired* objects into a `Table` (chains as lists of rule texts, sets and
verdict maps as element dicts) and the table remembers which names are dirty. `transaction()`
compares the dirty objects with what it believes the kernel holds and renders ONE nft
script that changes only those: set elements added or removed, a chain created, rewritten
(`flush chain` + its rules) or deleted, a set or map created or deleted. After the runner
succeeds, `commit()` records the new kernel state; after a failure the caller resyncs.

Comparison. nft prints rules in its own normalised syntax, so rule text cannot be compared
with what we rendered. Instead every rule carries `comment "<hash of its rendered text>"`;
the read-back (readback.py) yields each chain as its tuple of comment hashes, so a chain
flushed, edited or reordered by hand compares unequal and is rewritten. Set and map elements
are kept in the canonical text nft prints (`10.0.0.1`, `10.1.0.0/16`, `10.0.0.1 . 6 . 80`,
`"cali1"` → `jump fw-cali1`), so they compare directly.

Transaction order (`Script`, which names the phases; `Script.lines()` says why): create the
table → delete sets and chains being replaced → create sets/maps → delete then add set
elements → create chains → flush chains that are going away → rewrite dirty chains → update
map elements → delete chains → delete sets. Every reference is created before it is used and
dropped before its target.

Element syntax. nft 1.0.6 answers `add element` and `delete element` by dumping every
element of every interval set in the table first (its overlap check), which at Calico scale
costs more than the rest of a small transaction together (~110 ms at 1,000 endpoints). So
elements are added as `add set|map <name> { <spec>; elements = { ... } }` — the same kernel
operation (the set exists with that spec; the kernel still rejects overlaps) without the
dump — and removed with `delete element` only in small tables; in large ones a set losing
elements is flushed and refilled within the same transaction (`_flush_instead_of_delete`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from calico.felix.heap import compact


@dataclass(frozen=True, slots=True)
class SetSpec:
    """A named set (map_to is None) or map (map_to "verdict")."""

    type: tuple[str, ...]
    flags: tuple[str, ...] = ()
    map_to: str | None = None

    def render(self) -> str:
        kind = " . ".join(self.type)
        body = f"type {kind} : {self.map_to};" if self.map_to else f"type {kind};"
        if self.flags:
            body += f" flags {', '.join(self.flags)};"
        return body


@dataclass(frozen=True, slots=True)
class BaseHook:
    type: str  # filter | nat
    hook: str  # prerouting | input | forward | output | postrouting
    priority: int
    policy: str = "accept"

    def render(self) -> str:
        return (f"type {self.type} hook {self.hook} priority {self.priority}; "
                f"policy {self.policy};")


FETCH_CHEAP = 2000  # interval-set elements nft can dump for a `delete element` in ~10 ms


def rule_hash(rule: str) -> str:
    return hashlib.blake2b(rule.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class Chain:
    rules: tuple[str, ...] = ()
    base: BaseHook | None = None

    @property
    def hashes(self) -> tuple[str, ...]:
        return tuple(rule_hash(r) for r in self.rules)


@dataclass(slots=True)
class SetState:
    spec: SetSpec
    elements: dict[str, str | None] = field(default_factory=dict)  # key -> map value


@dataclass(frozen=True, slots=True)
class ChainState:
    """A chain as the kernel holds it: its hook and its rules' hashes."""

    base: BaseHook | None
    hashes: tuple[str, ...]


@dataclass(slots=True)
class KernelState:
    sets: dict[str, SetState] = field(default_factory=dict)
    chains: dict[str, ChainState] = field(default_factory=dict)
    exists: bool = False


@dataclass(slots=True)
class Script:
    """One transaction's nft commands, grouped by phase; `lines()` gives them in phase order.
    Each phase list keeps the order its objects were visited in (sorted names)."""

    table: list[str] = field(default_factory=list)  # `add table`, on a cold start only
    replaced: list[str] = field(default_factory=list)  # new spec or hook: delete, re-add below
    new_sets: list[str] = field(default_factory=list)  # sets with their elements; maps empty
    set_element_dels: list[str] = field(default_factory=list)  # or flushes, in a large table
    set_element_adds: list[str] = field(default_factory=list)
    new_chains: list[str] = field(default_factory=list)
    chain_flushes: list[str] = field(default_factory=list)  # of chains going away
    rewrites: list[str] = field(default_factory=list)  # flush + every rule of a dirty chain
    map_element_dels: list[str] = field(default_factory=list)
    map_element_adds: list[str] = field(default_factory=list)
    chain_dels: list[str] = field(default_factory=list)
    set_dels: list[str] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        """Every command, phase by phase, so that each object exists before anything refers
        to it and nothing refers to it when it goes:
        - the table holds everything; a set or chain whose spec or hook changed is deleted
          before it is re-created under its name (with the new ones, next);
        - sets and maps are created before rules match on them; set elements are deleted
          (or the set flushed) before they are added, so a refill ends with what is wanted;
        - chains are created before rules jump to them and map elements name them; then a
          chain going away is flushed (its jumps and set references dropped) and the dirty
          chains are rewritten, which may use any new set or chain;
        - map elements name chains (`"cali1" : jump fw-cali1`): removed and added once every
          new chain exists, and before any chain is deleted;
        - chains are deleted once nothing jumps to them, sets last, once no rule uses them.
        """
        for phase in (self.table, self.replaced, self.new_sets, self.set_element_dels,
                      self.set_element_adds, self.new_chains, self.chain_flushes,
                      self.rewrites, self.map_element_dels, self.map_element_adds,
                      self.chain_dels, self.set_dels):
            yield from phase


@dataclass(frozen=True, slots=True)
class _ElementChange:
    """A set or map that stays, with the elements it loses and gains (and all it wants)."""

    name: str
    spec: SetSpec
    gone: list[str]
    new: list[tuple[str, str | None]]
    wanted: dict[str, str | None]


class Table:
    """Desired state + believed kernel state + dirty names for one nft table. Managers `put_*`
    and `remove_*`; the dataplane runs `transaction()`, then `commit()`s or `load_kernel()`s."""

    def __init__(self, family: str, name: str) -> None:
        self.family, self.name = family, name
        self.chains: dict[str, Chain] = {}
        self.sets: dict[str, SetState] = {}
        self.kernel = KernelState()
        self._dirty_chains: set[str] = set()
        self._dirty_sets: set[str] = set()

    # ---- desired state ----------------------------------------------------------------

    def put_chain(self, name: str, chain: Chain) -> None:
        if self.chains.get(name) != chain:
            self.chains[name] = chain
            self._dirty_chains.add(name)

    def remove_chain(self, name: str) -> None:
        if self.chains.pop(name, None) is not None or name in self.kernel.chains:
            self._dirty_chains.add(name)

    def put_set(self, name: str, spec: SetSpec,
                elements: Mapping[str, str | None] | Iterable[str]) -> None:
        """Replace a set's (or map's) whole content."""
        elems = dict(elements) if isinstance(elements, Mapping) else dict.fromkeys(elements)
        cur = self.sets.get(name)
        if cur is None or cur.spec != spec or cur.elements != elems:
            self.sets[name] = SetState(spec, elems)
            self._dirty_sets.add(name)

    def update_elements(self, name: str, added: Mapping[str, str | None] | Iterable[str] = (),
                        removed: Iterable[str] = ()) -> None:
        elems = self.sets[name].elements
        held = len(elems)
        for key in removed:
            elems.pop(key, None)
        if len(elems) < held:
            compact(elems)
        elems.update(added if isinstance(added, Mapping) else dict.fromkeys(added))
        self._dirty_sets.add(name)

    def remove_set(self, name: str) -> None:
        if self.sets.pop(name, None) is not None or name in self.kernel.sets:
            self._dirty_sets.add(name)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty_chains or self._dirty_sets or not self.kernel.exists)

    def load_kernel(self, kernel: KernelState) -> list[str]:
        """Adopt a read-back of the kernel. Returns the drift: the sets and chains whose
        read-back differs from what the table believed the kernel held, which become dirty.
        Objects that match keep the believed copy (it shares its strings with the desired
        state; a periodic refresh then leaves no second copy of the ruleset behind) and are
        not re-diffed; objects dirty before stay dirty. (A desired object missing from the
        belief is always dirty already: only a commit puts it there, and only drift takes it
        out.) The first read-back is all drift: nothing is believed yet."""
        b = self.kernel
        drift: list[str] = []
        for believed, read, dirty in ((b.sets, kernel.sets, self._dirty_sets),
                                      (b.chains, kernel.chains, self._dirty_chains)):
            for name in sorted(believed.keys() | read.keys()):
                have = read.get(name)
                if believed.get(name) == have:
                    continue
                drift.append(name)
                dirty.add(name)
                if have is None:
                    del believed[name]
                else:
                    believed[name] = have
        b.exists = kernel.exists
        return drift

    # ---- the transaction ----------------------------------------------------------------

    def transaction(self) -> str:
        """The script that moves the kernel to the desired state ("" if nothing to do)."""
        t = f"{self.family} {self.name}"
        script = Script(table=[] if self.kernel.exists else [f"add table {t}"])
        changes = self._script_sets(script, t)
        self._script_elements(script, t, changes)
        self._script_chains(script, t)
        lines = list(script.lines())
        if not lines:  # a table that does not exist yet always has its `add table`
            return ""
        return "\n".join(lines) + "\n"

    def _script_sets(self, script: Script, t: str) -> list[_ElementChange]:
        """Create, replace and delete the dirty sets and maps; returns the element changes
        of those that stay (a set created with its elements needs none)."""
        changes: list[_ElementChange] = []
        for name in sorted(self._dirty_sets):
            want, have = self.sets.get(name), self.kernel.sets.get(name)
            if want is None:
                if have is not None:
                    script.set_dels.append(f"delete {_kind(have.spec)} {t} {name}")
                continue
            if have is not None and have.spec != want.spec:
                script.replaced.append(f"delete {_kind(have.spec)} {t} {name}")
                have = None
            if have is None:
                have = SetState(want.spec)
                if want.spec.map_to or not want.elements:  # map elements name chains: later
                    script.new_sets.append(f"add {_kind(want.spec)} {t} {name} "
                                           f"{{ {want.spec.render()} }}")
                else:
                    script.new_sets.extend(_add_elements(t, name, want.spec,
                                                         want.elements.items()))
                    continue
            gone = [key for key, val in have.elements.items()
                    if key not in want.elements or want.elements[key] != val]
            new = [(key, val) for key, val in want.elements.items()
                   if key not in have.elements or have.elements[key] != val]
            if gone or new:
                changes.append(_ElementChange(name, want.spec, gone, new, want.elements))
        return changes

    def _script_elements(self, script: Script, t: str, changes: list[_ElementChange]) -> None:
        """Remove and add elements: `delete element`, or in a large table flush and refill."""
        flush = self._flush_instead_of_delete(changes)
        for c in changes:
            if c.spec.map_to:
                dels, adds = script.map_element_dels, script.map_element_adds
            else:
                dels, adds = script.set_element_dels, script.set_element_adds
            new = c.new
            if c.gone and flush:
                dels.append(f"flush {_kind(c.spec)} {t} {c.name}")
                new = list(c.wanted.items())
            elif c.gone:
                dels.extend(_chunks(f"delete element {t} {c.name}", c.gone))
            if new:
                adds.extend(_add_elements(t, c.name, c.spec, new))

    def _script_chains(self, script: Script, t: str) -> None:
        """Create, rewrite (flush + every rule) and delete the dirty chains."""
        for name in sorted(self._dirty_chains):
            want, have = self.chains.get(name), self.kernel.chains.get(name)
            if want is None:
                if have is not None:
                    if have.hashes:
                        script.chain_flushes.append(f"flush chain {t} {name}")
                    script.chain_dels.append(f"delete chain {t} {name}")
                continue
            if have is not None and have.base != want.base:
                script.replaced += [f"flush chain {t} {name}", f"delete chain {t} {name}"]
                have = None
            if have is None:
                spec = f" {{ {want.base.render()} }}" if want.base else ""
                script.new_chains.append(f"add chain {t} {name}{spec}")
            elif have.hashes == want.hashes:
                continue
            elif have.hashes:
                script.rewrites.append(f"flush chain {t} {name}")
            script.rewrites.extend(f'add rule {t} {name} {rule} comment "{h}"'
                                   for rule, h in zip(want.rules, want.hashes, strict=True))

    def _flush_instead_of_delete(self, changes: list[_ElementChange]) -> bool:
        """Whether to remove elements by flushing each set that loses some and re-adding what
        it keeps, instead of `delete element`. nft (1.0.6) answers any `delete element` by
        first dumping every element of every interval set in the table (~110 ms at 1,000
        endpoints, whatever the set); a flush + re-add costs in proportion to the sets
        touched. Deleting stays the choice while the table is small."""
        refill = sum(len(c.wanted) for c in changes if c.gone)
        if not refill:
            return False
        dump = sum(len(s.elements) for s in self.kernel.sets.values()
                   if "interval" in s.spec.flags and len(s.spec.type) == 1)
        return dump > max(refill, FETCH_CHEAP)

    def commit(self) -> None:
        """The last transaction succeeded: the kernel now holds the desired dirty objects."""
        k = self.kernel
        k.exists = True
        for name in self._dirty_sets:
            want = self.sets.get(name)
            if want is None:
                k.sets.pop(name, None)
            else:
                k.sets[name] = SetState(want.spec, dict(want.elements))
        for name in self._dirty_chains:
            want_c = self.chains.get(name)
            if want_c is None:
                k.chains.pop(name, None)
            else:
                k.chains[name] = ChainState(want_c.base, want_c.hashes)
        self._dirty_sets.clear()
        self._dirty_chains.clear()


def _kind(spec: SetSpec) -> str:
    return "map" if spec.map_to else "set"


def _add_elements(t: str, name: str, spec: SetSpec, elements) -> list[str]:
    items = [f"{key} : {val}" if val else key for key, val in elements]
    return _chunks(f"add {_kind(spec)} {t} {name} {{ {spec.render()} elements =", items,
                   tail=" }")


def _chunks(head: str, items: list[str], size: int = 2000, tail: str = "") -> list[str]:
    return [f"{head} {{ {', '.join(items[i:i + size])} }}{tail}"
            for i in range(0, len(items), size)]
