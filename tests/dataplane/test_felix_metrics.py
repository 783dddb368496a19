"""The real calico-felix's Prometheus endpoint (issue #21 item 12): a scrape of
prometheusMetricsPort, read by prometheus_client's own text parser, gives every family with
its type (a counter's sample is `<name>_total`) and the values of this host's state: the
cluster's workload endpoints, policies and tiers, the local selectors, the resync state, the
dataplane's applies and the process figures."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.dataplane.test_felix_harness import ALLOW_ALL, FelixHost, resource, wait_for

PORT = "9091"


@pytest.fixture
def felix(netns, tmp_path):
    host = FelixHost(netns, tmp_path, FELIX_PROMETHEUSMETRICSENABLED="true",
                     FELIX_PROMETHEUSMETRICSPORT=PORT)
    host.client.create(ALLOW_ALL)
    with host.running():
        yield host


def scrape(felix) -> dict:
    out = felix.host.run("curl", "-s", "--max-time", "2", f"http://localhost:{PORT}/metrics",
                         check=False).stdout
    return {f.name: f for f in text_string_to_metric_families(out)}


def value(families: dict, family: str, sample: str | None = None, **labels) -> float | None:
    if family not in families:
        return None
    found = [s.value for s in families[family].samples
             if s.name == (sample or family) and s.labels == labels]
    return found[0] if len(found) == 1 else None


def test_a_scrape_reads_back_with_calicos_names_types_and_this_hosts_state(felix):
    felix.add_workload(1)
    felix.add_workload(2, labels={"app": "db"})
    felix.client.create(resource("Tier", "security", {"order": 100}))
    felix.client.create(resource("GlobalNetworkPolicy", "security.db", {
        "tier": "security", "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Pass", "source": {"selector": "has(app)"}}]}))
    felix.wait_programmed(1)
    felix.wait_programmed(2)

    def counted():
        families = scrape(felix)
        return (value(families, "felix_cluster_num_policies") == 1
                and value(families, "felix_cluster_num_tiers") == 1
                and value(families, "felix_cluster_num_workload_endpoints") == 2
                and value(families, "felix_cluster_num_hosts") == 1)  # no Node: its endpoints
    wait_for(counted, 15, "the policy, tier and endpoints counted")
    families = scrape(felix)
    assert not [f.name for f in families.values() if f.type == "unknown"]
    for family in families.values():
        assert all(s.name.startswith(family.name) for s in family.samples), family.name
    assert families["felix_resyncs_started"].type == "counter"
    assert value(families, "felix_resyncs_started", "felix_resyncs_started_total") == 1
    assert value(families, "felix_resync_state") == 3  # in sync
    assert value(families, "felix_calc_graph_updates_processed",
                 "felix_calc_graph_updates_processed_total", type="new") >= 5
    assert value(families, "felix_calc_graph_output_events",
                 "felix_calc_graph_output_events_total") > 0
    assert families["felix_int_dataplane_apply_time_seconds"].type == "summary"
    assert value(families, "felix_int_dataplane_apply_time_seconds",
                 "felix_int_dataplane_apply_time_seconds_count") >= 1
    assert value(families, "felix_active_local_endpoints") == 2
    # As Calico's rule scanner counts them: selectors of active rules (has(app)), not the
    # policy's own selector.
    assert value(families, "felix_active_local_selectors") == 1
    for gauge in ("felix_ipsets_total",
                  "felix_label_index_num_endpoints", "felix_active_local_policies"):
        assert families[gauge].type == "gauge" and value(families, gauge) >= 1, gauge
    assert value(families, "process_open_fds") > 0
    assert value(families, "process_resident_memory_bytes") > 0
