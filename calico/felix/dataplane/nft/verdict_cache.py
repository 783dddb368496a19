"""The verdict cache: a forwarded packet of a flow that Felix's ruleset has already accepted,
under the same ruleset, is accepted without walking the dispatch, endpoint and policy chains.

Why. A flow whose destination never answers (one-way UDP, a SYN flood, a scan) stays
conntrack state NEW, so every packet walked the whole forward path: at 1,000 policies x 10
rules, 64-byte one-way UDP ran at 0.64 of a conntrack-only ruleset (benchmarks/datapath.py).
An established flow was never affected: `ct state established accept` comes first.

How. The ruleset has a *generation* G (1..MAX_GENERATION), held in the set
`cache-generation` and the map `cache-store` (as G << 16). A packet that reaches the end of
`filter-forward` has been accepted by every endpoint chain on its path; the last rule stores
G in its conntrack entry's mark (`ct mark set meta nfproto map @cache-store`: IPv4 only, and
only on an entry whose low mark bits are clear, so a mark someone else set is never
overwritten; the high bits GEN_MASK are ours). Right after the conntrack rules, a packet
whose entry holds the current G jumps to `cache-hit`, which accepts it unless it enters or
leaves through a workload interface that has no endpoint (those return to the normal path,
whose dispatch drops them, exactly as for an uncached packet: a cached verdict never opens a
path to a workload Felix has not programmed yet). Every transaction that changes anything in
the table replaces the set's and the map's element with G + 1 in the same atomic commit, so
a policy, IP-set or endpoint change applies to an existing unreplied flow on its very next
packet, as without the cache. G lives in elements, not in rule text, because rewriting any
rule costs a transaction far more than an element does (benchmarks/felix_e2e.py: a label
change, one set element, took 8 ms, and 21 ms with a rule rewritten too). The tuple a
verdict is keyed by is conntrack's, which also knows the source address: a workload spoofing
another's address to ride its cached flow is refused earlier by strict reverse-path
filtering (rp_filter=1 on every workload interface, sysctls.py). IPv6 has no such kernel
check (its anti-spoofing is the endpoint chain's rules), so only IPv4 verdicts are cached.
With forward host-endpoint policies in use (applyOnForward) the cache is off altogether: it
would skip them for a spoofed packet from the fabric.

What is not cached: a verdict whose path hit a Log rule (the rule sets the packet mark bit
Marks.no_cache, and the caching rule needs it clear), so Log keeps logging every new-state
packet; and anything not forwarded (input and output keep their full path).

Wrapping, and restarts. A stale mark equal to the current G would be accepted, so no entry
may hold a G from an older ruleset. G only grows within an *epoch*; an epoch starts with the
cache off (no caching rule, no hit rule, no element in the kernel), then every entry's
GEN_MASK bits are cleared (conntrack.clear_mark_bits), then G = 1 goes in. When G would
pass MAX_GENERATION the cache goes off and a new epoch starts. A restarted Felix continues
the kernel's epoch when its set and map hold one generation (`adopt`: the kernel is the
store, and a restart changes nothing in it), and starts a new one otherwise (no table yet,
or a Felix stopped between the steps). Within an epoch a value equal to G can only have
been written while G was current. A conntrack reset that fails leaves the cache off
(traffic still judged in full) and is retried on the next apply.

Mark bits: the ct mark's 0xffff0000 (Calico's mark-mask half; nothing else of ours uses the
ct mark) and the packet-mark bit rules.Marks.no_cache (0x80000).
"""

from __future__ import annotations

from collections.abc import Iterable

from calico.felix.dataplane.nft.table import Chain, SetSpec

GEN_MASK = 0xFFFF0000
GEN_SHIFT = 16
MAX_GENERATION = 0xFFFF
CHAIN = "cache-hit"
GEN_SET, STORE_MAP = "cache-generation", "cache-store"
GEN_SPEC = SetSpec(("mark",))
STORE_SPEC = SetSpec(("nf_proto",), map_to="mark")
HIT_RULE = f"ct mark & {GEN_MASK:#010x} @{GEN_SET} jump {CHAIN}"


def store_rule(no_cache_clear: str) -> str:
    """The last rule of filter-forward (the packet is accepted): remember the generation."""
    return (f"ct mark & {0xFFFFFFFF & ~GEN_MASK:#010x} == 0 {no_cache_clear} "
            f"ct mark set meta nfproto map @{STORE_MAP}")


def elements(generation: int | None) -> tuple[list[str], dict[str, str]]:
    """The elements of GEN_SET and STORE_MAP for a generation (None: the cache is off)."""
    if generation is None:
        return [], {}
    value = f"{generation << GEN_SHIFT:#010x}"
    return [value], {"ipv4": value}


def hit_chain(prefixes: Iterable[str]) -> Chain:
    """Accept, unless an interface on the path has a workload prefix and no endpoint."""
    rules = []
    for p in prefixes:
        rules.append(f'iifname "{p}*" iifname != @wl-from return')
        rules.append(f'oifname "{p}*" oifname != @wl-to return')
    return Chain((*rules, "accept"))


def adopt(gen_elements, store_elements) -> int | None:
    """The generation the kernel's GEN_SET and STORE_MAP elements agree on, if any."""
    keys = list(gen_elements or ())
    if len(keys) != 1 or dict(store_elements or {}) != {"ipv4": keys[0]}:
        return None
    try:
        generation = int(keys[0], 16) >> GEN_SHIFT
    except ValueError:
        return None
    return generation if 1 <= generation <= MAX_GENERATION else None


def next_generation(current: int | None) -> int | None:
    """The generation of the next transaction; None (cache off, a new epoch) after the last
    one, and while off until the marks are reset."""
    if current is None or current >= MAX_GENERATION:
        return None
    return current + 1
