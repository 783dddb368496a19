"""A real Felix and `calicoctl datastore migrate lock`: when the datastore is locked Felix
exits with its restart code (129) leaving the dataplane as it is, a Felix started while the
store is locked waits (not ready, traffic still flows), and after the unlock it programs what
was written meanwhile."""

from __future__ import annotations

import pytest

from calico.ctl.migrate import set_ready
from tests.dataplane.test_felix_harness import ALLOW_ALL, FelixHost, ping, wait_for, wl_ip


@pytest.fixture
def felix(netns, tmp_path):
    host = FelixHost(netns, tmp_path)
    host.client.create(ALLOW_ALL)
    host.start_felix()
    try:
        host.wait_ready()
        host.add_workload(1)
        host.add_workload(2)
        host.wait_programmed(1)
        host.wait_programmed(2)
        yield host
    finally:
        host.close()


def test_lock_restarts_felix_which_waits_and_resumes_on_unlock(felix):
    set_ready(felix.client, False)
    wait_for(lambda: felix.proc.poll() is not None, 15, "felix exits on the lock")
    assert felix.proc.returncode == 129, felix.log()
    assert ping(felix.workloads[1], wl_ip(2))  # the dataplane stays as programmed

    felix.start_felix()  # what calico-node's supervisor does
    wait_for(lambda: "locked for migration" in felix.log(), 15, "felix waits")
    felix.add_workload(3)  # written while locked: not programmed yet
    assert felix.proc.poll() is None and felix.http("/readiness") != 200
    assert ping(felix.workloads[1], wl_ip(2))

    set_ready(felix.client, True)
    felix.wait_ready()
    felix.wait_programmed(3)
    assert ping(felix.workloads[3], wl_ip(1))
