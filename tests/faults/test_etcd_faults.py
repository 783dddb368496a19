"""Datastore faults on real etcd: the leader killed under churn (three members), and the whole
datastore gone for a while (one member).

The scenarios live in scenarios.py (benchmarks/faults/report.py runs them at full length);
here they run short — OUTAGE_S instead of the issue's 60 s — and we assert on their figures.
"""

from __future__ import annotations

import logging

from tests.faults.conftest import FIGURES
from tests.faults.scenarios import leader_kill_under_churn, outage_and_resync
from tests.fixtures.etcd import EtcdServer

OUTAGE_S = 15.0
CONVERGE_S = 10.0


def test_leader_kill_under_churn_loses_and_duplicates_nothing(etcd_cluster):
    fig = leader_kill_under_churn(etcd_cluster, writers=4, keys=25, before=1.5, after=3.0)
    print("\n".join(fig.lines()))
    FIGURES.update({f"leader kill: {k}": v for k, v in vars(fig).items()})
    assert fig.writes_acked > 100, "the churn did not run"
    assert fig.lost == 0 and fig.duplicated == 0 and fig.out_of_order == 0
    assert fig.missing_final == 0, "an acknowledged write is not the final state"
    assert fig.view_equals_store
    assert fig.resume_s is not None and fig.resume_s < CONVERGE_S
    assert fig.settle_s is not None and fig.settle_s < CONVERGE_S
    assert fig.max_delivery_lag < CONVERGE_S and fig.max_event_gap < CONVERGE_S
    # etcd needs ~0.5 s to elect (election timeout 500 ms), then clients fail over.
    assert fig.max_write_latency < 6.0


def test_whole_datastore_outage_keeps_state_then_resyncs_only_changes(caplog):
    server = EtcdServer().start()
    try:
        with caplog.at_level(logging.WARNING, logger="calico.datastore"):
            fig = outage_and_resync(server, outage=OUTAGE_S, objects=100, changes=10,
                                    on_warning=lambda: caplog.text)
    finally:
        server.stop()
    print("\n".join(fig.lines()))
    FIGURES.update({f"outage {OUTAGE_S:g}s: {k}": v for k, v in vars(fig).items()})
    assert fig.outage_reported, "the syncer did not report the outage"
    assert fig.updates_during_outage == 0 and fig.deletions_during_outage == 0
    assert fig.view_kept
    assert fig.resync_s is not None and fig.resync_s < CONVERGE_S
    assert fig.updates_after == fig.changed_after == 30
    assert fig.unchanged_resent == 0

