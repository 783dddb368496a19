"""The cni tier: root, network namespaces and a real container runtime (podman) calling our
plugins. Everything lives in temp folders; see podman.py for what is cleaned up."""

import os

import pytest

from calico.cni import install
from tests.conftest import require_programs, require_root
from tests.fixtures.netns import netns_set
from tests.unit.cni.driver import make_store, netconf

from .podman import podman_runtime

NETWORK = "cpt-calico"


@pytest.fixture(scope="session", autouse=True)
def _cni_prereqs():
    require_root()
    require_programs("ip", "ping", "podman", "runc", "conmon", "busybox")


@pytest.fixture
def netns():
    with netns_set() as nets:
        yield nets


@pytest.fixture
def store(tmp_path):
    """A local datastore with an IPv4 and an IPv6 pool: (path, ResourceClient)."""
    path = str(tmp_path / "calico.db")
    return path, make_store(path)


@pytest.fixture(scope="session")
def podman():
    """Podman with our plugins in its CNI bin dir and a conflist for NETWORK using a local
    datastore (with pools) in its own folder. Shared by the podman tests of a session."""
    with podman_runtime(NETWORK) as runtime:
        install(runtime.bin_dir)
        store = os.path.join(runtime.root, "calico.db")
        runtime.client = make_store(store)
        runtime.store = store
        runtime.write_conflist(netconf(store, runtime.root, name=NETWORK,
                                       ipam={"type": "calico-ipam", "assign_ipv6": "true"},
                                       capabilities={"ips": True}))
        yield runtime
