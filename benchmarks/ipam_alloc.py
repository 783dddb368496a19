"""IPAM allocation throughput on the local (SQLite) backend and a real etcd: not a test.

For each backend: the raw KV baseline (sequential puts/s, as benchmarks/datastore_kv.py
measures it), then IPAM auto-assignments/s with one process, and with N processes on N hosts
(each host claims its own blocks), then releases/s by handle. Ratios are against the raw put
rate measured in the same run: an allocation is one transaction (block + handle, guarded by
the pool, Node and IPAM-config revisions) in the steady state, plus a block claim (three
writes) every 64 allocations.

    .venv/bin/python benchmarks/ipam_alloc.py [--allocs 2000] [--procs 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calico.datastore import DatastoreConfig, connect  # noqa: E402
from calico.ipam import IPAM  # noqa: E402
from tests.fixtures.etcd import EtcdServer  # noqa: E402
from tests.unit.ipam.helpers import add_pool  # noqa: E402


def _alloc(config: DatastoreConfig, host: str, prefix: str, n: int,
           start: multiprocessing.synchronize.Barrier | None = None) -> float:
    import calico.api  # noqa: F401  (import cost outside the timed part)

    backend = connect(config)
    ipam = IPAM(backend, host)
    if start is not None:
        start.wait()
    t = time.perf_counter()
    for i in range(n):
        ipam.auto_assign(1, 0, f"{prefix}-{i}", {"node": host})
    elapsed = time.perf_counter() - t
    backend.close()
    return elapsed


def _worker(config: DatastoreConfig, index: int, n: int, start, out) -> None:
    out.put(_alloc(config, f"bench-{index}", f"p{index}", n, start))


def run(name: str, config: DatastoreConfig, allocs: int, procs: int) -> None:
    backend = connect(config)
    t = time.perf_counter()
    for i in range(500):
        backend.put(f"/bench/ipam-baseline/{i}", '{"x": 1}')
    puts = 500 / (time.perf_counter() - t)
    add_pool(backend, "bench", "10.128.0.0/12", blockSize=26)

    one = allocs / _alloc(config, "bench-solo", "solo", allocs)

    ipam = IPAM(backend, "bench-solo")
    t = time.perf_counter()
    for i in range(allocs // 4):
        ipam.release_by_handle(f"solo-{i}")
    releases = (allocs // 4) / (time.perf_counter() - t)

    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(procs + 1), ctx.Queue()
    ps = [ctx.Process(target=_worker, args=(config, i, allocs, start, out))
          for i in range(procs)]
    for p in ps:
        p.start()
    start.wait()
    t = time.perf_counter()
    for _ in ps:
        out.get()
    many = procs * allocs / (time.perf_counter() - t)
    for p in ps:
        p.join()
    backend.close()
    print(f"{name:7} raw puts/s {puts:6.0f} | 1 process: {one:5.0f} allocations/s "
          f"({one / puts:.2f}x puts), {releases:5.0f} releases/s | {procs} processes: "
          f"{many:5.0f} allocations/s ({many / puts:.2f}x puts)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--allocs", type=int, default=2000)
    parser.add_argument("--procs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        run("local", DatastoreConfig(type="local", path=f"{d}/calico.db"), args.allocs,
            args.procs)
    server = EtcdServer("bench").start()
    try:
        run("etcdv3", DatastoreConfig(type="etcdv3", etcd_endpoints=(server.endpoint,)),
            args.allocs, args.procs)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
