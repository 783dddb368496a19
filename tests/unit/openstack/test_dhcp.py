"""The DHCP agent's pure model and its dnsmasq manager (fake commands and processes)."""

import pytest

from calico.openstack.dhcp.dnsmasq import DnsmasqManager
from calico.openstack.dhcp.model import desired, render
from calico.openstack.endpoints import endpoint_resource
from calico.openstack.subnets import subnet_record

NET = "6ccfacab-1112-4074-bcf7-836737f5eb21"
SUBNETS = {
    "s4": {"network_id": NET, "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
           "host_routes": [{"destination": "10.9.0.0/16", "nexthop": "10.65.0.254"}],
           "dns_servers": ["192.0.2.53"]},
    "s6": {"network_id": NET, "cidr": "fd00:65::/64", "gateway_ip": "fd00:65::1",
           "host_routes": [], "dns_servers": []},
    "other": {"network_id": "net-2", "cidr": "10.66.0.0/24", "gateway_ip": "10.66.0.1",
              "host_routes": []},
}


def ep(pid, host="host-a", ips=(("s4", "10.65.0.5"),), net=NET):
    port = {"id": pid, "device_id": "vm-" + pid, "device_owner": "compute:nova",
            "binding:host_id": host, "mac_address": "fa:16:3e:00:00:0" + pid[-1],
            "network_id": net, "fixed_ips": [{"subnet_id": s, "ip_address": i} for s, i in ips]}
    return endpoint_resource(port, {})


def test_desired_only_this_hosts_endpoints():
    eps = [ep("p1", ips=(("s4", "10.65.0.5"), ("s6", "fd00:65::5"))), ep("p2", host="host-b"),
           ep("p3", ips=(("other", "10.66.0.7"),), net="net-2")]
    want = desired("host-a", eps, SUBNETS)
    assert set(want) == {NET, "net-2"}
    net = want[NET]
    assert net.interface == "ns-6ccfacab-11" and net.taps == ("tapp1",)
    assert [(h.ip, h.mac) for h in net.hosts] == [("10.65.0.5", "fa:16:3e:00:00:01"),
                                                   ("fd00:65::5", "fa:16:3e:00:00:01")]
    assert [s.id for s in net.subnets] == ["s4", "s6"]
    assert desired("host-c", eps, SUBNETS) == {}


def test_desired_serves_no_allowed_address_pair():
    endpoint = ep("p1")
    endpoint["spec"]["ipNetworks"] += ["10.65.0.100/32"]  # what a port's pair adds
    endpoint["spec"]["allowedIps"] = ["10.65.0.100/32", "10.65.0.128/28"]
    hosts = desired("host-a", [endpoint], SUBNETS)[NET].hosts
    assert [h.ip for h in hosts] == ["10.65.0.5"]


def test_render_dnsmasq():
    net = desired("host-a", [ep("p1", ips=(("s4", "10.65.0.5"), ("s6", "fd00:65::5")))],
                  SUBNETS)[NET]
    r = render(net, "/state")
    assert "--interface=ns-6ccfacab-11" in r.args and "--interface=tapp1" in r.args
    assert "--bridge-interface=ns-6ccfacab-11,tapp1" in r.args
    assert "--dhcp-range=set:subnet-s4,10.65.0.0,static,255.255.255.0,86400s" in r.args
    assert "--dhcp-range=set:subnet-s6,fd00:65::,static,off-link,64,86400s" in r.args
    assert "--enable-ra" in r.args
    assert r.addresses == ["10.65.0.1/32", "fd00:65::1/64"]
    assert r.files[f"/state/{NET}/host"] == ("fa:16:3e:00:00:01,host-10-65-0-5,10.65.0.5\n"
                                             "fa:16:3e:00:00:01,host-fd00-65--5,[fd00:65::5]\n")
    opts = r.files[f"/state/{NET}/opts"].splitlines()
    assert "tag:subnet-s4,option:router,10.65.0.1" in opts
    assert "tag:subnet-s4,option:dns-server,192.0.2.53" in opts
    assert ("tag:subnet-s4,option:classless-static-route,10.9.0.0/16,10.65.0.254,"
            "0.0.0.0/0,10.65.0.1") in opts
    assert "tag:subnet-s4,249,10.9.0.0/16,10.65.0.254,0.0.0.0/0,10.65.0.1" in opts
    assert not any("mtu" in a for a in r.args), "no MTU known, none advertised"


