"""Cost of the address-space translator (issue 19; not a test; root): 64-byte packet rate and
TCP throughput through the translated path vs the untranslated IPv4 path, same hosts, same run.

Topology: tests/fixtures/xlat_topo.py (two host namespaces joined by a veth, no Felix, no
ruleset). Translated: a1 (space blue, 10.200.0.5 on h1) -> a2 (blue, 10.200.0.6 on h2): IPv4
becomes IPv6 at a1's interface (tc ingress), crosses as routed IPv6, becomes IPv4 again at
a2's interface (tc egress). Untranslated: p1 (10.70.0.1 on h1) -> p2 (10.71.0.1 on h2), plain
Calico-style IPv4 between the same two hosts. Both workloads use MTU 1500 on a 1500-byte link,
so the translated TCP flow runs at MSS 1440 after path-MTU discovery (IPv6's 20 more bytes).

Traffic is benchmarks/datapath.py's: (1) 64-byte frames from its sendmmsg sender saturating one
core, counted on the receiver's interface; (2) one iperf3 TCP stream. The two paths alternate
(round robin over --reps) and the medians are compared; target: translated >= 0.8 of
untranslated for both.

    sudo PYTHONPATH=. .venv/bin/python benchmarks/xlat.py [--seconds 3] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.datapath import compile_sender, measure  # noqa: E402
from tests.fixtures import xlat_topo  # noqa: E402
from tests.fixtures.netns import netns_set  # noqa: E402

PATHS = {"translated": ("a1", "a2", "10.200.0.6"),
         "untranslated": ("p1", "p2", "10.71.0.1")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("xlat benchmark: needs root (network namespaces, BPF)")
    runs: dict[str, list[tuple[float, float]]] = {p: [] for p in PATHS}
    bpffs = xlat_topo.mount_bpffs()
    try:
        with tempfile.TemporaryDirectory() as tmp, netns_set() as nets:
            blaster = compile_sender(tmp)
            lab = xlat_topo.build(nets, bpffs)
            paths = {}
            for key, (src, dst, ip) in PATHS.items():
                wls = [lab["wls"][src].ns, lab["wls"][dst].ns]
                wls[0].run("ping", "-c", "1", "-W", "5", ip)
                paths[key] = {"wls": wls, "ips": [None, ip]}
            for _ in range(opts.reps):
                for key, topo in paths.items():
                    runs[key].append(measure(topo, blaster, opts.seconds))
    finally:
        xlat_topo.close_bpffs(bpffs)
    report(runs, opts)


def report(runs: dict[str, list[tuple[float, float]]], opts) -> None:
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in runs.items()}
    base_pps, base_tcp = med["untranslated"]
    print(f"Workload to workload across two hosts, medians of {opts.reps} x {opts.seconds:g} s:")
    print(f"  {'':44s} {'64-byte UDP pps':>16s} {'ratio':>6s} {'TCP Gbit/s':>11s} {'ratio':>6s}")
    labels = {"translated": "translated (a1 -> a2, IPv4->IPv6->IPv4)",
              "untranslated": "untranslated IPv4 (p1 -> p2)"}
    for key in ("untranslated", "translated"):
        pps, tcp = med[key]
        print(f"  {labels[key]:44s} {pps:16,.0f} {pps / base_pps:6.2f} {tcp:11.2f} "
              f"{tcp / base_tcp:6.2f}")
    pps, tcp = med["translated"]
    print(f"target: translated >= 0.8 of untranslated: pps {pps / base_pps:.2f}, "
          f"TCP {tcp / base_tcp:.2f}")


if __name__ == "__main__":
    main()
