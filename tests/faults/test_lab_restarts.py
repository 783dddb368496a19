"""Restarts under traffic on a 3-host lab (etcd, IPv4 + IPv6): `kill -9` of Felix, of
calico-node with all its children, and of BIRD, each while workloads on host1 and host2
exchange pings every 10 ms (both families), two long TCP streams and 1,000 short TCP
connections. Zero packets lost, zero failed connections, and the routes between the two
hosts never leave either kernel (BIRD's `persist`, `-R` recovery and graceful restart on the
sessions). Last, a BIRD restarted while a peer is down syncs its kernel within
`graceful restart wait` instead of BIRD's default four minutes.

Figures (packets lost, failed connections, seconds until the daemon was back, longest route
gap) go to the faults tier's summary; `benchmarks/faults/lab_report.py` runs the same
scenarios longer.
"""

from __future__ import annotations

import time

import pytest

from benchmarks.faults import lab_traffic as lt
from calico.bgp.render import GR_WAIT
from calico.lab.proc import sh
from tests.conftest import require_programs, require_root
from tests.e2e.conftest import bird_routes, blocks_of

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.etcd]

DURATION = 10.0  # seconds of traffic per scenario; the fault hits 2 s in
CONNECTIONS = 1000


@pytest.fixture(scope="module")
def lab():
    require_root()
    require_programs("bird", "birdc", "etcd", "ping", "ss")
    with lt.lab_session("r", hosts=3, ipv6=True, datastore="etcdv3") as lab:
        lab.add_workload("host1", "c1")
        lab.add_workload("host2", "s2")
        lab.add_workload("host3", "x3")
        for addr in lab.workload("s2")["addresses"]:
            lt.wait_for(lambda a=addr: lab.ping("c1", a, timeout=0.5), 10, f"c1 -> {addr}")
        yield lab


def _blocks(lab, host):
    return blocks_of(lab, host) | blocks_of(lab, host, 6)


@pytest.mark.parametrize("fault", ["kill_felix", "kill_node", "kill_bird"])
def test_restart_under_traffic_loses_nothing(lab, fault, figures):
    traffic = lt.Traffic(lab, "c1", "s2", DURATION, CONNECTIONS).start()
    try:
        with lt.RouteWatch(lab, "host1", _blocks(lab, "host2")) as to_h2, \
                lt.RouteWatch(lab, "host2", _blocks(lab, "host1")) as to_h1:
            time.sleep(2)
            back = getattr(lt, fault)(lab, "host2")
            result = traffic.result()
    finally:
        traffic.stop()
    name = fault.replace("kill_", "kill -9 ")
    figures[f"lab {name}: packets lost"] = result.packets_lost
    figures[f"lab {name}: failed connections"] = result.failed_connections
    figures[f"lab {name}: seconds until back"] = round(back, 2)
    figures[f"lab {name}: longest route gap (s)"] = round(max(to_h2.longest_gap,
                                                               to_h1.longest_gap), 3)
    print(f"\n{name} on host2: back in {back:.2f}s; {result.summary()}")
    assert result.short_tried == CONNECTIONS
    assert all(n >= DURATION * 100 for n in result.ping_sent.values()), result.summary()
    assert result.clean, result.summary()
    assert (to_h2.gaps, to_h1.gaps) == (0, 0), \
        f"routes between host1 and host2 left a kernel ({to_h2.longest_gap:.3f}s / " \
        f"{to_h1.longest_gap:.3f}s)"


def test_bird_restarted_while_a_peer_is_down_syncs_its_kernel(lab, figures):
    """host3 is stopped; host2's calico-node is killed and restarted, and meanwhile a route
    it programmed is deleted behind its back. Its BIRD is in graceful-restart recovery,
    waiting for host3's sessions, which will not come: the kernel is synced (the route
    restored) after `graceful restart wait`, not four minutes."""
    block = sorted(blocks_of(lab, "host1"))[0]
    lab.stop_node("host3")
    try:
        lt.kill9_node(lab, "host2")
        sh("ip", "-n", lab.host("host2")["netns"], "route", "del", block)
        lab.start_node("host2")
        started = time.monotonic()
        took = lt.wait_for(lambda: block in bird_routes(lab, "host2"), GR_WAIT + 10,
                           f"{block} back in host2's kernel", interval=0.2)
        figures["lab BIRD recovery with a peer down: kernel synced after (s)"] = round(took, 1)
        print(f"\nhost2's kernel synced {took:.1f}s after its restart (GR wait {GR_WAIT}s)")
        assert time.monotonic() - started <= GR_WAIT + 10
    finally:
        lab.start_node("host3")
        lab.wait_established(60)
