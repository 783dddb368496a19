"""Read-back: `nft -j list table` → the `KernelState` the Table diffs against.

Chains become their hook and the tuple of their rules' comments (the hash of each rule's
rendered text, see table.py); sets and maps become their spec and canonical element text,
exactly as the renderer writes elements, so desired and kernel compare without guessing how
nft normalises rule syntax.
"""

from __future__ import annotations

from typing import Any

from calico.felix.dataplane.nft.table import BaseHook, ChainState, KernelState, SetSpec, SetState

_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58,
                  "udplite": 136}


def parse_table(doc: dict | None) -> KernelState:
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
