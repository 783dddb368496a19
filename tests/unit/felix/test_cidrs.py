"""calico.felix.cidrs gives exactly what the `ipaddress` expressions it replaces give."""

from __future__ import annotations

import ipaddress
import random

import pytest

from calico.felix.cidrs import canonical_net, collapse_nets, normalise_net, outermost_nets

ODD = ["1.2.3.4/33", "01.2.3.4", "1.2.3.4/08", "256.1.1.1", "1.2.3", "", "1.2.3.4/",
       " 1.2.3.4", "1.2.3.4\n", "::1", "fe80::1/10", "2001:db8::/32", "0.0.0.0/0",
       "255.255.255.255", "1.2.3.4/0", "10.1.2.3/31", 5, None]


def _outcome(fn, arg):
    try:
        return "ok", fn(arg)
    except Exception as err:  # noqa: BLE001 - the error itself is what is compared
        return "error", type(err), str(err)


def _old_canonical(net):
    n = ipaddress.ip_network(net, strict=False)
    return str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)


def _old_collapse(nets):
    parsed = [ipaddress.ip_network(n, strict=False) for n in nets]
    return [_old_canonical(str(n)) for n in ipaddress.collapse_addresses(parsed)]


def _random_net(rnd: random.Random) -> str:
    addr = ".".join(str(rnd.choice([0, 1, 10, 255, rnd.randrange(256)])) for _ in range(4))
    return addr + (f"/{rnd.randrange(33)}" if rnd.random() < 0.5 else "")


@pytest.mark.parametrize("net", ODD)
def test_odd_inputs_match_ipaddress(net):
    assert _outcome(normalise_net, net) == _outcome(
        lambda n: str(ipaddress.ip_network(n, strict=False)), net)
    assert _outcome(canonical_net, net) == _outcome(_old_canonical, net)


def test_random_nets_match_ipaddress():
    rnd = random.Random(7)
    for _ in range(5000):
        net = _random_net(rnd)
        assert normalise_net(net) == str(ipaddress.ip_network(net, strict=False))
        assert canonical_net(net) == _old_canonical(net)


def test_collapse_matches_ipaddress():
    rnd = random.Random(11)
    for _ in range(3000):
        base = rnd.randrange(1 << 32) & ~0xFFF
        nets = []
        for _ in range(rnd.randrange(12)):
            net = str(ipaddress.IPv4Address(base + rnd.randrange(4096)))
            if rnd.random() < 0.4:
                net += f"/{rnd.choice([20, 22, 24, 26, 28, 30, 31, 32, rnd.randrange(33)])}"
            nets.append(net)
        if rnd.random() < 0.05:
            nets.append(rnd.choice(["fe80::/64", "0.0.0.0/0", "255.255.255.255", "1.2.3.4/33"]))
        assert _outcome(collapse_nets, iter(nets)) == _outcome(_old_collapse, nets), nets


def test_collapse_ipv6_and_edges():
    assert collapse_nets([]) == []
    assert collapse_nets(["0.0.0.0/1", "128.0.0.0/1"]) == ["0.0.0.0/0"]
    assert collapse_nets(["10.0.0.1", "10.0.0.0", "10.0.0.2/31"]) == ["10.0.0.0/30"]
    assert collapse_nets(["2001:db8::1", "2001:db8::/127"]) == ["2001:db8::/127"]


def _old_outermost(nets):
    parsed = [ipaddress.ip_network(n, strict=False) for n in nets]
    keep = {n for n in parsed if not any(o != n and n.subnet_of(o) for o in parsed)}
    return [_old_canonical(str(n)) for n in sorted(keep)]


def test_outermost_keeps_members_not_inside_another():
    rnd = random.Random(13)
    for _ in range(2000):
        base = rnd.randrange(1 << 32) & ~0xFFF
        nets = [str(ipaddress.IPv4Address(base + rnd.randrange(4096)))
                + (f"/{rnd.choice([22, 26, 30, 31, 32])}" if rnd.random() < 0.3 else "")
                for _ in range(rnd.randrange(12))]
        assert outermost_nets(iter(nets)) == _old_outermost(nets), nets
    assert outermost_nets(["10.0.0.1", "10.0.0.0"]) == ["10.0.0.0", "10.0.0.1"]
    assert outermost_nets(["10.0.0.1", "10.0.0.0/30", "10.0.0.0/30"]) == ["10.0.0.0/30"]
    assert outermost_nets(["2001:db8::1", "2001:db8::/127", "2001:db8::8"]) == [
        "2001:db8::/127", "2001:db8::8"]
