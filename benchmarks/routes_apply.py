"""Benchmark: programming endpoint routes, against `ip -batch` in the same run.

In a throwaway namespace with `--veths` veth pairs (`cali<i>`), for 1,000 and 10,000 endpoints
(one /32 each, spread round-robin over the veths) it measures, median of `--repeat` runs:

  ip -batch          `ip -n <ns> -batch -` adding the same routes (the raw kernel baseline)
  shim pipelined     NetlinkKernel.add_routes_and_delete: the pipelined netlink we use
  manager apply      HostNetworkManager: N WorkloadEndpointUpdates then one apply(), from an
                     empty kernel (routes + permanent neighbours + the resync read-back)
  manager resync     a forced resync with nothing to change (read-back + diff only)

and prints times and ratios against `ip -batch`. Root only; not a test.

    .venv/bin/python -m benchmarks.routes_apply [--veths 100] [--repeat 3] [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from calico.felix import messages as m
from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.netlink import NetlinkKernel, Route
from calico.felix.dataplane.routes import DEFAULT_ROUTE_PROTOCOL as PROTO
from tests.fixtures.netns import Netns, netns_set, sh


def addr(i: int) -> str:
    return f"10.{64 + i // 65536}.{i // 256 % 256}.{i % 256}"


def make_veths(ns: Netns, count: int) -> None:
    lines = [f"link add cali{i} type veth peer name wl{i}" for i in range(count)]
    lines += [f"link set {name}{i} up" for i in range(count) for name in ("cali", "wl")]
    sh("ip", "-n", ns.name, "-batch", "-", input="\n".join(lines) + "\n", timeout=600)


def flush(ns: Netns) -> None:
    ns.ip("route", "flush", "proto", str(PROTO))
    ns.ip("-6", "route", "flush", "proto", str(PROTO))
    ns.ip("neigh", "flush", "nud", "permanent")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_ip_batch(ns: Netns, n: int, veths: int) -> float:
    text = "".join(f"route add {addr(i)}/32 dev cali{i % veths} proto {PROTO} scope link\n"
                   for i in range(n))
    t = timed(lambda: sh("ip", "-n", ns.name, "-batch", "-", input=text, timeout=600))
    flush(ns)
    return t


def bench_shim(ns: Netns, n: int, veths: int) -> float:
    kernel = NetlinkKernel(ns.name)
    index = {link.name: link.index for link in kernel.links()}
    routes = [Route(f"{addr(i)}/32", index[f"cali{i % veths}"], PROTO) for i in range(n)]
    t = timed(lambda: kernel.add_routes_and_delete(routes, []))
    kernel.close()
    flush(ns)
    return t


def bench_manager(ns: Netns, n: int, veths: int) -> tuple[float, float, float]:
    kernel = NetlinkKernel(ns.name)
    hn = HostNetworkManager(kernel, "bench")
    hn.apply()  # first read-back and interface sysctls: not part of the route figure
    msgs = [m.WorkloadEndpointUpdate(id=m.WorkloadEndpointID("bench", f"wl{i}"),
                                     interface=f"cali{i % veths}", mac="aa:bb:cc:00:00:01",
                                     ipv4_nets=(f"{addr(i)}/32",)) for i in range(n)]

    def feed() -> None:
        for msg in msgs:
            hn.on_message(msg)
    t_msgs = timed(feed)
    t_apply = timed(hn.apply)
    assert len(kernel.routes(PROTO)) == n, "not every route was programmed"
    hn.resync()
    t_resync = timed(hn.apply)
    kernel.close()
    flush(ns)
    return t_msgs, t_apply, t_resync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--veths", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    with netns_set() as nets:
        ns = nets.add("bench")
        print(f"creating {args.veths} veth pairs ...", flush=True)
        make_veths(ns, args.veths)
        print(f"{'routes':>7} {'ip -batch':>10} {'shim':>8} {'ratio':>6} {'on_msg':>8} "
              f"{'apply':>8} {'ratio':>6} {'resync':>8}")
        for n in (int(s) for s in args.sizes.split(",")):
            ip_t = statistics.median(bench_ip_batch(ns, n, args.veths)
                                     for _ in range(args.repeat))
            shim_t = statistics.median(bench_shim(ns, n, args.veths)
                                       for _ in range(args.repeat))
            runs = [bench_manager(ns, n, args.veths) for _ in range(args.repeat)]
            msg_t, apply_t, resync_t = (statistics.median(col) for col in zip(*runs, strict=True))
            print(f"{n:>7} {ip_t:>9.3f}s {shim_t:>7.3f}s {shim_t / ip_t:>5.2f}x "
                  f"{msg_t:>7.3f}s {apply_t:>7.3f}s {apply_t / ip_t:>5.2f}x {resync_t:>7.3f}s",
                  flush=True)


if __name__ == "__main__":
    main()
