"""`make demo-fabric`: Calico on an L3 leaf-spine fabric, on this machine.

1. `calico-lab up --racks 2 --hosts-per-rack 2 --spines 2` (add `--as-per-host` for the AS
   per compute server model): each rack's subnet behind its ToR (BIRD, its own AS), ToRs
   joined by two spines over eBGP, hosts running calico-node and peering only with their ToR;
   one workload per host.
2. The topology drawn: spines, ToRs, hosts, workloads, with ASes and addresses.
3. The all-pairs connectivity matrix (one ping per pair, in parallel).
4. `calicoctl node status` on the first host: one session, its ToR.
5. A spine link goes down under a 10 ms ping: the traffic moves to the other spine; the gap
   is printed, then the matrix again.
6. Tear down (or keep it with --keep; then `calico-lab down --name demofab` removes it).

Needs root (namespaces, BIRD, nftables).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

LAB = "demofab"


def matrix(lab, workloads: list[dict]) -> dict[tuple[str, str], bool]:
    pairs = [(a, b) for a in workloads for b in workloads if a is not b]
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        results = pool.map(lambda p: lab.ping(p[0]["name"], p[1]["addresses"][0]), pairs)
        return {(a["name"], b["name"]): ok for (a, b), ok in zip(pairs, results, strict=True)}


def settled(lab, workloads: list[dict], timeout: float = 10.0) -> dict:
    """The matrix once every pair answers (BGP converges), or the last one."""
    deadline = time.monotonic() + timeout
    while True:
        m = matrix(lab, workloads)
        if all(m.values()) or time.monotonic() > deadline:
            return m
        time.sleep(0.2)


def show_matrix(console, title: str, lab, workloads: list[dict], m: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("from \\ to", style="bold", no_wrap=True)
    for w in workloads:
        table.add_column(f"{w['name']}\nrack {lab.host(w['host'])['rack']}",
                         justify="center", no_wrap=True)
    for a in workloads:
        cells = [" · " if a is b else "[green] ✓ [/green]" if m[(a["name"], b["name"])]
                 else "[red] ✗ [/red]" for b in workloads]
        table.add_row(a["name"], *cells)
    console.print(table)


def topology(lab):
    """A rich renderable: spines on top, then one column per rack (ToR, hosts, workloads)."""
    from rich.columns import Columns
    from rich.console import Group
    from rich.panel import Panel

    l3 = lab.state["l3"]
    routers = l3["routers"]
    spines = [r for r in routers if r["role"] == "spine"]
    tors = [r for r in routers if r["role"] == "tor"]
    top = Columns([Panel(f"[bold]{s['name']}[/bold]\nAS {s['asn']}", expand=False)
                   for s in spines], padding=(0, 4))
    links = "   ".join(f"{t['name']}–{s['name']} {link['address'].split('/')[0]}"
                       for t in tors for s in spines for link in t["links"]
                       if link["peer_name"] == s["name"])
    model = ("AS per compute server: each host eBGP with its ToR" if l3["as_per_host"]
             else "AS per rack: hosts iBGP with their ToR, the ToR a route reflector")
    cells = []
    for t in tors:
        lines = [f"[bold]{t['name']}[/bold] AS {t['asn']} {t['address'].split('/')[0]}"]
        for h in (h for h in lab.state["hosts"] if h["rack"] == t["rack"]):
            lines.append(f"└ {h['name']} {h['address'].split('/')[0]} AS {h['asn']}")
            lines += [f"  └ {w['name']} {' '.join(w['addresses'])}"
                      for w in lab.state["workloads"] if w["host"] == h["name"]]
        cells.append(Panel("\n".join(lines), title=f"rack r{t['rack']} "
                           f"198.18.{t['rack']}.0/24", expand=False))
    return Group(top, f"[dim]eBGP on point-to-point links, ToR ends: {links}[/dim]",
                 f"[dim]{model}; ToRs spread traffic over every spine (ECMP)[/dim]",
                 Columns(cells, padding=(0, 2)))


def run(keep: bool, as_per_host: bool) -> int:
    from calico.lab import fabric
    from calico.lab.demos import run_demo

    def steps(console, lab, started: float) -> bool:
        console.rule("1. an L3 fabric: 2 racks x 2 hosts, 2 spines, one workload per host")
        fabric.up(lab, racks=2, hosts_per_rack=2, spines=2, as_per_host=as_per_host,
                  workloads_per_host=1)
        console.print(f"every BGP session Established in {time.monotonic() - started:.1f}s")
        console.rule("2. topology")
        console.print(topology(lab))
        workloads = lab.state["workloads"]
        first = settled(lab, workloads)
        show_matrix(console, "3. connectivity across racks (ping)", lab, workloads, first)
        _node_status(console, lab, workloads[0]["host"])
        return all(first.values()) and _failover(console, lab, fabric, workloads)

    return run_demo(LAB, keep, steps,
                    f"lab kept: e.g. `calico-lab status --name {LAB}`, "
                    f"`calico-lab link --name {LAB} tor1 spine1 down`; remove it with "
                    f"`calico-lab down --name {LAB}`")


def _node_status(console, lab, host: str) -> None:
    console.rule(f"4. calicoctl node status ({host}): its ToR, no mesh")
    h = lab.host(host)
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "calicoctl"),
                          "node", "status", "--bird-socket",
                          os.path.join(h["run_dir"], "bird.ctl")],
                         capture_output=True, text=True)
    console.print(out.stdout.rstrip() or out.stderr.rstrip(), highlight=False)


def _failover(console, lab, fabric, workloads: list[dict]) -> bool:
    """Step 5: a spine link down under traffic; whether everything still reaches."""
    from calico.lab import failover

    src = workloads[0]
    dst = next(w for w in workloads if lab.host(w["host"])["rack"] !=
               lab.host(src["host"])["rack"])
    console.rule(f"5. a spine link down under a 10 ms ping {src['name']} -> {dst['name']}")
    result = failover.spine_failover(lab, src["name"], dst["addresses"][0])
    console.print(f"{result['tor']}'s link to {result['link_down']} carried the flow and went "
                  f"down; traffic then via {result['rerouted_via']}. Longest gap between "
                  f"replies: [bold]{result['gap_s'] * 1000:.0f} ms[/bold] "
                  f"(before the link went down: {result['baseline_gap_s'] * 1000:.0f} ms); "
                  f"{result['lost']} of {result['sent']} pings lost")
    after = settled(lab, workloads)
    show_matrix(console, f"connectivity with {result['tor']}–{result['link_down']} down", lab,
                workloads, after)
    fabric.set_link(lab, result["tor"], result["link_down"], True)
    return all(after.values()) and result["rerouted_via"] != result["link_down"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo-fabric",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    parser.add_argument("--as-per-host", action="store_true",
                        help="the AS per compute server model (default: AS per rack)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the fabric demo needs root (network namespaces, BIRD)", file=sys.stderr)
        return 1
    return run(args.keep, args.as_per_host)


if __name__ == "__main__":
    sys.exit(main())
