"""Host-network managers against a fake kernel: desired-state diffing, resync, ownership."""

from __future__ import annotations

import itertools
import random

import pytest

from calico.felix import messages as m
from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.netlink import Route
from calico.felix.dataplane.routes import DEFAULT_ROUTE_PROTOCOL as PROTO
from tests.unit.felix.dataplane.test_routes_fake_kernel import FakeKernel


def wep(name: str, iface: str, *v4: str, v6: tuple[str, ...] = (), mac: str = "") -> m.WorkloadEndpointUpdate:
    return m.WorkloadEndpointUpdate(id=m.WorkloadEndpointID("ns", name), interface=iface,
                                    mac=mac, ipv4_nets=v4, ipv6_nets=v6)


def rm(name: str) -> m.WorkloadEndpointRemove:
    return m.WorkloadEndpointRemove(m.WorkloadEndpointID("ns", name))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hn(kernel: FakeKernel, clock: Clock) -> HostNetworkManager:
    return HostNetworkManager(kernel, "host1", clock=clock)


def feed(hn: HostNetworkManager, *msgs) -> None:
    for msg in msgs:
        hn.on_message(msg)
    hn.apply()


def test_endpoint_routes_and_neighbours(kernel, hn):
    kernel.add_link("cali1")
    feed(hn, wep("a", "cali1", "10.65.0.1/32", v6=("fd00::1/128",), mac="AA:BB:CC:00:00:01"))
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32", "fd00::1/128"}
    idx = kernel.index("cali1")
    assert kernel.neigh == {(idx, "10.65.0.1"): "aa:bb:cc:00:00:01",
                            (idx, "fd00::1"): "aa:bb:cc:00:00:01"}


def test_change_and_remove_only_touch_the_difference(kernel, hn):
    kernel.add_link("cali1")
    feed(hn, wep("a", "cali1", "10.65.0.1/32", "10.65.0.2/32"))
    kernel.route_batches.clear()
    feed(hn, wep("a", "cali1", "10.65.0.2/32", "10.65.0.3"))
    idx = kernel.index("cali1")
    assert kernel.route_batches == [([Route("10.65.0.3/32", idx, PROTO)],
                                     [Route("10.65.0.1/32", idx, PROTO)])]
    feed(hn, rm("a"))
    assert kernel.dsts(PROTO) == set()
    kernel.route_batches.clear()
    feed(hn)  # nothing dirty: no kernel call at all
    assert kernel.route_batches == []


def test_endpoint_moving_interface_deletes_before_adding(kernel, hn):
    kernel.add_link("cali1")
    kernel.add_link("cali2")
    feed(hn, wep("a", "cali1", "10.65.0.1/32"))
    feed(hn, wep("a", "cali2", "10.65.0.1/32"))
    assert kernel.dsts(PROTO, "cali2") == {"10.65.0.1/32"}
    assert kernel.dsts(PROTO, "cali1") == set()


def test_interface_appearing_later_is_programmed(kernel, hn):
    feed(hn, wep("a", "cali1", "10.65.0.1/32"))
    assert kernel.dsts(PROTO) == set()
    link = kernel.add_link("cali1")
    hn.notify_link(link, True)
    hn.apply()
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32"}
    assert kernel.sysctls["net/ipv4/conf/cali1/proxy_arp"] == "1"


def test_down_interface_loses_routes_and_gets_them_back(kernel, hn):
    kernel.add_link("cali1")
    feed(hn, wep("a", "cali1", "10.65.0.1/32", mac="aa:bb:cc:00:00:01"))
    hn.notify_link(kernel.set_up("cali1", False), True)
    hn.apply()
    assert kernel.dsts(PROTO) == set()
    kernel.neigh.clear()  # an admin down flushes neighbours
    hn.notify_link(kernel.set_up("cali1", True), True)
    hn.apply()
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32"}
    assert kernel.neigh == {(kernel.index("cali1"), "10.65.0.1"): "aa:bb:cc:00:00:01"}


def test_recreated_interface_is_reprogrammed(kernel, hn):
    kernel.add_link("cali1")
    feed(hn, wep("a", "cali1", "10.65.0.1/32"))
    hn.notify_link(kernel.del_link("cali1"), False)
    hn.apply()
    hn.notify_link(kernel.add_link("cali1"), True)
    hn.apply()
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32"}


def test_resync_removes_strays_and_restores_deleted(kernel, hn, clock):
    kernel.add_link("cali1")
    kernel.add_link("cali9")
    idx1, idx9 = kernel.index("cali1"), kernel.index("cali9")
    # Left by an earlier Felix: one wanted, one stray on another interface, one on eth0.
    kernel.route_set |= {Route("10.65.0.1/32", idx1, PROTO), Route("10.65.0.9/32", idx9, PROTO),
                         Route("10.99.0.0/16", 2, PROTO)}
    kernel.neigh[(idx9, "10.65.0.9")] = "aa:aa:aa:aa:aa:aa"
    kernel.neigh[(2, "192.168.0.1")] = "bb:bb:bb:bb:bb:bb"  # not a workload interface
    feed(hn, wep("a", "cali1", "10.65.0.1/32"))
    assert kernel.dsts(PROTO) == {"10.65.0.1/32"}
    assert kernel.neigh == {(2, "192.168.0.1"): "bb:bb:bb:bb:bb:bb"}
    assert kernel.route_batches[-1][0] == []  # the wanted route was already there

    kernel.route_set.clear()  # deleted by hand
    clock.now += 30
    feed(hn)
    assert kernel.dsts(PROTO) == set()  # not yet: refresh is every 90 s
    clock.now += 61
    feed(hn)
    assert kernel.dsts(PROTO) == {"10.65.0.1/32"}


