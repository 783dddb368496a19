"""Calc-graph scale benchmark (not a test): prints figures against the issue's targets.

Cluster: 10,000 workload endpoints on 10 nodes (1,000 on this host), 1,000 global network
policies × 10 ingress rules, 1,000 distinct rule selectors, 100 profiles, 50 network sets.
Resources are validated by calico.api *before* timing starts (the syncer hands the graph
validated resources), and fed in the syncer's order (sorted by key), then in-sync.

Measured: time from the first update to the first flush's output (which includes InSync);
then, each followed by a flush, one label change on one endpoint, one policy change, one
endpoint add; peak memory (tracemalloc of the graph's own allocations, and ru_maxrss).

    .venv/bin/python benchmarks/calc_graph.py [--endpoints N] [--policies N]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico import api  # noqa: E402
from calico.api.endpoints import workload_endpoint_name  # noqa: E402
from calico.felix.calc import CalcGraph  # noqa: E402

HOST = "node-0"
PREFIX = "/calico/resources/v3/projectcalico.org/"


def wep(i: int, nodes: int, apps: int, app: int | None = None, extra: dict | None = None):
    node = f"node-{i % nodes}"
    ns = f"ns-{i % 20}"
    # Every app has one endpoint per node, so every policy selects one local endpoint.
    app = (i // nodes) % apps if app is None else app
    spec = {"node": node, "orchestrator": "k8s", "pod": f"pod-{i}", "endpoint": "eth0",
            "interfaceName": f"cali{i:011d}"[:15],
            "ipNetworks": [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32"],
            "profiles": [f"prof-{i % 100}"],
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}
    name = workload_endpoint_name(spec)
    labels = {"app": f"app-{app}", "tier": ["web", "db", "cache"][i % 3],
              "env": "prod" if i % 2 else "dev", **(extra or {})}
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
           "metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec}
    return f"{PREFIX}workloadendpoints/{ns}/{name}", api.validate(doc)


def policy(p: int, apps: int, version: int = 0):
    rules = []
    for r in range(10):
        sel_app = (p * 10 + r) % apps  # 1,000 distinct selectors over all policies
        rule = {"action": "Allow", "protocol": "TCP",
                "source": {"selector": f"app == 'app-{sel_app}'"},
                "destination": {"ports": [8000 + r + version]}}
        if r == 9:
            rule["destination"] = {"ports": ["http"]}
        rules.append(rule)
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
           "metadata": {"name": f"pol-{p}"},
           "spec": {"order": p % 50, "selector": f"app == 'app-{p % apps}'", "ingress": rules,
                    "egress": [{"action": "Allow"}]}}
    return f"{PREFIX}globalnetworkpolicies/pol-{p}", api.validate(doc)


def profile(i: int):
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "Profile",
           "metadata": {"name": f"prof-{i}"},
           "spec": {"labelsToApply": {"team": f"team-{i % 10}"},
                    "ingress": [{"action": "Allow", "source": {"selector": f"team == 'team-{i % 10}'"}}],
                    "egress": [{"action": "Allow"}]}}
    return f"{PREFIX}profiles/prof-{i}", api.validate(doc)


def netset(i: int, apps: int):
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
           "metadata": {"name": f"set-{i}", "labels": {"app": f"app-{i % apps}"}},
           "spec": {"nets": [f"192.168.{i}.0/24"]}}
    return f"{PREFIX}globalnetworksets/set-{i}", api.validate(doc)


def timed(graph: CalcGraph, updates) -> tuple[float, int]:
    start = time.perf_counter()
    for key, value in updates:
        graph.on_update(key, value)
    out = graph.flush()
    return time.perf_counter() - start, len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--policies", type=int, default=1_000)
    parser.add_argument("--apps", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    print(f"building {args.endpoints} endpoints ({args.endpoints // args.nodes} local), "
          f"{args.policies} policies x 10 rules, {args.apps} distinct rule selectors ...")
    updates = [wep(i, args.nodes, args.apps) for i in range(args.endpoints)]
    updates += [policy(p, args.apps) for p in range(args.policies)]
    updates += [profile(i) for i in range(100)] + [netset(i, args.apps) for i in range(50)]
    updates.sort(key=lambda kv: kv[0])  # the syncer lists by key
    gc.collect()

    def load() -> tuple[CalcGraph, list, float]:
        graph = CalcGraph(HOST)
        start = time.perf_counter()
        for key, value in updates:
            graph.on_update(key, value)
        graph.on_status("in-sync")
        first = graph.flush()
        return graph, first, time.perf_counter() - start

    # Memory on a throw-away graph (tracemalloc slows Python down), time on a clean one.
    tracemalloc.start()
    base_mem = tracemalloc.get_traced_memory()[0]
    load()
    graph_mem = tracemalloc.get_traced_memory()[1] - base_mem
    tracemalloc.stop()
    gc.collect()
    graph, first, first_s = load()
    gc.freeze()  # what a long-running Felix does after its initial load: no full-heap GC pauses
    kinds: dict[str, int] = {}
    for msg in first:
        kinds[type(msg).__name__] = kinds.get(type(msg).__name__, 0) + 1
    print(f"first in-sync output: {first_s:.2f} s, {len(first)} messages "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")

    def bench(name: str, make) -> None:
        samples, counts = [], []
        for n in range(args.repeat):
            batch = make(n)
            seconds, count = timed(graph, batch)
            samples.append(seconds)
            counts.append(count)
        print(f"{name}: median {statistics.median(samples) * 1000:.2f} ms, "
              f"max {max(samples) * 1000:.2f} ms ({statistics.median(counts):.0f} messages)")

    local = [i for i in range(args.endpoints) if i % args.nodes == 0]
    local_apps = {(i // args.nodes) % args.apps for i in local}
    active = [p for p in range(args.policies) if p % args.apps in local_apps]
    bench("label change on one local endpoint",
          lambda n: [wep(local[n], args.nodes, args.apps, app=(n * 7 + 3) % args.apps)])
    bench("label change on one remote endpoint",
          lambda n: [wep(local[n] + 1, args.nodes, args.apps,
                         app=(n * 11 + 5) % args.apps)])
    bench("one policy change (rules)", lambda n: [policy(active[-1 - n], args.apps, version=n + 1)])
    bench("one local endpoint add",
          lambda n: [wep(args.endpoints + n * args.nodes, args.nodes, args.apps)])

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: graph {graph_mem / 2**20:.0f} MB (tracemalloc peak over the initial "
          f"load); process ru_maxrss {rss_mb:.0f} MB (includes the pre-built resources)")
    print("targets: first output < 3 s; each single change < 5 ms; < 300 MB")


if __name__ == "__main__":
    main()
