"""Felix's Prometheus metrics: Calico Felix's metric names and help texts, in prometheus_client's
own types, in a registry created per Metrics object (never prometheus_client's global one, and
nothing registered at import).

Every family is exposed as prometheus_client writes its type, so any Prometheus text parser
reads back each sample with its type and value: a counter `felix_resyncs_started` is the
family of that name with the sample `felix_resyncs_started_total` (and `_created`). Calico's
Go client writes the sample without `_total`; see the README.

What flows in: the daemon sets gauges after each dataplane apply and increments counters as
it works; `text()` is what a scrape of prometheusMetricsHost:prometheusMetricsPort returns.

Families (Calico's names; `*` marks those with labels):
  summaries  felix_int_dataplane_apply_time_seconds, felix_calc_graph_update_time_seconds,
             felix_int_dataplane_msg_batch_size, felix_route_table_list_seconds
  counters   felix_resyncs_started, felix_int_dataplane_failures,
             felix_int_dataplane_messages{type}*, felix_nft_refreshes{kind}* (ours),
             felix_calc_graph_updates_processed{type}*, felix_calc_graph_output_events
  gauges     felix_resync_state (1 waiting for the datastore, 2 resyncing, 3 in sync),
             felix_cluster_num_{workload_endpoints,host_endpoints,hosts,policies,profiles,tiers},
             felix_active_local_{endpoints,policies,selectors}, felix_ipsets_calico,
             felix_ipsets_total, felix_label_index_num_endpoints
  process    process_* (CPU, memory, open file descriptors, start time)
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

RESYNC_STATE = {"wait-for-datastore": 1, "resync": 2, "in-sync": 3}

_SUMMARIES = {
    "apply_time": ("felix_int_dataplane_apply_time_seconds",
                   "Time in seconds that it took to apply a dataplane update."),
    "calc_time": ("felix_calc_graph_update_time_seconds",
                  "Seconds to update the calculation graph for each datastore OnUpdate call."),
    "batch_size": ("felix_int_dataplane_msg_batch_size",
                   "Number of messages processed in each batch."),
    "route_list_time": ("felix_route_table_list_seconds",
                        "Time taken to list all the interfaces during a resync."),
}
_GAUGES = {
    "resync_state": ("felix_resync_state", "Current datastore state."),
    "cluster_endpoints": ("felix_cluster_num_workload_endpoints",
                          "Total number of workload endpoints cluster-wide."),
    "cluster_host_endpoints": ("felix_cluster_num_host_endpoints",
                               "Total number of host endpoints cluster-wide."),
    "cluster_hosts": ("felix_cluster_num_hosts", "Total number of Calico hosts in the cluster."),
    "cluster_policies": ("felix_cluster_num_policies",
                         "Total number of policies in the cluster."),
    "cluster_profiles": ("felix_cluster_num_profiles",
                         "Total number of profiles in the cluster."),
    "cluster_tiers": ("felix_cluster_num_tiers", "Total number of Calico tiers in the cluster."),
    "local_endpoints": ("felix_active_local_endpoints",
                        "Number of active endpoints on this host."),
    "local_policies": ("felix_active_local_policies", "Number of active policies on this host."),
    "local_selectors": ("felix_active_local_selectors",
                        "Number of active selectors on this host."),
    "local_ipsets": ("felix_ipsets_calico", "Number of active Calico IP sets."),
    "total_ipsets": ("felix_ipsets_total", "Total number of active IP sets."),
    "label_index_endpoints": ("felix_label_index_num_endpoints",
                              "Total number of endpoints and similar objects in the index."),
}
_COUNTERS = {
    "felix_resyncs_started": ("Number of times Felix has started resyncing with the "
                              "datastore.", ()),
    "felix_int_dataplane_failures": ("Number of times dataplane updates failed and will be "
                                     "retried.", ()),
    "felix_int_dataplane_messages": ("Number of dataplane messages by type.", ("type",)),
    "felix_nft_refreshes": ("Number of periodic dataplane read-backs.", ("kind",)),
    "felix_calc_graph_updates_processed": ("Number of datastore updates processed by the "
                                           "calculation graph.", ("type",)),
    "felix_calc_graph_output_events": ("Number of events emitted by the calculation graph.",
                                       ()),
}


class Metrics:
    """Felix's metrics; attributes named as in `_SUMMARIES` / `_GAUGES`, counters by their
    Calico name through `counters`."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, Summary

        self.registry = CollectorRegistry()
        for attr, (name, doc) in _SUMMARIES.items():
            setattr(self, attr, Summary(name, doc, registry=self.registry))
        for attr, (name, doc) in _GAUGES.items():
            setattr(self, attr, Gauge(name, doc, registry=self.registry))
        self.resync_state.set(RESYNC_STATE["wait-for-datastore"])
        self.counters = Counters(self.registry)
        ProcessCollector(registry=self.registry)
        self._server: Any = None

    def start_server(self, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        result = start_http_server(port, addr=host or "localhost", registry=self.registry)
        self._server = result[0] if isinstance(result, tuple) else None
        log.info("Prometheus metrics on %s:%d", host or "localhost", port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


class Counters:
    """Felix's counters by Calico name: `inc(name, amount, **labels)`, `value(name, **labels)`."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter

        self._counters = {name: Counter(name, doc, labels, registry=registry)
                          for name, (doc, labels) in _COUNTERS.items()}

    def _child(self, name: str, labels: dict[str, str]) -> Any:
        counter = self._counters[name]
        return counter.labels(**labels) if labels else counter

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._child(name, labels).inc(amount)

    def value(self, name: str, **labels: str) -> float:
        return self._child(name, labels)._value.get()


class ClusterCounts:
    """Cluster-wide counts for the felix_cluster_* gauges, fed every raw resource update:
    the keys of each kind (by its plural) and the host each key speaks of."""

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = {}
        self._host_of_key: dict[str, str] = {}

    def observe(self, key: str, plural: str, rest: str, value: Any) -> str:
        """Record one update; returns the change as Calico's metrics name it: new, update
        or delete."""
        keys = self._keys.setdefault(plural, set())
        change = "delete" if value is None else "update" if key in keys else "new"
        (keys.add if value is not None else keys.discard)(key)
        host = host_of(plural, rest, value)
        if host:
            self._host_of_key[key] = host
        else:
            self._host_of_key.pop(key, None)
        return change

    def count(self, *plurals: str) -> int:
        """How many resources of these kinds exist."""
        return sum(len(self._keys.get(p, ())) for p in plurals)

    def hosts(self) -> int:
        """How many distinct hosts the resources speak of."""
        return len(set(self._host_of_key.values()))


def host_of(plural: str, rest: str, value: Any) -> str | None:
    """The host a resource speaks of, as Calico's stats collector counts hosts: a Node, a
    host's own FelixConfiguration (node.<host>), and the node of each workload or host
    endpoint; None for other kinds and deletions."""
    if value is None:
        return None
    if plural == "nodes":
        return rest
    if plural == "felixconfigurations":
        return rest[len("node."):] if rest.startswith("node.") else None
    if plural in ("workloadendpoints", "hostendpoints"):
        return getattr(getattr(value, "spec", None), "node", None) or None
    return None
