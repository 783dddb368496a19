"""Faults on a lab at full size: restarts under traffic, and load with churn (root).

    .venv/bin/python benchmarks/faults/lab_report.py [--rounds 3] [--duration 30]
        [--workloads 100] [--policies 200] [--churn 300] [--skip restarts|load]

Restarts (a 3-host lab, etcd, IPv4 + IPv6): for each of kill -9 Felix, kill -9 calico-node
and its children (restarted after 0.5 s), kill -9 BIRD, `--rounds` runs of `--duration`
seconds of traffic from host1's workload to host2's (pings every 10 ms per family, two TCP
streams, 1,000 short connections), the fault 2 s in on host2. Prints, per fault, packets
lost, failed connections, seconds until the daemon was back and the longest time a route
between the two hosts was missing from either kernel, per round and in total.

Load (the issue's size: 3 hosts x 100 workloads, 200 policies, 5 minutes of churn): prints
churn operations, convergence seconds after the churn, whether every host's dataplane equals
the datastore (and what a fresh Felix changed), `calicoctl ipam check`, and Felix RSS
between the first and the last minute per host (the bar: growth < 5%).

Exit code 0 when every figure meets its bar, 1 otherwise; the figures are printed either way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))

from benchmarks.faults import lab_traffic as lt  # noqa: E402
from benchmarks.faults.lab_load import LoadSize, run_load, summary  # noqa: E402
from tests.e2e.conftest import blocks_of  # noqa: E402

FAULTS = ("kill_felix", "kill_node", "kill_bird")


def restarts(rounds: int, duration: float, connections: int) -> bool:
    ok = True
    with lt.lab_session("r", prefix="b", hosts=3, ipv6=True, datastore="etcdv3") as lab:
        for host, name in (("host1", "c1"), ("host2", "s2"), ("host3", "x3")):
            lab.add_workload(host, name)
        for addr in lab.workload("s2")["addresses"]:
            lt.wait_for(lambda a=addr: lab.ping("c1", a, timeout=0.5), 10, f"c1 -> {addr}")
        b1 = blocks_of(lab, "host1") | blocks_of(lab, "host1", 6)
        b2 = blocks_of(lab, "host2") | blocks_of(lab, "host2", 6)
        print(f"restarts under traffic: {rounds} rounds of {duration:g}s per fault, "
              f"{connections} short connections each, fault on host2 2 s in")
        for fault in FAULTS:
            lost, failed, backs, gaps = 0, 0, [], []
            for r in range(rounds):
                traffic = lt.Traffic(lab, "c1", "s2", duration, connections).start()
                try:
                    with lt.RouteWatch(lab, "host1", b2) as w1, \
                            lt.RouteWatch(lab, "host2", b1) as w2:
                        time.sleep(2)
                        backs.append(getattr(lt, fault)(lab, "host2"))
                        res = traffic.result()
                finally:
                    traffic.stop()
                gaps.append(max(w1.longest_gap, w2.longest_gap))
                lost += res.packets_lost
                failed += res.failed_connections
                ok &= res.clean and gaps[-1] == 0
                print(f"  {fault} round {r + 1}: back in {backs[-1]:.2f}s, route gap "
                      f"{gaps[-1] * 1000:.0f} ms; {res.summary()}", flush=True)
            print(f"{fault}: packets lost {lost}, failed connections {failed}, back in "
                  f"median {statistics.median(backs):.2f}s (max {max(backs):.2f}s), "
                  f"longest route gap {max(gaps) * 1000:.0f} ms", flush=True)
    return ok


def load(size: LoadSize) -> bool:
    print(f"\nload: {size.hosts} hosts x {size.workloads} workloads, {size.policies} "
          f"policies, {size.churn_seconds:g}s of churn", flush=True)
    with lt.lab_session("l", prefix="b", hosts=size.hosts, ipv6=True,
                        datastore="etcdv3") as lab:
        res = run_load(lab, size)
    for line in summary(res):
        print(line)
    growth_ok = all(g < 0.05 for g in res.rss_growth.values())
    print(f"Felix RSS growth < 5% on every host: {'yes' if growth_ok else 'NO'}")
    return (res.dataplane_ok and res.ipam_ok and not res.cni_errors and growth_ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--workloads", type=int, default=100, help="per host")
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--churn", type=float, default=300.0, help="seconds")
    parser.add_argument("--skip", choices=("restarts", "load"), action="append", default=[])
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("lab_report.py needs root (network namespaces)", file=sys.stderr)
        return 2
    ok = True
    started = time.monotonic()
    if "restarts" not in args.skip:
        ok &= restarts(args.rounds, args.duration, args.connections)
    if "load" not in args.skip:
        ok &= load(LoadSize(hosts=args.hosts, workloads=args.workloads,
                            policies=args.policies, churn_seconds=args.churn))
    print(f"\n{'all bars met' if ok else 'SOME BARS MISSED'} "
          f"({time.monotonic() - started:.0f}s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
