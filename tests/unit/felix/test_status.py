"""Felix status in the datastore (keys, lease TTL, endpoint statuses), health HTTP, metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from calico.datastore.local import LocalBackend
from calico.felix.status import (
    EndpointKey,
    Health,
    HealthServer,
    Metrics,
    StatusReporter,
    last_status_key,
    status_key,
)

WALL = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def backend(tmp_path, clock):
    b = LocalBackend(str(tmp_path / "calico.db"), clock=clock)
    yield b
    b.close()


def reporter(backend, clock, **kw) -> StatusReporter:
    return StatusReporter(backend, "host1", kw.pop("region", "no-region"), clock=clock,
                          wall=lambda: WALL, **kw)


def test_status_keys_are_calicos():
    assert status_key("no-region", "h") == "/calico/felix/v2/no-region/host/h/status"
    assert last_status_key("region-r1", "h") == \
        "/calico/felix/v2/region-r1/host/h/last_reported_status"
    key = EndpointKey("openstack", "admin/vm-1", "port-1")
    assert key.path("no-region", "h") == \
        "/calico/felix/v2/no-region/host/h/workload/openstack/admin%2fvm-1/endpoint/port-1"


def test_endpoint_key_from_resource_spec():
    k8s = {"orchestrator": "k8s", "pod": "nginx", "workload": "", "endpoint": "eth0"}
    assert EndpointKey.from_resource("default", k8s) == \
        EndpointKey("k8s", "default/nginx", "eth0")
    os_spec = {"orchestrator": "openstack", "workload": "vm1", "endpoint": "p1"}
    assert EndpointKey.from_resource("proj", os_spec) == EndpointKey("openstack", "proj/vm1", "p1")


def test_status_report_value_and_lease_ttl(backend, clock):
    rep = reporter(backend, clock, ttl=90)
    clock.now += 5
    rep.report_status()
    kv = backend.get(status_key("no-region", "host1"))
    assert json.loads(kv.value) == {"time": "2026-01-02T03:04:05Z", "uptime": 5.0,
                                    "first_update": True}
    assert kv.lease != 0
    last = backend.get(last_status_key("no-region", "host1"))
    assert last.lease == 0 and json.loads(last.value)["first_update"] is True
    clock.now += 30
    rep.report_status()  # renews the same lease
    assert backend.get(status_key("no-region", "host1")).lease == kv.lease
    assert json.loads(backend.get(status_key("no-region", "host1")).value) == {
        "time": "2026-01-02T03:04:05Z", "uptime": 35.0, "first_update": False}
    clock.now += 89  # within the TTL of the renewal
    assert backend.get(status_key("no-region", "host1")) is not None
    clock.now += 2  # past it: Felix stopped reporting, the key vanishes
    assert backend.get(status_key("no-region", "host1")) is None
    assert backend.get(last_status_key("no-region", "host1")) is not None
    rep.report_status()  # an expired lease is replaced
    assert backend.get(status_key("no-region", "host1")) is not None


def test_endpoint_statuses_written_changed_and_deleted(backend, clock):
    rep = reporter(backend, clock, endpoint_reporting=True)
    a = EndpointKey("k8s", "default/a", "eth0")
    b = EndpointKey("k8s", "default/b", "eth0")
    rep.set_endpoints({a: "up", b: "down"})
    rep.report_endpoints()
    assert json.loads(backend.get(a.path("no-region", "host1")).value) == {"status": "up"}
    assert json.loads(backend.get(b.path("no-region", "host1")).value) == {"status": "down"}
    rev = backend.revision()
    rep.report_endpoints()
    assert backend.revision() == rev  # nothing changed, nothing written
    rep.set_endpoints({b: "up"})
    rep.report_endpoints()
    assert backend.get(a.path("no-region", "host1")) is None
    assert json.loads(backend.get(b.path("no-region", "host1")).value) == {"status": "up"}


def test_stale_endpoint_keys_of_a_previous_run_are_deleted(backend, clock):
    old = EndpointKey("openstack", "p/vm-gone", "port-gone")
    keep = EndpointKey("openstack", "p/vm", "port")
    other_host = old.path("no-region", "host2")
    backend.put(old.path("no-region", "host1"), '{"status": "up"}')
    backend.put(keep.path("no-region", "host1"), '{"status": "up"}')
    backend.put(other_host, '{"status": "up"}')
    rep = reporter(backend, clock, endpoint_reporting=True)
    rep.set_endpoints({keep: "up"})
    rev = backend.revision()
    rep.report_endpoints()
    assert backend.get(old.path("no-region", "host1")) is None
    assert backend.get(keep.path("no-region", "host1")).mod_revision < rev  # not rewritten
    assert backend.get(other_host) is not None


def test_reporter_thread_reports_and_stops(backend):
    rep = StatusReporter(backend, "host1", interval=0.05, ttl=5, endpoint_reporting=True,
                         endpoint_delay=0.01).start()
    key = EndpointKey("k8s", "ns/p", "eth0")
    rep.set_endpoints({key: "up"})
    try:
        import time
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if backend.get(key.path("no-region", "host1")) and \
                    backend.get(status_key("no-region", "host1")):
                break
            time.sleep(0.02)
        else:
            raise AssertionError("reporter thread wrote nothing")
    finally:
        rep.stop()


def test_health_aggregate(clock):
    health = Health(clock)
    assert health.problems("live") == ["nothing has reported yet"]
    health.report("a", live=True, ready=False, detail="syncing")
    health.report("b", live=True, ready=True, timeout=10)
    assert health.problems("live") == []
    assert health.problems("ready") == ["a: not ready (syncing)"]
    clock.now += 11
    assert health.problems("live") == ["b: no report for 11s (timeout 10s)"]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_health_http_endpoints():
    health = Health()
    health.report("felix", live=True, ready=False, detail="not in sync")
    server = HealthServer(health, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert get(base + "/liveness") == (200, "ok\n")
        code, body = get(base + "/readiness")
        assert code == 503 and "not in sync" in body
        health.report("felix", live=True, ready=True)
        assert get(base + "/readiness") == (200, "ok\n")
        assert get(base + "/other")[0] == 404
    finally:
        server.stop()


def test_metrics_use_felix_names_and_parse_back_with_their_types():
    """Every family and sample reads back through prometheus_client's own text parser with
    the type and value set (a counter exposed as a bare sample would parse as an empty
    counter plus an untyped sample)."""
    from prometheus_client.parser import text_string_to_metric_families

    metrics = Metrics()
    metrics.apply_time.observe(0.5)
    metrics.counters.inc("felix_resyncs_started")
    metrics.counters.inc("felix_int_dataplane_messages", type="InSync")
    metrics.counters.inc("felix_calc_graph_updates_processed", 3, type="new")
    metrics.counters.inc("felix_calc_graph_output_events", 7)
    metrics.cluster_endpoints.set(3)
    metrics.resync_state.set(3)
    metrics.local_selectors.set(4)
    families = {f.name: f for f in text_string_to_metric_families(metrics.text())}

    def sample(family, name, **labels):
        found = [s for s in families[family].samples if s.name == name and s.labels == labels]
        assert len(found) == 1, (family, name, labels, families[family].samples)
        return found[0].value

    assert {f.type for f in families.values()} <= {"counter", "gauge", "summary"}
    assert not [f.name for f in families.values() if f.type == "unknown"]
    labelled_unused = {"felix_nft_refreshes"}  # a labelled family before its first use
    for family in families.values():
        assert family.samples or family.name in labelled_unused, family.name
        assert all(s.name.startswith(family.name) for s in family.samples), family.name
    assert families["felix_resyncs_started"].type == "counter"
    assert sample("felix_resyncs_started", "felix_resyncs_started_total") == 1
    assert sample("felix_int_dataplane_messages", "felix_int_dataplane_messages_total",
                  type="InSync") == 1
    assert sample("felix_calc_graph_updates_processed",
                  "felix_calc_graph_updates_processed_total", type="new") == 3
    assert sample("felix_calc_graph_output_events", "felix_calc_graph_output_events_total") == 7
    assert families["felix_int_dataplane_apply_time_seconds"].type == "summary"
    assert sample("felix_int_dataplane_apply_time_seconds",
                  "felix_int_dataplane_apply_time_seconds_count") == 1
    assert sample("felix_int_dataplane_apply_time_seconds",
                  "felix_int_dataplane_apply_time_seconds_sum") == 0.5
    for name, value in (("felix_cluster_num_workload_endpoints", 3), ("felix_resync_state", 3),
                        ("felix_active_local_selectors", 4), ("felix_cluster_num_policies", 0),
                        ("felix_cluster_num_tiers", 0), ("felix_ipsets_total", 0),
                        ("felix_label_index_num_endpoints", 0)):
        assert families[name].type == "gauge" and sample(name, name) == value, name
    assert sample("process_open_fds", "process_open_fds") > 0
    assert Metrics().registry is not metrics.registry  # no shared global state


def test_hosts_are_counted_as_calicos_stats_collector_counts_them():
    """A Node, a host's own FelixConfiguration and each endpoint's node name a host."""
    from types import SimpleNamespace

    from calico.felix.metrics import host_of

    endpoint = SimpleNamespace(spec=SimpleNamespace(node="h2"))
    assert host_of("nodes", "h1", object()) == "h1"
    assert host_of("felixconfigurations", "node.h3", object()) == "h3"
    assert host_of("felixconfigurations", "default", object()) is None
    assert host_of("workloadendpoints", "ns/h2-k8s-p-eth0", endpoint) == "h2"
    assert host_of("hostendpoints", "h2-eth0", endpoint) == "h2"
    assert host_of("nodes", "h1", None) is None  # a deletion
    assert host_of("globalnetworkpolicies", "p", endpoint) is None
