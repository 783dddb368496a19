"""The Felix main loop against the local datastore and a fake kernel (nft runner + netlink):
nothing applied before in-sync, one transaction for the snapshot, restart on config change,
live changes, clean stop, status reports."""

from __future__ import annotations

import json
import threading
import time

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.felix import messages as m
from calico.felix.config import RESTART_EXIT_CODE, ConfigLoader
from calico.felix.daemon import Felix, read_datastore_config
from calico.felix.dataplane.driver import DataplaneDriver
from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.nft import NftDataplane
from calico.felix.status import EndpointKey, status_key
from tests.unit.felix.dataplane.test_routes_fake_kernel import FakeKernel

HOST = "host1"


class FakeRunner:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    def run(self, script: str) -> None:
        self.scripts.append(script)

    def list_table(self, family: str, name: str) -> dict | None:
        return None


class RecordingDriver(DataplaneDriver):
    """The real driver over fakes, recording the order of messages and applies."""

    def __init__(self, runner: FakeRunner, kernel: FakeKernel, **kw) -> None:
        super().__init__(NftDataplane(runner), HostNetworkManager(kernel, HOST), **kw)
        self.events: list[str] = []

    def on_message(self, msg: m.Message) -> None:
        self.events.append(type(msg).__name__)
        super().on_message(msg)

    def apply(self):
        result = super().apply()
        if result is not None:
            self.events.append("apply")
        return result


def resource(kind: str, name: str, spec: dict, namespace: str | None = None) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}


def wep(n: int, node: str = HOST) -> dict:
    return resource("WorkloadEndpoint", f"{node}-k8s-p{n}-eth0", {
        "orchestrator": "k8s", "node": node, "pod": f"p{n}", "endpoint": "eth0",
        "interfaceName": f"cali{n}", "ipNetworks": [f"10.65.0.{n}/32"],
        "profiles": ["allow"]}, namespace="default")


ALLOW = resource("Profile", "allow", {"ingress": [{"action": "Allow"}],
                                      "egress": [{"action": "Allow"}]})


def felix_config(name: str = "default", **spec) -> dict:
    return resource("FelixConfiguration", name, spec)


