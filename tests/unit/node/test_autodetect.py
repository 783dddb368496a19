"""Calico's IP autodetection methods over a fake interface list."""

import pytest

from calico.node.autodetect import AutodetectError, Interface, detect

IFACES = [
    Interface("lo", ("127.0.0.1/8", "::1/128")),
    Interface("docker0", ("172.17.0.1/16",)),
    Interface("eth0", ("fe80::1/64", "10.0.0.5/24", "fd00::5/64")),
    Interface("eth1", ("192.168.7.2/24", "fd01::2/64")),
    Interface("eth2", ("10.9.9.9/24",), up=False),
    Interface("cali1234", ("10.65.0.1/32",)),
]


def ifaces():
    return IFACES


def reach(dest, version):
    return {"192.168.7.254": "192.168.7.2", "fd01::1": "fd01::2"}.get(dest)


@pytest.mark.parametrize("method,version,want", [
    ("first-found", 4, "10.0.0.5/24"),
    ("first-found", 6, "fd00::5/64"),
    ("", 4, "10.0.0.5/24"),
    ("interface=eth1", 4, "192.168.7.2/24"),
    ("interface=nope.*,eth.*", 6, "fd00::5/64"),
    ("interface=eth2", 4, None),  # down
    ("skip-interface=eth0", 4, "192.168.7.2/24"),
    ("can-reach=192.168.7.254", 4, "192.168.7.2/24"),
    ("can-reach=fd01::1", 6, "fd01::2/64"),
    ("can-reach=8.8.8.8", 4, None),
    ("cidr=192.168.0.0/16", 4, "192.168.7.2/24"),
    ("cidr=172.16.0.0/12,fd01::/16", 6, "fd01::2/64"),
    ("cidr=10.65.0.0/16", 4, "10.65.0.1/32"),  # cidr= looks at every interface
])
def test_methods(method, version, want):
    assert detect(method, version, ifaces, reach) == want


@pytest.mark.parametrize("method", ["bogus", "interface=", "interface=(", "cidr=x",
                                    "can-reach="])
def test_invalid_methods(method):
    with pytest.raises(AutodetectError):
        detect(method, 4, ifaces, reach)
