"""`make demo`: a three-host Calico cluster on this machine, policy applied live.

1. `calico-lab up`: 3 hosts (network namespaces on an L2 fabric, each running calico-node:
   Felix, the BGP daemon and BIRD in a full mesh) and 2 workloads per host, attached by the
   CNI plugin, labelled `group=red` or `group=blue`.
2. The all-pairs connectivity matrix (one ping per pair, in parallel).
3. A GlobalNetworkPolicy isolating the red group: red endpoints talk only to red endpoints.
4. The matrix again, the cells that changed highlighted.
5. `calicoctl node status` on host1.
6. Tear down (or keep it with --keep; then `calico-lab down` removes it).

Needs root (namespaces, BIRD, nftables). Without it, the demo falls back to showing manifest
validation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from calico import api

GOOD = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-dns
spec:
  selector: all()
  egress:
  - action: Allow
    protocol: UDP
    destination:
      ports: [53]
"""

BAD = GOOD.replace("[53]", "[53, 70000]")

ISOLATE_RED = {
    "apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
    "metadata": {"name": "isolate-red"},
    "spec": {"selector": "group == 'red'", "types": ["Ingress", "Egress"],
             "ingress": [{"action": "Allow", "source": {"selector": "group == 'red'"}}],
             "egress": [{"action": "Allow", "destination": {"selector": "group == 'red'"}}]},
}


def manifest_demo() -> int:
    print("== a Calico manifest, validated and printed back in Calico's JSON form")
    for res in api.load(GOOD):
        print(api.dump_yaml([res]))
    print("== the same manifest with a bad port is rejected with one clear line")
    try:
        api.load(BAD)
    except (api.ValidationError, api.ManifestError) as err:
        print(f"error: {err}")
    return 0


def matrix(lab, workloads: list[dict]) -> dict[tuple[str, str], bool]:
    pairs = [(a, b) for a in workloads for b in workloads if a is not b]
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        results = pool.map(lambda p: lab.ping(p[0]["name"], p[1]["addresses"][0]), pairs)
        return {(a["name"], b["name"]): ok for (a, b), ok in zip(pairs, results, strict=True)}


def _name(w: dict) -> str:
    color = "red" if w["labels"]["group"] == "red" else "blue"
    return f"[{color}]{w['name']}[/{color}]"


def show(console, title: str, workloads: list[dict], now: dict, before: dict | None = None):
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("from \\ to", style="bold", no_wrap=True)
    for w in workloads:
        table.add_column(_name(w), justify="center", no_wrap=True)
    for a in workloads:
        cells = []
        for b in workloads:
            if a is b:
                cells.append(" · ")
                continue
            ok = now[(a["name"], b["name"])]
            text = "[green] ✓ [/green]" if ok else "[red] ✗ [/red]"  # all cells 3 wide
            if before is not None and before[(a["name"], b["name"])] != ok:
                text = f"[reverse]{' ✓ ' if ok else ' ✗ '}[/reverse]"
            cells.append(text)
        table.add_row(_name(a), *cells)
    console.print(table)


def run(keep: bool) -> int:
    from calico.lab.demos import run_demo

    def steps(console, lab, started: float) -> bool:
        workloads, first = _up(console, lab, started)
        isolated = _isolate_red(console, lab, workloads, first)
        _node_status(console, lab)
        return isolated and all(first.values())

    return run_demo("demo", keep, steps,
                    "lab kept: `calico-lab --help`, e.g. `calico-lab status --name demo`; "
                    "remove it with `calico-lab down --name demo`")


def _up(console, lab, started: float) -> tuple[list[dict], dict]:
    """Steps 1 and 2: the hosts, a red and a blue workload on each, the matrix before policy."""
    console.rule("1. three hosts, calico-node on each, two workloads per host")
    lab.up(hosts=3, workloads_per_host=0)
    console.print(f"BGP mesh Established in {time.monotonic() - started:.1f}s")
    for i, h in enumerate(h["name"] for h in lab.state["hosts"]):
        for j, group in enumerate(("red", "blue")):
            lab.add_workload(h, f"{h.replace('host', 'h')}-{group}",
                             {"group": group, "app": f"a{i}{j}"})
    workloads = lab.state["workloads"]
    first = _settled(lab, workloads, lambda m: all(m.values()))
    show(console, "2. connectivity before policy (ping)", workloads, first)
    return workloads, first


def _isolate_red(console, lab, workloads: list[dict], first: dict) -> bool:
    """Steps 3 and 4: apply isolate-red, show the matrix once it holds; whether it did."""
    from calico.datastore.client import ResourceClient

    console.rule("3. GlobalNetworkPolicy isolate-red: red talks only to red")
    backend = lab.backend()
    try:
        ResourceClient(backend).apply(ISOLATE_RED)
    finally:
        backend.close()
    import yaml

    console.print(yaml.safe_dump(ISOLATE_RED, sort_keys=False).rstrip(), highlight=False)
    red = {w["name"] for w in workloads if w["labels"]["group"] == "red"}

    def isolated(m: dict) -> bool:
        return all(ok == ((a in red) == (b in red)) for (a, b), ok in m.items())

    second = _settled(lab, workloads, isolated)
    show(console, "4. connectivity with isolate-red (changes highlighted)", workloads,
         second, first)
    return isolated(second)


def _node_status(console, lab) -> None:
    """Step 5: `calicoctl node status` on host1, through its BIRD socket."""
    console.rule("5. calicoctl node status (host1)")
    h1 = lab.host("host1")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "calicoctl"),
                          "node", "status", "--bird-socket",
                          os.path.join(h1["run_dir"], "bird.ctl")],
                         capture_output=True, text=True)
    console.print(out.stdout.rstrip() or out.stderr.rstrip(), highlight=False)


def _settled(lab, workloads, want, timeout: float = 10.0) -> dict:
    """The matrix once it matches `want` (Felix and BGP converge), or the last one."""
    deadline = time.monotonic() + timeout
    while True:
        m = matrix(lab, workloads)
        if want(m) or time.monotonic() > deadline:
            return m
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the multi-host demo needs root (network namespaces); showing manifest "
              "validation instead")
        return manifest_demo()
    return run(args.keep)


if __name__ == "__main__":
    sys.exit(main())
