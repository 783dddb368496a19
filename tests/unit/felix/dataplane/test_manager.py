"""The manager interface: every manager sees every message, deferred work before the apply."""

from __future__ import annotations

import pytest

from calico.felix import messages as m
from calico.felix.dataplane.driver import DataplaneDriver
from calico.felix.dataplane.hostnet import HostNetworkManager, NetlinkManager
from calico.felix.dataplane.manager import Manager, ManagerGroup
from calico.felix.dataplane.nft import NftDataplane, NftError
from tests.unit.felix.dataplane.test_nft_managers import FakeRunner
from tests.unit.felix.dataplane.test_routes_fake_kernel import FakeKernel

P1 = m.PolicyID("p1")
W1 = m.WorkloadEndpointID("ns", "w1")


class Recorder:
    """A manager that records what it was called with, into a log shared with others."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def on_message(self, msg: m.Message) -> None:
        self.log.append(f"{self.name}:{type(msg).__name__}")

    def complete_deferred_work(self) -> None:
        self.log.append(f"{self.name}:deferred")


def driver(runner: FakeRunner, kernel: FakeKernel) -> DataplaneDriver:
    return DataplaneDriver(NftDataplane(runner), HostNetworkManager(kernel, "host1"))


def all_managers(group: ManagerGroup) -> list:
    out = []
    for manager in group.managers:
        out.append(manager)
        if isinstance(manager, ManagerGroup):
            out += all_managers(manager)
    return out


def test_every_listed_manager_implements_the_interface():
    managers = all_managers(driver(FakeRunner(), FakeKernel()))
    names = {type(x).__name__ for x in managers}
    assert names == {"DataplaneStatus", "NftDataplane", "IPSetsManager", "PolicyManager",
                     "EndpointManager", "NatManager", "DNATManager", "HostNetworkManager",
                     "RouteManager", "SysctlManager", "IPIPManager", "ConntrackManager",
                     "XlatManager"}
    assert all(isinstance(x, Manager) for x in managers)
    hostnet = next(x for x in managers if isinstance(x, HostNetworkManager))
    assert all(isinstance(x, NetlinkManager) for x in hostnet.managers)


def test_a_group_gives_every_message_to_every_member_in_list_order():
    log: list[str] = []
    inner = ManagerGroup([Recorder("b", log), Recorder("c", log)])
    group = ManagerGroup([Recorder("a", log), inner, Recorder("d", log)])
    group.on_message(m.InSync())
    group.on_message(m.IPSetRemove("s"))
    group.complete_deferred_work()
    assert log == ["a:InSync", "b:InSync", "c:InSync", "d:InSync",
                   "a:IPSetRemove", "b:IPSetRemove", "c:IPSetRemove", "d:IPSetRemove",
                   "a:deferred", "b:deferred", "c:deferred", "d:deferred"]


def test_a_config_update_reaches_the_policy_and_the_endpoint_manager():
    runner = FakeRunner()
    dp = NftDataplane(runner)
    dp.on_message(m.ConfigUpdate({"LogPrefix": "mine",
                                  "DefaultEndpointToHostAction": "Accept"}))
    dp.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(m.Rule(m.Action.LOG),)))
    dp.apply()
    (script,) = runner.scripts
    assert 'log prefix "mine: "' in script
    wl_to_host = [x for x in script.splitlines() if x.startswith("add rule inet calico "
                                                                 "wl-to-host")]
    assert wl_to_host[-1].startswith("add rule inet calico wl-to-host accept ")


def test_the_driver_hands_each_message_to_status_nftables_and_host_network():
    runner, kernel = FakeRunner(), FakeKernel()
    kernel.add_link("cali1")
    d = driver(runner, kernel)
    d.on_message(m.WorkloadEndpointUpdate(W1, interface="cali1", ipv4_nets=("10.65.0.2/32",)))
    d.on_message(m.InSync())
    d.apply()
    assert set(d.local_endpoints) == {W1}
    assert "fw-cali1" in d.nft.table.kernel.chains
    assert d.hostnet.routes.wanted_routes() == {"cali1": {"10.65.0.2/32"}}
    assert {r.dst for r in kernel.route_set} == {"10.65.0.2/32"}


def test_chains_of_a_set_that_became_non_empty_are_rerendered_in_the_drivers_apply():
    runner, kernel = FakeRunner(), FakeKernel()
    d = driver(runner, kernel)
    d.on_message(m.IPSetUpdate("s1", m.IPSetType.NET, frozenset()))
    d.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(
        m.Rule(m.Action.ALLOW, src_ip_set_ids=("s1",)),)))
    d.on_message(m.InSync())
    d.apply()
    d.on_message(m.IPSetDeltaUpdate("s1", added=frozenset({"10.0.0.1/32"})))
    d.apply()
    assert "@s4-s1" not in runner.scripts[0]
    assert "@s4-s1" in runner.scripts[-1]


class FailingRunner(FakeRunner):
    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def run(self, script: str) -> None:
        if self.failing:
            raise NftError("refused")
        super().run(script)


def test_sysctls_go_alongside_the_first_transaction_routes_only_after_it_succeeded():
    runner, kernel = FailingRunner(), FakeKernel()
    kernel.add_link("cali1")
    d = driver(runner, kernel)
    d.start()
    d.on_message(m.WorkloadEndpointUpdate(W1, interface="cali1", ipv4_nets=("10.65.0.2/32",)))
    d.on_message(m.InSync())
    with pytest.raises(NftError):
        d.apply()
    assert kernel.sysctls["net/ipv4/conf/cali1/proxy_arp"] == "1"
    assert kernel.route_set == set()
    runner.failing = False
    d.apply()
    assert {r.dst for r in kernel.route_set} == {"10.65.0.2/32"}
