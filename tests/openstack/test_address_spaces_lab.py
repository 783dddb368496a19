"""Address spaces on a real Neutron (#19): two projects both use 10.0.0.0/24, with real
packets through Felix's translator, BIRD and calico-dhcp-agent on a two-host IPv6 lab: the
same checks as the container test (tests/e2e/test_address_spaces.py, helpers shared in
tests/fixtures/space_checks.py).

The driver runs with `[calico] address_spaces = per_network`, so each project's network is
an AddressSpace. VMs: a1 (project a, host1, 10.0.0.5), b1 (project b, host1, 10.0.0.5),
a2 (a, host2, 10.0.0.6), b2 (b, host2, 10.0.0.6); a2 and b2 serve TCP and UDP on 7000 and
7001, replying with their name. Checked:
- the driver wrote one space per network, distinct translation prefixes; each VM gets its
  fixed IP by DHCP (udhcpc through the translator, which passes DHCP);
- a1 reaches 10.0.0.6 and is answered by a2, b1 by b2, over TCP (also 20 kB), UDP and ICMP
  echo; UDP to a closed port comes back as port unreachable (ECONNREFUSED); so nothing
  crosses between the projects;
- a Neutron security group on a2's port admitting only TCP 7000 from 10.0.0.0/24 and TCP
  7001 from 10.0.0.7/32 (the rules' prefixes are matched in project a's translated form,
  P::10.0.0.0/120 in host2's nft ruleset): a1 -> a2:7000 works, a1 -> a2:7001 and UDP are
  dropped, b1 -> b2:7001 (project b, default group) still works;
- kill -9 of Felix on host1 and host2 under a 10 ms ping a1 -> a2 loses nothing, and the
  same translator programs stay attached to every tap;
- path MTU: with both hosts' uplinks at 1400, a1's DF ping of 1428 bytes meets host1's ICMPv6
  Packet Too Big, which reaches a1 through Felix's ruleset as frag-needed from 169.254.1.1
  with MTU 1380; a DF ping of 1380 bytes is then answered.
Namespaces: the lab's and `cpt-<pid>-...`, always deleted.
"""

from __future__ import annotations

import ipaddress
import json
import re

import pytest

from calico.datastore.client import ResourceClient
from tests.fixtures import space_checks as sc
from tests.openstack.e2e_cloud import Cloud, cleanup_stale, wait

pytestmark = [pytest.mark.root, pytest.mark.slow]

VMS = [{"name": "a1", "host": "host1", "project": "a", "ip": "10.0.0.5"},
       {"name": "b1", "host": "host1", "project": "b", "ip": "10.0.0.5"},
       {"name": "a2", "host": "host2", "project": "a", "ip": "10.0.0.6"},
       {"name": "b2", "host": "host2", "project": "b", "ip": "10.0.0.6"}]
PORT = 7000  # served by a2 and b2, as is PORT + 1; PORT + 2 is closed


@pytest.fixture(scope="module")
def cloud(neutron_venv, tmp_path_factory):
    from tests.conftest import require_programs, require_root
    from tests.openstack.e2e_cloud import PROGRAMS

    require_root()
    require_programs(*PROGRAMS)
    cleanup_stale()
    cloud = Cloud(neutron_venv, tmp_path_factory.mktemp("os-spaces"),
                  calico_options={"address_spaces": "per_network"})
    servers = []
    try:
        cloud.up(hosts=2, ipv6=True)
        cloud.topo = cloud.sdk("topology", json.dumps(VMS), script="spaces_sdk.py")
        for vm in VMS:
            cloud.plug(vm["name"], vm["host"], cloud.topo["ports"][vm["name"]])
        for vm in VMS:
            cloud.vms[vm["name"]].dhcp(timeout=60)
        servers = [sc.serve(cloud.vms[name].ns.name, name, port)
                   for name in ("a2", "b2") for port in (PORT, PORT + 1)]
        yield cloud
    finally:
        for server in servers:
            server.kill()
            server.wait()
        cloud.down()


def ask(cloud: Cloud, src: str, proto: str, port: int = PORT, payload: str = "hi") -> str:
    return sc.client(cloud.vms[src].ns.name, proto, "10.0.0.6", port, payload)


def test_two_projects_with_one_subnet(cloud):
    backend = cloud.lab.backend()
    try:
        spaces = {s.name: s.spec.translationPrefix
                  for s in ResourceClient(backend).list("AddressSpace").items}
    finally:
        backend.close()
    nets = cloud.topo["networks"]
    assert sorted(spaces) == sorted(f"openstack-{nets[p]}" for p in ("a", "b"))
    assert len(set(spaces.values())) == 2
    for vm in VMS:
        lease = cloud.vms[vm["name"]].lease
        assert (lease["ip"], lease["router"]) == (vm["ip"], "10.0.0.1"), vm["name"]


@pytest.mark.parametrize(("src", "dst"), [("a1", "a2"), ("b1", "b2")])
def test_each_project_reaches_its_own_vm(cloud, src, dst):
    took = wait(lambda: ask(cloud, src, "tcp") == f"{dst} hi", 60,
                f"{src} -> 10.0.0.6 answered by {dst}", cloud)
    print(f"\n{src} -> 10.0.0.6:{PORT} answered by {dst} after {took:.2f}s")
    assert ask(cloud, src, "udp") == f"{dst} hi"
    assert ask(cloud, src, "tcp", payload="x" * 20000) == f"{dst} {'x' * 20000}"
    assert cloud.vms[src].pings("10.0.0.6")
    assert ask(cloud, src, "udp", port=PORT + 2) == "ECONNREFUSED"


