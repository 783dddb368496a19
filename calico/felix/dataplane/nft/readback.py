"""Read-back: the kernel's listing of Felix's table → the `KernelState` the Table diffs against.

Chains become their hook and the tuple of their rules' comments (the hash of each rule's
rendered text, see table.py); sets and maps become their spec and canonical element text,
exactly as the renderer writes elements, so desired and kernel compare without guessing how
nft normalises rule syntax.

Two parsers of the same state: `parse_text` reads the text listing (`nft -y -p list table`:
numeric priorities and protocols), which is what the runners use — nft prints text about 2.5×
faster than JSON and the text parses about 10× faster than `json.loads` of the JSON, because
only a rule's trailing comment is looked at; `parse_table` reads `nft -j list table` (kept for
runners and tests that speak JSON).
"""

from __future__ import annotations

import io
import re
from typing import Any

from calico.felix.dataplane.nft.table import BaseHook, ChainState, KernelState, SetSpec, SetState

_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58,
                  "udplite": 136}
_COMMENT = re.compile(r'comment "([^"]*)"$')
_HOOK = re.compile(r"type (\w+) hook (\w+)(?: device \S+)? priority (-?\d+); policy (\w+);")
_QUOTED_ITEMS = re.compile(r'(?:"[^"]*"|[^,])+')


def parse_text(text: str | None, believed: KernelState | None = None) -> KernelState:
    """`nft -y -p list table <family> <name>` (None: the table does not exist).

    With `believed` (what the Table thinks the kernel holds), each set or chain read back
    that equals the believed one is replaced by it as soon as it is parsed, so the parse
    never holds a second copy of the whole ruleset: at most one object's worth of new
    strings is alive at a time (issue #10: a periodic refresh of the lab load's table used
    to leave Felix's pymalloc arenas about 1.5 MiB larger)."""
    state = KernelState()
    if text is None:
        return state
    state.exists = True
    known = believed or KernelState()
    # Lines one at a time, not a list of them all: at Calico scale that list is tens of
    # thousands of strings alive at once, and the pymalloc arenas they spread over stayed in
    # Felix's RSS after each periodic refresh (issue #10).
    lines = io.StringIO(text)
    for line in lines:
        head = line.strip()
        if head.startswith(("set ", "map ")) and head.endswith("{"):
            kind, name = head.split()[:2]
            state.sets[name] = _shared(_parse_set(kind == "map", lines), known.sets.get(name))
        elif head.startswith("chain ") and head.endswith("{"):
            name = head.split()[1]
            state.chains[name] = _shared(_parse_chain(lines), known.chains.get(name))
    return state


def _shared(read, believed):
    """The believed object when it equals what was read, else what was read."""
    return believed if believed == read else read


def _parse_set(is_map: bool, lines) -> SetState:
    types: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    map_to = None
    body: list[str] = []
    for line in lines:
        item = line.strip()
        if item == "}":
            break
        if item.startswith("type "):
            key, _, value = item[5:].partition(" : ")
            types = tuple(key.split(" . "))
            map_to = value or None
        elif item.startswith("flags "):
            flags = tuple(f.strip() for f in item[6:].split(","))
        elif item.startswith("elements = {"):
            body.append(item[12:])
            while not item.endswith("}"):
                item = next(lines).strip()
                body.append(item)
            body[-1] = body[-1][:-1]
    spec = SetSpec(types, flags, map_to if is_map else None)
    text = " ".join(body)
    items = _QUOTED_ITEMS.findall(text) if '"' in text else text.split(",")
    elements: dict[str, str | None] = {}
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if spec.map_to:
            key, _, verdict = item.partition(" : ")
            elements[_element(key)] = verdict.strip()
        else:
            elements[_element(item)] = None
    return SetState(spec, elements)


def _element(text: str) -> str:
    if " . " not in text:
        return str(_PROTO_NUMBERS.get(text, text))
    return " . ".join(str(_PROTO_NUMBERS.get(p, p)) for p in text.split(" . "))


def _parse_chain(lines) -> ChainState:
    base = None
    hashes: list[str] = []
    for line in lines:
        item = line.strip()
        if item == "}":
            break
        if not item:
            continue
        if base is None and not hashes and item.startswith("type "):
            m = _HOOK.match(item)
            if m:
                base = BaseHook(m[1], m[2], int(m[3]), m[4])
                continue
        m = _COMMENT.search(item)
        hashes.append(m[1] if m else "")
    return ChainState(base, tuple(hashes))


def parse_table(doc: dict | None) -> KernelState:
    """`nft -j list table` parsed (None: the table does not exist)."""
    state = KernelState()
    if doc is None:
        return state
    state.exists = True
    rules: dict[str, list[str]] = {}
    bases: dict[str, BaseHook | None] = {}
    for item in doc.get("nftables", []):
        if "set" in item or "map" in item:
            obj = item.get("set") or item["map"]
            spec = SetSpec(_tuple(obj["type"]), tuple(obj.get("flags", ())), obj.get("map"))
            state.sets[obj["name"]] = SetState(spec, dict(_elements(spec, obj.get("elem", ()))))
        elif "chain" in item:
            c = item["chain"]
            bases[c["name"]] = (BaseHook(c["type"], c["hook"], int(c["prio"]),
                                         c.get("policy", "accept")) if "hook" in c else None)
            rules.setdefault(c["name"], [])
        elif "rule" in item:
            r = item["rule"]
            rules.setdefault(r["chain"], []).append(r.get("comment", ""))
    for name, base in bases.items():
        state.chains[name] = ChainState(base, tuple(rules.get(name, ())))
    return state


def _tuple(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _elements(spec: SetSpec, elems: Any):
    quote = spec.type == ("ifname",)
    for elem in elems:
        if spec.map_to:
            key, verdict = elem
            yield (f'"{key}"' if quote else _value(key)), _verdict(verdict)
        else:
            if isinstance(elem, dict) and "elem" in elem:  # element with options
                elem = elem["elem"]["val"]
            yield _value(elem), None


def _value(v: Any) -> str:
    if isinstance(v, dict):
        if "prefix" in v:
            return f"{v['prefix']['addr']}/{v['prefix']['len']}"
        if "range" in v:
            lo, hi = v["range"]
            return f"{_value(lo)}-{_value(hi)}"
        if "concat" in v:
            return " . ".join(_value(x) for x in v["concat"])
    if isinstance(v, str) and v in _PROTO_NUMBERS:
        return str(_PROTO_NUMBERS[v])
    return str(v)


def _verdict(v: dict) -> str:
    (kind, arg), = v.items()
    if kind in ("jump", "goto"):
        return f"{kind} {arg['target']}"
    return kind
