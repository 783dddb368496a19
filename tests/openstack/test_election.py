"""Two Neutron servers with our driver on one Calico datastore: one master, and a takeover."""

import time

from calico.datastore.local import LocalBackend
from calico.openstack import names
from tests.openstack.conftest import wait_for
from tests.openstack.harness import NeutronServer

JUNK = names.subnet_key("junk-for-the-master")


def test_one_master_and_takeover(neutron_venv, tmp_path):
    path = str(tmp_path / "calico.db")
    a = NeutronServer(neutron_venv, tmp_path / "a", path, name="neutron-a")
    b = NeutronServer(neutron_venv, tmp_path / "b", path, name="neutron-b")
    store = LocalBackend(path)
    try:
        a.start()
        b.start()
        servers = {"neutron-a": a, "neutron-b": b}
        master = wait_for(lambda: (kv := store.get(names.ELECTION_KEY)) and kv.value,
                          what="a master")
        name = master.split(":")[0]
        time.sleep(2)  # several election rounds: still exactly one master
        assert store.get(names.ELECTION_KEY).value == master
        wins = {n: s.logs().count("is now the master") for n, s in servers.items()}
        assert wins == {n: int(n == name) for n in servers}
        # Only the master resyncs: junk is removed.
        store.put(JUNK, "{}")
        wait_for(lambda: store.get(JUNK) is None, what="the master's resync")

        servers[name].kill()  # a crash: the lease is not released
        killed_at = time.monotonic()
        other = "neutron-b" if name == "neutron-a" else "neutron-a"
        new = wait_for(lambda: (kv := store.get(names.ELECTION_KEY)) and
                       kv.value.startswith(other + ":") and kv.value, timeout=30,
                       what="takeover")
        took = time.monotonic() - killed_at
        assert took < 10, f"takeover took {took:.1f} s with a 3 s lease"
        assert new != master
        store.put(JUNK, "{}")
        wait_for(lambda: store.get(JUNK) is None, what="the new master's resync")
    finally:
        a.stop()
        b.stop()
        store.close()
