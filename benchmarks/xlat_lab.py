"""Address spaces on the lab (issue 19; not a test; root): 64-byte packet rate and TCP
throughput of the translated path vs the untranslated IPv4 path, between the same two lab
hosts, in the same run, with everything a cluster has on the path: calico-node, Felix's
nftables ruleset and policy, BIRD routes.

Translated: a1 (space blue, 10.200.0.5 on host1) -> a2 (blue, 10.200.0.6 on host2): IPv4 to
IPv6 at a1's interface, routed IPv6 between the hosts, IPv6 to IPv4 at a2's. Untranslated: d1
-> d2, workloads of the default space (10.65.x.x) on the same hosts. Traffic is
benchmarks/datapath.py's (sendmmsg 64-byte sender on one core, counted at the receiver; one
iperf3 TCP stream); the paths alternate over --reps and medians are compared (target:
translated >= 0.8 of untranslated). benchmarks/xlat.py measures the translator alone.

    sudo PYTHONPATH=. .venv/bin/python benchmarks/xlat_lab.py [--seconds 3] [--reps 3]
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
from calico.datastore.client import ResourceClient  # noqa: E402
from calico.lab.lab import Lab  # noqa: E402
from tests.fixtures.netns import Netns  # noqa: E402


def build(lab: Lab) -> dict[str, dict]:
    lab.up(hosts=2, ipv6=True)
    backend = lab.backend()
    try:
        client = ResourceClient(backend)
        client.create({"apiVersion": "projectcalico.org/v3", "kind": "AddressSpace",
                       "metadata": {"name": "blue"}, "spec": {}})
        client.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                       "metadata": {"name": "blue"},
                       "spec": {"cidr": "10.200.0.0/24", "addressSpace": "blue"}})
    finally:
        backend.close()
    lab.add_workload("host1", "a1", {}, "blue", "10.200.0.5")
    lab.add_workload("host2", "a2", {}, "blue", "10.200.0.6")
    lab.add_workload("host1", "d1")
    d2 = lab.add_workload("host2", "d2")
    d2_ip = next(a for a in d2["addresses"] if ":" not in a)
    paths = {}
    for key, (src, dst, ip) in {"translated": ("a1", "a2", "10.200.0.6"),
                                "untranslated": ("d1", "d2", d2_ip)}.items():
        wls = [Netns(lab.netns_of(src)), Netns(lab.netns_of(dst))]
        for _ in range(50):
            if wls[0].run("ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0:
                break
        paths[key] = {"wls": wls, "ips": [None, ip]}
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("xlat lab benchmark: needs root (a lab)")
    runs: dict[str, list[tuple[float, float]]] = {"translated": [], "untranslated": []}
    lab = Lab(f"xb{os.getpid()}"[:10])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            blaster = compile_sender(tmp)
            paths = build(lab)
            for _ in range(opts.reps):
                for key, topo in paths.items():
                    runs[key].append(measure(topo, blaster, opts.seconds))
    finally:
        lab.down()
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in runs.items()}
    base_pps, base_tcp = med["untranslated"]
    print(f"Lab, workload to workload across two hosts (calico-node, Felix, BIRD), medians of "
          f"{opts.reps} x {opts.seconds:g} s:")
    print(f"  {'':40s} {'64-byte UDP pps':>16s} {'ratio':>6s} {'TCP Gbit/s':>11s} {'ratio':>6s}")
    for key, label in (("untranslated", "default space IPv4 (d1 -> d2)"),
                       ("translated", "space blue (a1 -> a2, via IPv6)")):
        pps, tcp = med[key]
        print(f"  {label:40s} {pps:16,.0f} {pps / base_pps:6.2f} {tcp:11.2f} "
              f"{tcp / base_tcp:6.2f}")


if __name__ == "__main__":
    main()