def test_nothing_crosses_projects(cloud):
    """Both at once, again and again: each is answered by its own project's VM."""
    for _ in range(5):
        assert (ask(cloud, "a1", "udp"), ask(cloud, "b1", "udp")) == ("a2 hi", "b2 hi")


def space_prefix(cloud: Cloud, project: str) -> ipaddress.IPv6Network:
    """The translation prefix P of `project`'s network's AddressSpace."""
    backend = cloud.lab.backend()
    try:
        space = ResourceClient(backend).get("AddressSpace",
                                            f"openstack-{cloud.topo['networks'][project]}")
    finally:
        backend.close()
    return ipaddress.IPv6Network(space.spec.translationPrefix)


def translated(prefix: ipaddress.IPv6Network, cidr: str) -> str:
    """P::N/(96+len), as nft prints it (a /128 without its length)."""
    net = ipaddress.IPv4Network(cidr)
    out = ipaddress.IPv6Network((int(prefix.network_address) | int(net.network_address),
                                 96 + net.prefixlen))
    return str(out.network_address) if out.prefixlen == 128 else str(out)


def test_security_group_denies_a1_to_a2_on_one_port_only(cloud):
    """a2's only group: TCP 7000 from 10.0.0.0/24, TCP 7001 from 10.0.0.7/32 (not a1). Its
    rules are rendered in project a's space (P::10.0.0.0/120, P::10.0.0.7/128), so a1 gets
    7000 and not 7001; project b's b2 keeps its default group and answers b1 on 7001."""
    port = cloud.topo["ports"]["a2"]["id"]
    rules = [[PORT, "10.0.0.0/24"], [PORT + 1, "10.0.0.7/32"]]
    got = cloud.sdk("only-tcp", port, "a", json.dumps(rules), script="spaces_sdk.py")
    try:
        wait(lambda: ask(cloud, "a1", "tcp", port=PORT + 1) == "TIMEOUT", 60,
             "a1 -> a2:7001 dropped by a2's security group", cloud)
        assert ask(cloud, "a1", "tcp") == "a2 hi"
        assert ask(cloud, "a1", "udp") == "TIMEOUT"  # only TCP is allowed
        assert ask(cloud, "b1", "tcp", port=PORT + 1) == "b2 hi"
        assert ask(cloud, "b1", "udp", port=PORT + 1) == "b2 hi"
        ruleset = cloud.host_ns("host2").run("nft", "list", "ruleset").stdout
        p = space_prefix(cloud, "a")
        for _, cidr in rules:
            assert translated(p, cidr) in ruleset, (translated(p, cidr), ruleset[-3000:])
    finally:
        cloud.sdk("set-groups", port, json.dumps(got["previous"]), script="spaces_sdk.py")
    wait(lambda: ask(cloud, "a1", "tcp", port=PORT + 1) == "a2 hi", 60,
         "a1 -> a2:7001 allowed again", cloud)


def test_kill_felix_under_10ms_ping_loses_nothing(cloud):
    """The restarted Felix adopts the translators it finds: the same programs stay attached
    to every VM's tap, and not one ping of 10 ms from a1 to a2 is lost."""
    wait(lambda: cloud.vms["a1"].pings("10.0.0.6", timeout=0.5), 20, "a1 -> a2", cloud)
    hosts = ("host1", "host2")
    before = {h: sc.filter_ids(cloud.host_ns(h).name, ("tap",)) for h in hosts}
    assert all(len(f) == 2 for f in before.values()), before
    assert all(len(ids) == 2 for f in before.values() for ids in f.values()), before
    got = sc.ping_through_felix_kills(cloud.lab, cloud.vms["a1"].ns.name, "10.0.0.6", hosts)
    sent, received, backs = got["sent"], got["received"], got["backs"]
    print(f"\nkill -9 Felix on host1 and host2: back in {backs[0]:.2f}s / {backs[1]:.2f}s; "
          f"{sent} pings every 10 ms, {sent - received} lost")
    assert sent >= 300
    assert received == sent, got["out"][-300:]
    assert {h: sc.filter_ids(cloud.host_ns(h).name, ("tap",)) for h in hosts} == before


def test_path_mtu_reaches_the_vm(cloud):
    """Both hosts' uplinks at 1400: a1's DF ping of 1428 bytes (1448 as IPv6) meets host1's
    Packet Too Big, which reaches a1 through Felix's ruleset as frag-needed with MTU 1380;
    a1's route learns 1380 and a DF ping of that size is answered by a2."""
    wait(lambda: cloud.vms["a1"].pings("10.0.0.6", timeout=0.5), 20, "a1 -> a2", cloud)
    got = sc.path_mtu((cloud.host_ns("host1").name, cloud.host_ns("host2").name),
                      cloud.vms["a1"].ns.name, "10.0.0.6")
    assert "From 169.254.1.1" in got["too_big"] and "mtu = 1380" in got["too_big"], got
    assert re.search(r"\bmtu 1380\b", got["route"]), got["route"]
    assert got["fits"] == 0, got["fits_out"]
