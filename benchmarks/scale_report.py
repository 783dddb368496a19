"""Printing `scale_lab.py`'s figures: one block per size and mode, then per mode the
exponent of a power-law fit of each figure from the smallest to the largest completed size.

`summary(fig)` turns one size's raw samples into the named scalar figures the growth table
fits; missing samples (a host that never answered) count as failures and are printed.
`markdown(results)` is the same as one table (sizes as columns, per mode, with b), the shape
of README's Performance table.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.scale_figures import percentile, power_law_exponent

DAEMONS = ("supervisor", "felix", "bgp daemon", "bird", "tunnel addr")
MB = 1 << 20


def _p(values: list, q: float) -> float | None:
    got = [v for v in values if v is not None]
    return percentile(got, q) if got else None


def summary(fig: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {"up s": fig.get("up_s"),
                                    "workloads added s": fig.get("workloads_s")}
    for key, label in (("reach", "new workload"), ("policy", "policy change")):
        vals = fig.get(key) or []
        out[f"{label} p50 s"] = _p(vals, 50)
        out[f"{label} p99 s"] = _p(vals, 99)
    for d in DAEMONS:
        sizes = [r.get(d, 0) for r in fig.get("rss") or []]
        out[f"RSS {d} MB"] = statistics.mean(sizes) / MB if sizes else None
    totals = [sum(r.values()) for r in fig.get("rss") or []]
    out["RSS all MB"] = statistics.mean(totals) / MB if totals else None
    bgp = fig.get("bgp") or {}
    if bgp:
        out["sessions total"] = sum(bgp["sessions"]) / 2
        out["sessions/host"] = statistics.mean(bgp["sessions"])
        out["routes/host"] = statistics.mean(bgp["routes"])
    for k, v in (fig.get("etcd") or {}).items():
        out[f"etcd {k}"] = v
    return out


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"


def print_size(fig: dict[str, Any], args) -> None:
    n, mode, per_host = fig["n"], fig["mode"], fig.get("workloads", args.workloads)
    print(f"\n== {mode}, {n} hosts, {per_host} workloads each, "
          f"{fig.get('policies', args.policies)} policies ({fig.get('date', 'now')}): "
          f"{'complete' if fig['ok'] else 'INCOMPLETE: ' + fig['why']}")
    if "up_s" in fig:
        added = (f"; {n * per_host} workloads added in {fig['workloads_s']:.1f} s"
                 if "workloads_s" in fig else "")
        print(f"lab up -> every session Established: {fig['up_s']:.1f} s{added}")
    for key, label in (("reach", "new workload -> reachable from every other host"),
                       ("policy", "policy change -> programmed on every host")):
        vals = fig.get(key) or []
        if vals:
            missing = sum(v is None for v in vals)
            print(f"{label}: p50 {_p(vals, 50) * 1000:.0f} ms, p99 {_p(vals, 99) * 1000:.0f}"
                  f" ms, max {max(v for v in vals if v is not None) * 1000:.0f} ms "
                  f"({len(vals)} samples{f', {missing} never' if missing else ''})")
    if fig.get("add"):
        after = fig.get("after_add") or [None]
        print(f"  (CNI ADD of the new workload: median "
              f"{statistics.median(fig['add']) * 1000:.0f} ms; from ADD's return to the "
              f"reply: p50 {(_p(after, 50) or 0) * 1000:.0f} ms, "
              f"p99 {(_p(after, 99) or 0) * 1000:.0f} ms)")
    if fig.get("rss"):
        rows = [f"{d} {statistics.mean(x.get(d, 0) for x in fig['rss']) / MB:.1f}"
                f"/{max(x.get(d, 0) for x in fig['rss']) / MB:.1f}" for d in DAEMONS]
        total = statistics.mean(sum(x.values()) for x in fig["rss"]) / MB
        print(f"RSS per host, MB mean/max: {', '.join(rows)}; all {total:.0f}")
    if fig.get("etcd"):
        e = fig["etcd"]
        print(f"etcd (3 members): idle {fig.get('idle', args.idle):g} s: {e['msgs/s']:.1f} gRPC msgs/s, "
              f"{e['unary/s']:.1f} unary requests/s; while working "
              f"{e.get('busy unary/s', 0):.1f} unary requests/s; {e['watchers']:.0f} "
              f"watchers, {e['streams']:.0f} watch streams")
    if fig.get("bgp"):
        s, r = fig["bgp"]["sessions"], fig["bgp"]["routes"]
        print(f"BGP: {sum(s) // 2} sessions Established (per host mean {statistics.mean(s):.1f},"
              f" max {max(s)}); routes per host mean {statistics.mean(r):.1f}, max {max(r)}")


def print_growth(results: list[dict[str, Any]]) -> None:
    for mode in dict.fromkeys(r["mode"] for r in results):
        done = [r for r in results if r["mode"] == mode and r["ok"]]
        if len(done) < 2:
            print(f"\n{mode}: fewer than two sizes complete, no growth fit")
            continue
        ns = [r["n"] for r in done]
        sums = [summary(r) for r in done]
        print(f"\n{mode}: growth from {ns[0]} to {ns[-1]} hosts, exponent b of y ~ N^b "
              "(0 flat, 1 linear, 2 quadratic)")
        for key in sums[0]:
            ys = [s[key] for s in sums]
            b = power_law_exponent(ns, ys)
            print(f"  {key:28s} {' -> '.join(_fmt(y) for y in ys):36s} "
                  f"b = {'n/a' if b is None else f'{b:.2f}'}")


def print_all(results: list[dict[str, Any]], args) -> None:
    for fig in results:
        if "up_s" not in fig and not fig["ok"]:
            print(f"\n== {fig['mode']}, {fig['n']} hosts: not run or failed early: "
                  f"{fig['why']}")
            continue
        print_size(fig, args)
    print_growth(results)


def markdown(results: list[dict[str, Any]]) -> str:
    modes = list(dict.fromkeys(r["mode"] for r in results))
    cols: list[tuple[str, list[dict[str, Any]]]] = [
        (m, [r for r in results if r["mode"] == m and r["ok"]]) for m in modes]
    sums = {m: [summary(r) for r in done] for m, done in cols}
    head = ["figure"]
    for m, done in cols:
        head += [f"{m} {r['n']}" for r in done] + [f"{m} b"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = next((list(v[0]) for v in sums.values() if v), [])
    for key in keys:
        row = [key]
        for m, done in cols:
            ys = [s[key] for s in sums[m]]
            b = power_law_exponent([r["n"] for r in done], ys)
            row += [_fmt(y) for y in ys] + ["n/a" if b is None else f"{b:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
