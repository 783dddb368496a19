"""IPAM under real concurrency: N processes allocate (and release) at once against a real etcd
and against the embedded local datastore.

Pools are sized so that the hosts together need more blocks than exist (each host needs 16
blocks of 64 for its 1,000 live addresses; there are 16·N - 1 blocks): the last allocations
must borrow from other hosts' blocks, and the blocks end up almost full. Each worker also
releases a few of its allocations along the way (by handle) and allocates again.

Checked afterwards: no address is held twice, none of the workers' live allocations is lost
and none they released survives, every address is in an enabled pool (never the disabled one,
never the pool whose nodeSelector selects no host), and the blocks' bitmaps agree with the
handles (tests/unit/ipam/helpers.check_invariants).
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import random
import time

import pytest

from calico.datastore import DatastoreConfig, connect
from calico.ipam import IPAM
from tests.fixtures.etcd import EtcdServer
from tests.unit.ipam.helpers import add_pool, check_invariants

LIVE_PER_WORKER = 1000
RELEASE_EVERY = 20  # every 20th allocation, release an earlier one (and allocate one more)


def _pools_for(workers: int) -> list[str]:
    """CIDRs (/26 blocks) adding up to 16·N - 1 blocks: room for the 1,000·N live addresses,
    but one block short of what the hosts would need without borrowing."""
    blocks = 16 * workers - 1
    base = int(ipaddress.ip_address("10.96.0.0"))
    out = []
    for size in range(12, -1, -1):  # take power-of-two runs of blocks, largest first
        n = 1 << size
        if blocks & n:
            out.append(str(ipaddress.ip_network((base, 26 - size))))
            base += n * 64
    return out


def _worker(config: DatastoreConfig, index: int, start: multiprocessing.synchronize.Barrier,
            out: multiprocessing.Queue) -> None:
    host = f"host-{index // 2}"  # two processes per host: they race for the same blocks
    backend = connect(config)
    ipam = IPAM(backend, host, rng=random.Random(index))
    rng = random.Random(1000 + index)
    live: dict[str, str] = {}
    released: dict[str, str] = {}
    n = 0
    start.wait()
    t0 = time.time()
    try:
        while len(live) < LIVE_PER_WORKER:
            handle = f"wl-{index}-{n}"
            (ip,), _ = ipam.auto_assign(1, 0, handle, {"node": host, "namespace": "ns",
                                                       "pod": handle})
            live[handle] = ip
            n += 1
            if n % RELEASE_EVERY == 0:
                victim = rng.choice(sorted(live))
                assert ipam.release_by_handle(victim) == [live[victim]]
                released[victim] = live.pop(victim)
        out.put((index, live, released, n, time.time() - t0, ipam.store.conflicts, None))
    except Exception as err:  # report, don't hang the parent
        out.put((index, live, released, n, time.time() - t0, ipam.store.conflicts, repr(err)))
    finally:
        backend.close()


def run_workers(config: DatastoreConfig, workers: int) -> dict:
    pools = _pools_for(workers)
    backend = connect(config)
    for i, cidr in enumerate(pools):
        add_pool(backend, f"pool-{i}", cidr, blockSize=26)
    add_pool(backend, "disabled", "10.97.0.0/16", disabled=True)
    add_pool(backend, "elsewhere", "10.98.0.0/16", nodeSelector="rack == 'nowhere'")

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(config, i, start, out)) for i in range(workers)]
    for p in procs:
        p.start()
    start.wait(timeout=60)
    t0 = time.time()
    results = [out.get(timeout=300) for _ in procs]
    elapsed = time.time() - t0
    for p in procs:
        p.join(timeout=30)
    errors = [(r[0], r[6]) for r in results if r[6]]
    assert not errors, errors

    live: dict[str, str] = {}  # ip -> handle
    released: set[str] = set()
    allocations = 0
    for _index, w_live, w_released, n, _t, _c, _e in results:
        for handle, ip in w_live.items():
            assert ip not in live, f"{ip} handed to both {live[ip]} and {handle}"
            live[ip] = handle
        released.update(w_released)
        allocations += n
    assert len(live) == workers * LIVE_PER_WORKER

    stored = check_invariants(backend, pools)  # bitmaps agree with handles; inside pools
    assert stored == live, "stored allocations differ from what the workers hold"
    assert not released & set(stored.values())
    usage = {u.name: u for u in IPAM(backend, "checker").usage()}
    assert usage["disabled"].allocated == 0 and usage["elsewhere"].allocated == 0
    borrowed = sum(u.borrowed for u in usage.values())
    assert borrowed > 0, "the pools were sized to force borrowing"
    backend.close()
    rate = allocations / elapsed
    print(f"\n{config.type}: {workers} processes, {allocations} allocations + "
          f"{len(released)} releases in {elapsed:.1f} s = {rate:.0f} allocations/s; "
          f"{borrowed} borrowed; {sum(r[5] for r in results)} CAS conflicts")
    return {"elapsed": elapsed, "rate": rate, "borrowed": borrowed}


@pytest.fixture(scope="module")
def own_etcd():
    """A private etcd: IPAM keys are absolute (/calico/ipam/v2/...), so these tests must not
    share a server with tests that write pools or blocks."""
    server = EtcdServer("ipam").start()
    yield server
    server.stop()


@pytest.mark.etcd
@pytest.mark.slow
def test_eight_processes_on_etcd(own_etcd: EtcdServer) -> None:
    run_workers(DatastoreConfig(type="etcdv3", etcd_endpoints=(own_etcd.endpoint,)), 8)


@pytest.mark.slow
def test_four_processes_on_local(tmp_path) -> None:
    run_workers(DatastoreConfig(type="local", path=str(tmp_path / "calico.db")), 4)


def test_pool_sizes_force_borrowing() -> None:
    pools = [ipaddress.ip_network(c) for c in _pools_for(8)]
    assert sum(p.num_addresses for p in pools) == (16 * 8 - 1) * 64 >= 8 * LIVE_PER_WORKER
    assert len({p.network_address for p in pools}) == len(pools)
