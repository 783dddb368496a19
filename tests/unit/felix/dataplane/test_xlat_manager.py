"""XlatManager against a fake Translator (the contract's API): attach per space endpoint,
detach when it goes, interfaces that appear late, adoption after a restart, failures."""

from __future__ import annotations

import ipaddress

from calico.felix import messages as m
from calico.felix.dataplane.links import LinkTable
from calico.felix.dataplane.netlink import Link
from calico.felix.dataplane.xlat.manager import XlatManager

P = "64:ff9b:1::/96"


class FakeTranslator:
    def __init__(self, state=None) -> None:
        self.state = dict(state or {})
        self.calls: list[tuple] = []
        self.fail: set[str] = set()

    def attach(self, ifname, prefix, ipv4) -> None:
        if ifname in self.fail:
            raise OSError(f"cannot attach to {ifname}")
        self.calls.append(("attach", ifname, str(prefix), str(ipv4)))
        self.state[ifname] = (prefix, ipv4)

    def detach(self, ifname) -> None:
        self.calls.append(("detach", ifname))
        self.state.pop(ifname, None)

    def attached(self):
        return dict(self.state)


def ep(name, iface, space="blue", ipv4="10.200.0.5"):
    return m.WorkloadEndpointUpdate(
        id=m.WorkloadEndpointID("ns", name), interface=iface,
        ipv6_nets=(f"64:ff9b:1::{ipv4}/128",) if space else (),
        ipv4_nets=() if space else (f"{ipv4}/32",),
        address_space=space, translation_prefix=P if space else "",
        xlat_ipv4=ipv4 if space else "")


def setup(*ifaces, translator=None):
    links = LinkTable()
    for i, name in enumerate(ifaces, 1):
        links.update(Link(i, name, True))
    fake = translator or FakeTranslator()
    return links, fake, XlatManager(links, ("cali",), lambda: fake)


def test_attach_and_detach_per_space_endpoint():
    links, fake, mgr = setup("calia1", "calib1", "calid1")
    mgr.on_message(ep("a1", "calia1"))
    mgr.on_message(ep("d1", "calid1", space=""))
    mgr.apply()
    assert fake.calls == [("attach", "calia1", P, "10.200.0.5")]
    mgr.apply()
    assert len(fake.calls) == 1  # nothing dirty, nothing done
    mgr.on_message(m.WorkloadEndpointRemove(m.WorkloadEndpointID("ns", "a1")))
    mgr.apply()
    assert fake.calls[-1] == ("detach", "calia1") and fake.state == {}


def test_endpoint_leaving_its_space_is_detached():
    links, fake, mgr = setup("calia1")
    mgr.on_message(ep("a1", "calia1"))
    mgr.apply()
    mgr.on_message(ep("a1", "calia1", space=""))
    mgr.apply()
    assert fake.state == {}


def test_interface_appearing_late_is_attached_on_its_link_event():
    links, fake, mgr = setup()
    mgr.on_message(ep("a1", "calia1"))
    mgr.apply()
    assert fake.calls == []
    link = Link(7, "calia1", True)
    links.update(link)
    mgr.on_link_change("calia1", None, link)
    mgr.apply()
    assert fake.calls == [("attach", "calia1", P, "10.200.0.5")]


def test_restart_adopts_what_is_attached_and_removes_strays():
    state = {"calia1": (ipaddress.IPv6Network(P), ipaddress.IPv4Address("10.200.0.5")),
             "caliold": (ipaddress.IPv6Network(P), ipaddress.IPv4Address("10.200.0.9")),
             "eth0": (ipaddress.IPv6Network(P), ipaddress.IPv4Address("10.200.0.1"))}
    links, fake, mgr = setup("calia1", translator=FakeTranslator(state))
    mgr.on_message(ep("a1", "calia1"))
    mgr.apply()
    # calia1 kept as found (no re-attach), the stray workload interface detached, eth0 (not
    # ours) left alone
    assert fake.calls == [("detach", "caliold")]
    assert set(fake.state) == {"calia1", "eth0"}


def test_a_failure_is_retried_and_stops_no_other_interface():
    links, fake, mgr = setup("calia1", "calia2")
    fake.fail.add("calia1")
    mgr.on_message(ep("a1", "calia1"))
    mgr.on_message(ep("a2", "calia2", ipv4="10.200.0.6"))
    mgr.apply()
    assert "calia1" in mgr.failures and "calia2" in fake.state
    fake.fail.clear()
    mgr.apply()
    assert "calia1" in fake.state and mgr.failures == {}


def test_no_space_endpoint_never_loads_the_translator():
    links = LinkTable()

    def boom():
        raise AssertionError("loaded")

    mgr = XlatManager(links, ("cali",), boom)
    mgr.on_message(ep("d1", "calid1", space=""))
    mgr.apply()