class Running:
    def __init__(self, backend, env: dict | None = None) -> None:
        self.runner, self.kernel = FakeRunner(), FakeKernel()
        self.kernel.add_link("cali1")
        self.driver: RecordingDriver | None = None
        env = {"FELIX_NFTABLESREFRESHINTERVAL": "0", **(env or {})}

        def factory(hostname, config, wake):
            self.driver = RecordingDriver(self.runner, self.kernel,
                                          nft_refresh_interval=config.nftablesRefreshInterval)
            return self.driver

        self.felix = Felix(HOST, ConfigLoader(HOST, env=env), backend, driver_factory=factory)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.felix.run()

    def wait(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("condition not met (felix exited: "
                                     f"{not self.thread.is_alive()}, code {self.code})")
            time.sleep(0.02)

    def programmed(self) -> bool:
        return self.felix._programmed

    def stop(self) -> int | None:
        self.felix.stop(0)
        self.thread.join(timeout=10)
        return self.code


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend(str(tmp_path / "calico.db"))
    yield b
    b.close()


def test_snapshot_is_applied_once_after_in_sync_in_one_transaction(backend):
    client = ResourceClient(backend)
    client.create(ALLOW)
    for n in (1, 2):
        client.create(wep(n))
    client.create(wep(3, node="host2"))  # remote: IP sets only
    felix = Running(backend)
    try:
        felix.wait(felix.programmed)
        events = felix.driver.events
        assert events.count("apply") == 1
        assert events.index("InSync") < events.index("apply")
        assert events.index("WorkloadEndpointUpdate") < events.index("InSync")
        assert len(felix.runner.scripts) == 1  # the whole snapshot in one nft transaction
        script = felix.runner.scripts[0]
        assert "cali1" in script and "cali2" in script
        assert felix.kernel.dsts() == {"10.65.0.1/32"}  # cali2 has no link yet
    finally:
        assert felix.stop() == 0


def test_later_changes_are_applied_incrementally(backend):
    client = ResourceClient(backend)
    client.create(ALLOW)
    felix = Running(backend)
    try:
        felix.wait(felix.programmed)
        client.create(wep(1))
        felix.wait(lambda: felix.kernel.dsts() == {"10.65.0.1/32"})
        assert len(felix.runner.scripts) == 2
        client.delete("WorkloadEndpoint", f"{HOST}-k8s-p1-eth0", "default")
        felix.wait(lambda: felix.kernel.dsts() == set())
    finally:
        felix.stop()


def test_config_change_needing_restart_exits_129_without_touching_dataplane(backend):
    client = ResourceClient(backend)
    client.create(felix_config(reportingInterval="10s"))
    felix = Running(backend)
    felix.wait(felix.programmed)
    scripts = len(felix.runner.scripts)
    client.apply(felix_config(reportingInterval="10s", interfacePrefix="tap"))
    felix.thread.join(timeout=10)
    assert felix.code == RESTART_EXIT_CODE
    assert len(felix.runner.scripts) == scripts


def test_live_config_change_does_not_restart(backend):
    client = ResourceClient(backend)
    felix = Running(backend)
    try:
        felix.wait(felix.programmed)
        client.create(felix_config(f"node.{HOST}", reportingInterval="7s"))
        felix.wait(lambda: felix.felix.config.reportingInterval == 7.0)
        assert felix.thread.is_alive()
    finally:
        assert felix.stop() == 0


def test_start_uses_datastore_config_read_before_the_syncer(backend):
    client = ResourceClient(backend)
    client.create(felix_config(reportingInterval="11s", interfacePrefix="tap"))
    client.create(felix_config(f"node.{HOST}", reportingInterval="12s"))
    assert read_datastore_config(backend, HOST) == {"interfacePrefix": "tap",
                                                     "reportingInterval": "12s"}
    felix = Running(backend)
    try:
        felix.wait(felix.programmed)
        assert felix.felix.config.interfacePrefix == "tap"
        assert felix.thread.is_alive()  # the snapshot's config equals it: no restart
    finally:
        felix.stop()


def test_sigusr1_writes_a_heap_profile_when_a_path_is_set(backend, tmp_path):
    import tracemalloc

    was_tracing = tracemalloc.is_tracing()
    path = tmp_path / "felix-<timestamp>.heap"
    felix = Running(backend, env={"FELIX_DEBUGMEMORYPROFILEPATH": str(path)})
    try:
        felix.wait(felix.programmed)
        felix.felix.request_heap_profile()  # what the SIGUSR1 handler calls
        felix.wait(lambda: list(tmp_path.glob("felix-*.heap")))
        (written,) = tmp_path.glob("felix-*.heap")
        assert "<timestamp>" not in written.name
        assert tracemalloc.Snapshot.load(str(written)).traces
    finally:
        assert felix.stop() == 0
        if not was_tracing:
            tracemalloc.stop()


def test_heap_profile_request_without_a_path_is_only_logged(backend, caplog):
    felix = Running(backend)
    try:
        felix.wait(felix.programmed)
        felix.felix.request_heap_profile()
        felix.wait(lambda: "DebugMemoryProfilePath is not set" in caplog.text)
    finally:
        assert felix.stop() == 0


def test_status_and_endpoint_reports(backend):
    client = ResourceClient(backend)
    client.create(ALLOW)
    client.create(wep(1))
    client.create(wep(2))  # no interface: down
    felix = Running(backend, env={"FELIX_ENDPOINTREPORTINGENABLED": "true",
                                  "FELIX_ENDPOINTREPORTINGDELAYSECS": "0"})
    try:
        felix.wait(felix.programmed)
        felix.wait(lambda: backend.get(status_key("no-region", HOST)) is not None)
        up = EndpointKey("k8s", "default/p1", "eth0").path("no-region", HOST)
        down = EndpointKey("k8s", "default/p2", "eth0").path("no-region", HOST)
        felix.wait(lambda: backend.get(up) is not None and backend.get(down) is not None)
        assert json.loads(backend.get(up).value) == {"status": "up"}
        assert json.loads(backend.get(down).value) == {"status": "down"}
        client.delete("WorkloadEndpoint", f"{HOST}-k8s-p2-eth0", "default")
        felix.wait(lambda: backend.get(down) is None)
    finally:
        felix.stop()


def test_metrics_follow_the_sync_and_the_calc_graph(backend):
    """felix_resync_state goes to 3 (in sync); updates processed are counted by new/update/
    delete; the cluster and local gauges follow the datastore."""
    from prometheus_client.parser import text_string_to_metric_families

    client = ResourceClient(backend)
    client.create(ALLOW)
    client.create(wep(1))
    client.create(resource("Tier", "security", {"order": 100}))
    felix = Running(backend)
    try:
        felix.wait(felix.programmed)
        metrics = felix.felix.metrics
        assert metrics.resync_state._value.get() == 3
        assert metrics.cluster_tiers._value.get() == 1
        assert metrics.cluster_hosts._value.get() == 1  # the endpoint's host, no Node needed
        assert metrics.counters.value("felix_calc_graph_updates_processed", type="new") >= 2
        client.update(wep(1) | {"metadata": {**wep(1)["metadata"], "labels": {"a": "b"}}})
        felix.wait(lambda: metrics.counters.value("felix_calc_graph_updates_processed",
                                                  type="update") >= 1)
        client.delete("WorkloadEndpoint", f"{HOST}-k8s-p1-eth0", "default")
        felix.wait(lambda: metrics.counters.value("felix_calc_graph_updates_processed",
                                                  type="delete") >= 1)
        felix.wait(lambda: metrics.local_endpoints._value.get() == 0)
        assert metrics.counters.value("felix_calc_graph_output_events") > 0
        families = {f.name: f for f in text_string_to_metric_families(metrics.text())}
        assert families["felix_resync_state"].samples[0].value == 3
    finally:
        felix.stop()
