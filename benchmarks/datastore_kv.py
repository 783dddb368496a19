"""Datastore backends: sequential puts/s, batched txn puts/s, list by prefix, watch latency.

Runs against the local (SQLite) backend in a temp dir and a real etcd started on 127.0.0.1
(tests/fixtures/etcd.py). Prints figures; not a test.

    .venv/bin/python -m benchmarks.datastore_kv [--puts 2000] [--keys 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from calico.datastore.etcd import EtcdBackend
from calico.datastore.kv import Backend, Put
from calico.datastore.local import LocalBackend
from tests.fixtures.etcd import EtcdServer

VALUE = '{"apiVersion":"projectcalico.org/v3","kind":"IPPool","spec":{"cidr":"10.0.0.0/16"}}'


def bench(name: str, backend: Backend, puts: int, keys: int) -> None:
    t = time.perf_counter()
    for i in range(puts):
        backend.put(f"/bench/seq/{i}", VALUE)
    seq = puts / (time.perf_counter() - t)

    t = time.perf_counter()
    for start in range(0, keys, 500):
        backend.txn([], [Put(f"/bench/list/{i:06d}", VALUE) for i in range(start, start + 500)])
    batched = keys / (time.perf_counter() - t)

    t = time.perf_counter()
    items, _ = backend.list("/bench/list/")
    listed = time.perf_counter() - t
    assert len(items) == keys

    watcher = backend.watch("/bench/watch/", backend.revision() + 1)
    latencies = []
    for i in range(200):
        sent = time.perf_counter()
        backend.put("/bench/watch/k", str(i))
        assert watcher.events(timeout=2)
        latencies.append((time.perf_counter() - sent) * 1000)
    watcher.close()
    latencies.sort()
    print(f"{name:7s} sequential puts {seq:8.0f}/s   txn puts (500/txn) {batched:8.0f}/s   "
          f"list {keys} keys {listed:5.2f}s   watch latency after put returns: "
          f"median {statistics.median(latencies):5.1f} ms, p99 {latencies[197]:5.1f} ms")


def watch_only(watching: Backend, writer: Backend) -> None:
    """Watch latency when `writer` is another handle (as another process would be)."""
    watcher = watching.watch("/bench/x/", watching.revision() + 1)
    latencies = []
    for i in range(100):
        sent = time.perf_counter()
        writer.put("/bench/x/k", str(i))
        assert watcher.events(timeout=2)
        latencies.append((time.perf_counter() - sent) * 1000)
    watcher.close()
    latencies.sort()
    print(f"median {statistics.median(latencies):.1f} ms, p99 {latencies[98]:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--puts", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "calico.db")
        local, other = LocalBackend(path), LocalBackend(path)
        bench("local", local, args.puts, args.keys)
        print("  (watch latency when another handle/process writes:", end=" ")
        watch_only(local, other)
        local.close()
        other.close()
    server = EtcdServer().start()
    try:
        etcd = EtcdBackend([server.endpoint])
        bench("etcdv3", etcd, args.puts, args.keys)
        etcd.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
