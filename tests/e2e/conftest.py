"""The e2e tier: whole clusters from `calico.lab` (root, BIRD, GoBGP, etcd).

Every lab a test makes is named `e<pid><tag>`, so its namespaces (`calab-e<pid>...`) are
recognisable; it is always torn down, also when the test fails, and labs left by a crashed
earlier run (whose pid is dead) are removed first. Figures (session-up time, propagation
delays) are printed: run with `-s` to see them.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

import pytest

from calico.lab import fabric
from calico.lab.lab import Lab, state_root
from calico.lab.proc import netns_delete, netns_list
from tests.conftest import require_programs, require_root

_E2E_NETNS = re.compile(r"^calab-e(\d+)[a-z]*-")


def _cleanup_stale() -> None:
    """Labs of dead e2e runs: their daemons (etcd and the proxy run outside the lab's
    namespaces), namespaces and state dirs."""
    root = state_root()
    for name in os.listdir(root) if os.path.isdir(root) else []:
        m = re.match(r"^e(\d+)[a-z]*$", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            lab = Lab(name)
            if lab.exists():
                lab.load()
            lab.down()
    for ns in netns_list():
        m = _E2E_NETNS.match(ns)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            netns_delete(ns)


@pytest.fixture(scope="module")
def make_lab():
    require_root()
    require_programs("bird", "birdc", "gobgpd", "gobgp", "etcd", "ping")
    _cleanup_stale()
    labs: list[Lab] = []

    def make(tag: str, **kwargs) -> Lab:
        lab = Lab(f"e{os.getpid()}{tag}"[:12])
        labs.append(lab)
        started = time.monotonic()
        if "racks" in kwargs:
            fabric.up(lab, **kwargs)
        else:
            lab.up(**kwargs)
        print(f"\n[{lab.name}] up with {len(lab.state['hosts'])} hosts, all sessions "
              f"Established, in {time.monotonic() - started:.2f}s")
        return lab

    yield make
    for lab in labs:
        lab.down()


def wait_until(cond: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.02) -> float:
    """Seconds until `cond()` held; fails the test after `timeout`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout:g}s")
        time.sleep(interval)
    return time.monotonic() - start


def bird_routes(lab: Lab, host: str, version: int = 4) -> dict[str, str]:
    """{prefix: next hop} of the BGP routes BIRD put in a host's kernel."""
    from calico.lab.proc import sh

    out = sh("ip", "-n", lab.host(host)["netns"], f"-{version}", "route", "show",
             "proto", "bird").stdout
    routes = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] not in ("blackhole", "unreachable"):
            routes[parts[0]] = parts[parts.index("via") + 1] if "via" in parts else ""
    return routes


def blocks_of(lab: Lab, host: str, version: int = 4) -> set[str]:
    """The host's affine blocks, from IPAM in the lab datastore."""
    from calico.ipam.model import affinities_prefix, parse_affinity_key

    backend = lab.backend()
    try:
        kvs, _ = backend.list(affinities_prefix(host, version))
    finally:
        backend.close()
    return {str(parse_affinity_key(kv.key)[1]) for kv in kvs}
