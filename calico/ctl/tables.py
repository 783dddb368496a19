"""calicoctl's tables (`-o ps`, `-o wide`, `-o custom-columns=`), byte for byte as Calico's.

Calico writes each table through Go's text/tabwriter with minwidth 5, tabwidth 1, padding 3,
padchar ' ' and no flags, from a template whose every cell, the last one included, ends with a
tab. So every cell of a column is padded with spaces to max(5, widest cell + 3), including the
last column (lines end in spaces), and each table is followed by an empty line. Each printed
object gets its own table: a List gives a header and one row per item; a resource fetched by
name gives a header and its row.

Per kind: the default headings (ps, wide) and what each heading shows, as Calico's resource
managers define them (Go template semantics: an unset pointer prints `<nil>`, an unset string
nothing, an unset bool `false`; lists of nets cut at 80 characters with `...`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .goformat import go_value

Cell = Callable[[dict[str, Any], "Context"], str]


@dataclass
class Context:
    """What a cell may need beyond its resource: the cluster's default AS number (the Node
    table shows it in brackets for a node without its own)."""

    as_number: Callable[[], str] = lambda: "64512"
    _cache: dict[str, str] = field(default_factory=dict)

    def config(self, name: str) -> str:
        if name not in self._cache:
            self._cache[name] = self.as_number()
        return self._cache[name]


def _get(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def text(path: str) -> Cell:
    """A Go string field: empty when unset."""
    return lambda doc, ctx: "" if _get(doc, path) is None else go_value(_get(doc, path))


def flag(path: str) -> Cell:
    """A Go bool field: `false` when unset."""
    return lambda doc, ctx: "true" if _get(doc, path) is True else "false"


def pointer(path: str) -> Cell:
    """A Go pointer field: `<nil>` when unset."""
    return lambda doc, ctx: go_value(_get(doc, path))


def float_pointer(path: str) -> Cell:
    """A Go *float64 field (an order): `<nil>` when unset, else as %v prints a float64 (an
    integral 2000000 in the JSON is `2e+06`)."""
    def cell(doc: Any, ctx: Any) -> str:
        value = _get(doc, path)
        return go_value(None if value is None else float(value))
    return cell


def number(path: str) -> Cell:
    """A Go integer field: `0` when unset."""
    return lambda doc, ctx: "0" if _get(doc, path) is None else go_value(_get(doc, path))


def or_else(path: str, default: str) -> Cell:
    """`{{if .X}}{{.X}}{{else}}default{{end}}`."""
    return lambda doc, ctx: go_value(_get(doc, path)) if _get(doc, path) else default


def join_and_truncate(items: Any, max_len: int = 0, sep: str = ",") -> str:
    """Calico's join/joinAndTruncate: `,`-joined (a map as sorted `k=v`), cut to max_len
    with `...` as soon as it grows past max_len."""
    if items is None:
        return ""
    if isinstance(items, dict):
        items = sorted(f"{k}={go_value(v)}" for k, v in items.items())
    if not isinstance(items, list):
        items = [items]
    out = ""
    for i, item in enumerate(items):
        out += (sep if i else "") + (item if isinstance(item, str) else _struct(item))
        if 0 < max_len < len(out):
            return out[:max_len - 3] + "..."
    return out


def _struct(value: Any) -> str:
    if isinstance(value, dict):  # a Go struct prints as {field field}
        return "{" + " ".join(go_value(v) for v in value.values()) + "}"
    return go_value(value)


def joined(path: str, max_len: int = 0) -> Cell:
    return lambda doc, ctx: join_and_truncate(_get(doc, path), max_len)


def _bgppeer_node(doc: dict[str, Any], ctx: Context) -> str:
    node = _get(doc, "spec.node") or ""
    if node:
        return node
    return _get(doc, "spec.nodeSelector") or "(global)"


def _node_asn(doc: dict[str, Any], ctx: Context) -> str:
    bgp = _get(doc, "spec.bgp")
    if bgp is None:
        return ""
    asn = bgp.get("asNumber") if isinstance(bgp, dict) else None
    return go_value(asn) if asn else f"({ctx.config('asnumber')})"


def _node_addr(key: str) -> Cell:
    return lambda doc, ctx: go_value(_get(doc, f"spec.bgp.{key}") or "")


@dataclass(frozen=True)
class Table:
    ps: tuple[str, ...]
    wide: tuple[str, ...]
    cells: dict[str, Cell]


NAME: Cell = text("metadata.name")
NAMESPACE: Cell = text("metadata.namespace")
_POLICY = {"NAME": NAME, "NAMESPACE": NAMESPACE, "ORDER": float_pointer("spec.order"),
           "SELECTOR": text("spec.selector"), "TIER": text("spec.tier")}
_GLOBAL_POLICY = {k: v for k, v in _POLICY.items() if k != "NAMESPACE"}
_POLICY_HEADINGS = (("NAME", "TIER"), ("NAME", "TIER", "ORDER", "SELECTOR"))
_NAME_ONLY = Table(("NAME",), ("NAME",), {"NAME": NAME})

TABLES: dict[str, Table] = {
    "BGPConfiguration": Table(
        ("NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"),
        ("NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"),
        {"NAME": NAME, "LOGSEVERITY": text("spec.logSeverityScreen"),
         "MESHENABLED": lambda d, c: go_value(_get(d, "spec.nodeToNodeMeshEnabled"))
         if _get(d, "spec.nodeToNodeMeshEnabled") is not None else "-",
         "ASNUMBER": lambda d, c: go_value(_get(d, "spec.asNumber"))
         if _get(d, "spec.asNumber") is not None else "-"}),
    "AddressSpace": Table(("NAME", "PREFIX"), ("NAME", "PREFIX"),
                          {"NAME": NAME, "PREFIX": text("spec.translationPrefix")}),
    "BGPPeer": Table(
        ("NAME", "PEERIP", "NODE", "ASN"), ("NAME", "PEERIP", "NODE", "ASN"),
        {"NAME": NAME, "PEERIP": text("spec.peerIP"), "NODE": _bgppeer_node,
         "ASN": number("spec.asNumber")}),
    "ClusterInformation": Table(
        ("NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"),
        ("NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"),
        {"NAME": NAME, "CLUSTERGUID": text("spec.clusterGUID"),
         "CLUSTERTYPE": text("spec.clusterType"), "CALICOVERSION": text("spec.calicoVersion"),
         "DATASTOREREADY": pointer("spec.datastoreReady")}),
    "GlobalNetworkPolicy": Table(*_POLICY_HEADINGS, _GLOBAL_POLICY),
    "StagedGlobalNetworkPolicy": Table(*_POLICY_HEADINGS, _GLOBAL_POLICY),
    "NetworkPolicy": Table(*_POLICY_HEADINGS, _POLICY),
    "StagedNetworkPolicy": Table(*_POLICY_HEADINGS, _POLICY),
    "GlobalNetworkSet": Table(("NAME",), ("NAME", "NETS"),
                              {"NAME": NAME, "NETS": joined("spec.nets", 80)}),
    "NetworkSet": Table(("NAME",), ("NAME", "NETS"),
                        {"NAME": NAME, "NAMESPACE": NAMESPACE,
                         "NETS": joined("spec.nets", 80)}),
    "HostEndpoint": Table(
        ("NAME", "NODE"), ("NAME", "NODE", "INTERFACE", "IPS", "PROFILES"),
        {"NAME": NAME, "NODE": text("spec.node"), "INTERFACE": text("spec.interfaceName"),
         "IPS": joined("spec.expectedIPs"), "PROFILES": joined("spec.profiles")}),
    "IPPool": Table(
        ("NAME", "CIDR", "SELECTOR"),
        ("NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED", "DISABLEBGPEXPORT",
         "SELECTOR", "ASSIGNMENTMODE"),
        {"NAME": NAME, "CIDR": text("spec.cidr"), "NAT": flag("spec.natOutgoing"),
         "IPIPMODE": or_else("spec.ipipMode", "Never"),
         "VXLANMODE": or_else("spec.vxlanMode", "Never"), "DISABLED": flag("spec.disabled"),
         "DISABLEBGPEXPORT": flag("spec.disableBGPExport"),
         "SELECTOR": text("spec.nodeSelector"),
         "ASSIGNMENTMODE": or_else("spec.assignmentMode", "Automatic")}),
    "IPReservation": Table(("NAME",), ("NAME", "CIDRS"),
                           {"NAME": NAME, "CIDRS": joined("spec.reservedCIDRs", 80)}),
    "IPAMConfiguration": Table(
        ("NAME", "STRICTAFFINITY", "AUTOALLOCATEBLOCKS"),
        ("NAME", "STRICTAFFINITY", "AUTOALLOCATEBLOCKS", "MAXBLOCKSPERHOST"),
        {"NAME": NAME, "STRICTAFFINITY": flag("spec.strictAffinity"),
         "AUTOALLOCATEBLOCKS": flag("spec.autoAllocateBlocks"),
         "MAXBLOCKSPERHOST": number("spec.maxBlocksPerHost")}),
    "Node": Table(("NAME",), ("NAME", "ASN", "IPV4", "IPV6"),
                  {"NAME": NAME, "ASN": _node_asn, "IPV4": _node_addr("ipv4Address"),
                   "IPV6": _node_addr("ipv6Address")}),
    "Profile": Table(("NAME",), ("NAME", "LABELS"),
                     {"NAME": NAME, "LABELS": joined("spec.labelsToApply")}),
    "Tier": Table(("NAME", "ORDER"), ("NAME", "ORDER"),
                  {"NAME": NAME, "ORDER": float_pointer("spec.order")}),
    "WorkloadEndpoint": Table(
        ("WORKLOAD", "NODE", "NETWORKS", "INTERFACE"),
        ("NAME", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE", "PROFILES", "NATS"),
        {"NAME": NAME, "NAMESPACE": NAMESPACE, "NODE": text("spec.node"),
         "ORCHESTRATOR": text("spec.orchestrator"),
         "WORKLOAD": lambda d, c: _get(d, "spec.workload") or _get(d, "spec.pod") or "",
         "NETWORKS": joined("spec.ipNetworks"), "NATS": joined("spec.ipNATs"),
         "PROFILES": joined("spec.profiles"), "INTERFACE": text("spec.interfaceName")}),
    "BlockAffinity": Table(("NAME", "NODE", "CIDR", "STATE"), ("NAME", "NODE", "CIDR", "STATE"),
                           {"NAME": NAME, "NODE": text("spec.node"),
                            "CIDR": text("spec.cidr"), "STATE": text("spec.state")}),
}


def table_for(kind: str) -> Table:
    return TABLES.get(kind, _NAME_ONLY)


class HeadingError(ValueError):
    pass


def headings_for(kind: str, wide: bool, print_namespace: bool,
                 custom: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The headings of kind's table; NAMESPACE first for namespaced kinds when asked."""
    table = table_for(kind)
    heads = custom if custom is not None else (table.wide if wide else table.ps)
    if print_namespace and "NAMESPACE" in table.cells:
        heads = ("NAMESPACE", *heads)
    for h in heads:
        if h not in table.cells:
            raise HeadingError(f"Unknown heading {h}, valid values are: "
                               f"{', '.join(sorted(table.cells))}")
    return heads


def tabwrite(rows: list[list[str]], minwidth: int = 5, padding: int = 3) -> str:
    """Go's text/tabwriter over lines whose every cell ends in a tab (Calico's settings)."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [max(minwidth, max((len(r[i]) for r in rows if i < len(r)), default=0) + padding)
              for i in range(ncols)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "\n"
                   for r in rows)


def render(kind: str, items: list[dict[str, Any]], heads: tuple[str, ...],
           ctx: Context) -> str:
    """One table: the header line and one line per item, then the empty line Calico adds."""
    cells = table_for(kind).cells
    rows = [list(heads)] + [[cells[h](doc, ctx) for h in heads] for doc in items]
    return tabwrite(rows) + "\n"