def full_net(v6_mode=None, mtu=1400, domain="example.org.", agent_domain="", cidr6=None):
    """One network with a v4 subnet and a v6 one in `v6_mode`, every option given."""
    subnets = {
        "s4": {"network_id": NET, "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
               "host_routes": [{"destination": "192.0.2.0/24", "nexthop": "10.65.0.254"}],
               "dns_servers": ["192.0.2.53", "192.0.2.54"], "mtu": mtu,
               "dns_domain": domain},
        "s6": {"network_id": NET, "cidr": cidr6 or "fd00:65::/64", "gateway_ip": "fd00:65::1",
               "host_routes": [], "dns_servers": ["fd00::53"], "mtu": mtu,
               "dns_domain": domain},
    }
    if v6_mode:
        subnets["s6"]["ipv6_address_mode"] = subnets["s6"]["ipv6_ra_mode"] = v6_mode
    port = ep("p1", ips=(("s4", "10.65.0.5"), ("s6", "fd00:65::5")))
    return desired("host-a", [port], subnets, agent_domain)[NET]


def test_render_mtu_dns_domain_and_routes():
    r = render(full_net(), "/state")
    opts = r.files[f"/state/{NET}/opts"].splitlines()
    assert "--dhcp-option-force=option:mtu,1400" in r.args  # option 26
    assert "--ra-param=ns-6ccfacab-11,mtu:1400,60" in r.args  # the RA's MTU option
    assert "--ra-param=tapp1,mtu:1400,60" in r.args
    assert "tag:subnet-s4,option:dns-server,192.0.2.53,192.0.2.54" in opts
    assert "tag:subnet-s4,option:domain-name,example.org" in opts  # trailing dot dropped
    assert "tag:subnet-s6,option6:dns-server,[fd00::53]" in opts
    assert "tag:subnet-s6,option6:domain-search,example.org" in opts
    assert ("tag:subnet-s4,option:classless-static-route,192.0.2.0/24,10.65.0.254,"
            "0.0.0.0/0,10.65.0.1") in opts


def test_domain_falls_back_to_the_agents():
    opts = render(full_net(domain=None, agent_domain="openstacklocal"), "/s").files[
        f"/s/{NET}/opts"]
    assert "option:domain-name,openstacklocal" in opts
    opts = render(full_net(domain=None), "/s").files[f"/s/{NET}/opts"]
    assert "domain" not in opts


def test_default_host_route_is_the_router_without_a_gateway():
    net = desired("host-a", [ep("p1")], {"s4": {
        "network_id": NET, "cidr": "10.65.0.0/24", "gateway_ip": None,
        "host_routes": [{"destination": "0.0.0.0/0", "nexthop": "10.65.0.254"},
                        {"destination": "192.0.2.0/24", "nexthop": "10.65.0.253"}]}})[NET]
    opts = render(net, "/s").files[f"/s/{NET}/opts"].splitlines()
    assert "tag:subnet-s4,option:router,10.65.0.254" in opts
    assert ("tag:subnet-s4,option:classless-static-route,192.0.2.0/24,10.65.0.253,"
            "0.0.0.0/0,10.65.0.254") in opts


def test_ipv6_modes():
    ranges = {}
    for mode in (None, "dhcpv6-stateful", "dhcpv6-stateless", "slaac"):
        r = render(full_net(mode), "/s")
        ranges[mode] = [a for a in r.args if a.startswith("--dhcp-range=set:subnet-s6")]
        assert "--enable-ra" in r.args
    assert ranges[None] == ranges["dhcpv6-stateful"] == [
        "--dhcp-range=set:subnet-s6,fd00:65::,static,off-link,64,86400s"]
    assert ranges["dhcpv6-stateless"] == [
        "--dhcp-range=set:subnet-s6,fd00:65::,ra-stateless,off-link,64,86400s"]
    assert ranges["slaac"] == ["--dhcp-range=set:subnet-s6,fd00:65::,ra-only,off-link,64,86400s"]


def test_ipv6_prefix_lengths_a_mode_cannot_serve_are_left_out():
    for mode, cidr, served in (("dhcpv6-stateful", "fd00:65::/80", True),
                               ("dhcpv6-stateful", "fd00:65::/56", False),
                               ("slaac", "fd00:65::/80", False),
                               ("dhcpv6-stateless", "fd00:65::/80", False)):
        r = render(full_net(mode, cidr6=cidr), "/s")
        assert any("subnet-s6" in a for a in r.args) is served, (mode, cidr)
        assert ("--enable-ra" in r.args) is served