def test_other_protocols_are_never_touched(kernel, hn, clock):
    kernel.add_link("cali1")
    idx = kernel.index("cali1")
    others = {Route("10.65.0.7/32", idx, 4), Route("10.65.0.1/32", 2, 12),
              Route("0.0.0.0/0", 2, 3)}
    kernel.route_set |= others
    feed(hn, wep("a", "cali1", "10.65.0.1/32", "10.65.0.2/32"))
    # 10.65.0.1/32 is held by a BIRD route: reported as a conflict, left alone.
    assert kernel.route_set == others | {Route("10.65.0.2/32", idx, PROTO)}
    assert hn.routes.conflicts == {"10.65.0.1/32"}
    feed(hn, rm("a"))
    clock.now += 100
    feed(hn)
    assert kernel.route_set == others


def test_eexist_for_our_own_unknown_route_is_adopted(kernel, hn):
    kernel.add_link("cali1")
    feed(hn)
    idx = kernel.index("cali1")
    kernel.route_set.add(Route("10.65.0.1/32", idx, PROTO))  # e.g. pre-added by CNI
    feed(hn, wep("a", "cali1", "10.65.0.1/32"))
    assert not hn.routes.conflicts
    feed(hn, rm("a"))
    assert kernel.dsts(PROTO) == set()


def test_config_prefix_and_protocol(kernel, hn):
    kernel.add_link("cali1")
    kernel.add_link("veth1")
    feed(hn, wep("a", "cali1", "10.65.0.1/32"))
    feed(hn, m.ConfigUpdate({"interfacePrefix": "veth", "deviceRouteProtocol": "201",
                             "routeRefreshInterval": "1m0s"}))
    assert hn.refresh_interval == 60
    assert kernel.dsts(PROTO) == set()  # routes of the old protocol migrate
    assert kernel.dsts(201) == {"10.65.0.1/32"}
    assert kernel.sysctls["net/ipv4/conf/veth1/proxy_arp"] == "1"
    assert hn.sysctls.prefixes == ("veth",)


def test_refresh_interval_zero_disables_timer(kernel, hn, clock):
    feed(hn, m.ConfigUpdate({"RouteRefreshInterval": "0"}))
    assert hn.seconds_until_refresh() is None
    hn.resync()
    assert hn.seconds_until_refresh() == 0.0


def test_lost_link_events_trigger_full_read(kernel, hn):
    feed(hn, wep("a", "cali1", "10.65.0.1/32"))
    kernel.add_link("cali1")  # its event was lost
    hn.notify_link(None, False)
    hn.apply()
    assert kernel.dsts(PROTO) == {"10.65.0.1/32"}


def test_wake_callback_called_from_notify(kernel):
    woken = []
    hn = HostNetworkManager(kernel, wake=lambda: woken.append(1))
    hn.notify_link(kernel.add_link("cali1"), True)
    assert woken == [1]


# ---- state lists: any order of the same updates ends in the same kernel state ----

STATES = [
    wep("a", "cali1", "10.65.0.1/32", mac="aa:00:00:00:00:01"),
    wep("b", "cali2", "10.65.0.2/32", v6=("fd00::2/128",)),
    wep("a", "cali1", "10.65.0.11/32", mac="aa:00:00:00:00:01"),
    wep("c", "cali3", "10.65.0.3/32"),
    rm("b"),
    wep("c", "cali2", "10.65.0.3/32"),
]


def final_state(msgs) -> tuple:
    kernel = FakeKernel()
    for name in ("cali1", "cali2", "cali3"):
        kernel.add_link(name)
    hn = HostNetworkManager(kernel)
    for msg in msgs:
        hn.on_message(msg)
        hn.apply()
    return frozenset(kernel.route_set), frozenset(kernel.neigh.items())


def expected_after(msgs) -> dict:
    latest: dict = {}
    for msg in msgs:
        latest[msg.id] = msg
    return {k: v for k, v in latest.items() if isinstance(v, m.WorkloadEndpointUpdate)}


@pytest.mark.parametrize("seed", range(8))
def test_state_list_orderings(seed):
    rng = random.Random(seed)
    msgs = list(STATES)
    rng.shuffle(msgs)
    # Same final desired state => same kernel state, whatever the path.
    reference = final_state(list(expected_after(msgs).values()))
    assert final_state(msgs) == reference
    assert final_state(list(reversed(msgs)) + msgs) == reference


def test_every_prefix_of_state_list_is_consistent():
    for n in range(len(STATES) + 1):
        for perm in itertools.islice(itertools.permutations(STATES[:n]), 6):
            assert final_state(perm) == final_state(list(expected_after(perm).values()))


def test_shared_address_is_reference_counted(kernel, hn):
    kernel.add_link("cali1")
    feed(hn, wep("a", "cali1", "10.65.0.1/32"), wep("b", "cali1", "10.65.0.1/32"))
    feed(hn, rm("a"))
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32"}
    feed(hn, rm("b"))
    assert kernel.dsts(PROTO) == set()


def test_kernel_error_is_logged_and_leads_to_resync(kernel, hn):
    kernel.add_link("cali1")
    feed(hn)
    real = kernel.add_routes_and_delete

    def broken(add, delete):
        raise OSError(105, "No buffer space available")
    kernel.add_routes_and_delete = broken
    feed(hn, wep("a", "cali1", "10.65.0.1/32"))  # does not raise
    assert hn.seconds_until_refresh() == 0.0
    kernel.add_routes_and_delete = real
    feed(hn)
    assert kernel.dsts(PROTO) == {"10.65.0.1/32"}