def test_no_ra_for_ipv4_only_and_small_mtus_stay_off_the_ra():
    r = render(desired("host-a", [ep("p1")], SUBNETS)[NET], "/s")
    assert "--enable-ra" not in r.args and not any("ra-param" in a for a in r.args)
    r = render(full_net(mtu=1000), "/s")
    assert "--ra-param=ns-6ccfacab-11,60" in r.args  # IPv6 needs 1280: not advertised
    assert "--dhcp-option-force=option:mtu,1000" in r.args


def test_a_bad_ipv6_mode_leaves_the_subnet_out():
    subnets = {"s6": {"network_id": NET, "cidr": "fd00:65::/64", "gateway_ip": "fd00:65::1",
                      "ipv6_address_mode": "magic"}}
    assert desired("host-a", [ep("p1", ips=(("s6", "fd00:65::5"),))], subnets) == {}


class FakeProc:
    def __init__(self, args):
        self.args, self.signals, self.terminated = args, [], False

    def poll(self):
        return 0 if self.terminated else None

    def send_signal(self, sig):
        self.signals.append(sig)

    def terminate(self):
        self.terminated = True

    def wait(self, timeout=None):
        return 0


def test_manager_restarts_only_when_the_command_line_changes(tmp_path):
    cmds, procs = [], []
    m = DnsmasqManager(str(tmp_path), run=lambda c: cmds.append(c) or True,
                       spawn=lambda a: procs.append(FakeProc(a)) or procs[-1])
    one = desired("host-a", [ep("p1")], SUBNETS)
    m.apply(one)
    assert len(procs) == 1
    m.apply(one)  # nothing changed
    assert len(procs) == 1 and not procs[0].signals
    two = desired("host-a", [ep("p1"), ep("p2", ips=(("s4", "10.65.0.6"),))], SUBNETS)
    m.apply(two)  # a new tap: restart
    assert len(procs) == 2 and procs[0].terminated
    moved = desired("host-a", [ep("p1"), ep("p2", ips=(("s4", "10.65.0.7"),))], SUBNETS)
    m.apply(moved)  # same taps, new address: re-read the files
    assert len(procs) == 2 and procs[1].signals
    m.apply({})
    assert procs[1].terminated
    assert ["ip", "link", "del", "ns-6ccfacab-11"] in cmds
    assert ["ip", "addr", "replace", "10.65.0.1/32", "dev", "ns-6ccfacab-11",
            "noprefixroute"] in cmds


def test_agent_follows_its_region_and_upper_case_host(tmp_path):
    from calico.datastore.local import LocalBackend
    from calico.openstack import names
    from calico.openstack.dhcp.agent import DHCPAgent

    backend = LocalBackend(str(tmp_path / "calico.db"))
    try:
        agent = DHCPAgent(backend, "Host-A", DnsmasqManager(str(tmp_path)),
                          region=names.Region("r1"))
        prefixes = [s.prefix for s in agent.syncer.sources]
        assert prefixes == [
            "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack-region-r1/",
            "/calico/dhcp/v2/region-r1/subnet/"]
    finally:
        backend.close()
    # The driver lower-cases host names: host Host-A serves node host-a's endpoints.
    assert set(desired("Host-A", [ep("p1")], SUBNETS)) == {NET}


def test_subnet_record_carries_modes_mtu_and_domain():
    subnet = {"network_id": NET, "cidr": "fd00:65::/64", "gateway_ip": "fd00:65::1",
              "host_routes": [], "dns_nameservers": ["fd00::53"],
              "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}
    assert subnet_record(subnet, {"mtu": 1450, "dns_domain": "example.org."}) == {
        "network_id": NET, "cidr": "fd00:65::/64", "gateway_ip": "fd00:65::1",
        "host_routes": [], "dns_servers": ["fd00::53"], "ipv6_address_mode": "slaac",
        "ipv6_ra_mode": "slaac", "mtu": 1450, "dns_domain": "example.org."}
    # networking-calico's keys only, when the network is unknown or has neither.
    v4 = {"network_id": NET, "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
          "ipv6_address_mode": None}
    assert subnet_record(v4) == subnet_record(v4, {"mtu": 0, "dns_domain": ""}) == {
        "network_id": NET, "cidr": "10.65.0.0/24", "gateway_ip": "10.65.0.1",
        "host_routes": []}


def test_subnet_record_refuses_an_unknown_ipv6_mode():
    with pytest.raises(ValueError, match="ipv6_address_mode 'magic'"):
        subnet_record({"network_id": NET, "cidr": "fd00::/64", "ipv6_address_mode": "magic"})
