"""Fault figures, run to run: bad inputs tried and rejected, writes lost or duplicated when the
etcd leader is killed under churn, the write stall, convergence after the election, and the
resync after a whole-datastore outage. The same scenarios as tests/faults, at full length.
Prints figures; not a test (nothing here fails on a threshold).

    .venv/bin/python -m benchmarks.faults.report [--inputs 20000] [--runs 3] [--outage 60]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from hypothesis import HealthCheck, given, settings

from calico import api
from tests.faults.mutations import mutants
from tests.faults.scenarios import leader_kill_under_churn, outage_and_resync
from tests.fixtures.etcd import EtcdCluster, EtcdServer


def bad_inputs(n: int) -> dict[str, int]:
    counts = {"tried": 0, "rejected": 0, "accepted": 0, "other errors": 0}

    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutants())
    def run(mutant):
        counts["tried"] += 1
        try:
            api.validate(mutant.doc)
            counts["accepted"] += 1
        except api.ValidationError:
            counts["rejected"] += 1
        except Exception:  # noqa: BLE001  (a figure: anything but a clean rejection)
            counts["other errors"] += 1

    run()
    return counts


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(record.getMessage())


def summary(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "n/a"
    missing = f" ({len(values) - len(got)} did not converge)" if len(got) < len(values) else ""
    return (f"median {statistics.median(got):.2f} s, max {max(got):.2f} s "
            f"over {len(got)} runs{missing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=20_000, help="generated bad resources")
    parser.add_argument("--runs", type=int, default=3, help="leader-kill runs")
    parser.add_argument("--churn", type=float, default=10.0,
                        help="seconds of churn after the leader is killed")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds etcd is down")
    args = parser.parse_args()

    t = time.monotonic()
    counts = bad_inputs(args.inputs)
    print(f"bad input ({time.monotonic() - t:.0f} s): " +
          ", ".join(f"{k} {v}" for k, v in counts.items()))

    kills = []
    for i in range(args.runs):
        cluster = EtcdCluster(3).start()
        try:
            fig = leader_kill_under_churn(cluster, writers=args.writers, keys=50, before=2.0,
                                          after=args.churn, settle_timeout=30.0)
        finally:
            cluster.stop()
        kills.append(fig)
        print(f"leader kill run {i + 1}: acked writes {fig.writes_acked} "
              f"(+{fig.deletes_acked} deletes), events {fig.events}, lost {fig.lost}, "
              f"duplicated {fig.duplicated}, out of order {fig.out_of_order}, final state "
              f"wrong {fig.missing_final}, retries {fig.write_retries}, max write latency "
              f"{fig.max_write_latency:.2f} s, election {fig.election_s:.2f} s, watch resumed "
              f"{_s(fig.resume_s)}, longest delivery pause {fig.max_event_gap:.2f} s, "
              f"longest ack-to-delivery {fig.max_delivery_lag:.2f} s, settled "
              f"{_s(fig.settle_s)} after the writers stopped")
    print("leader kill, write stall (max write latency): "
          + summary([f.max_write_latency for f in kills]))
    print("leader kill, convergence after the new leader (first post-election write "
          "delivered): " + summary([f.resume_s for f in kills]))
    print("leader kill, longest pause in the syncer's deliveries: "
          + summary([f.max_event_gap for f in kills]))
    print("leader kill, longest ack-to-delivery: "
          + summary([f.max_delivery_lag for f in kills]))
    print(f"leader kill, writes lost / duplicated in total: {sum(f.lost for f in kills)} / "
          f"{sum(f.duplicated for f in kills)} of {sum(f.writes_acked for f in kills)}")

    handler = Warnings()
    logging.getLogger("calico.datastore").addHandler(handler)
    server = EtcdServer().start()
    try:
        out = outage_and_resync(server, outage=args.outage, objects=500, changes=25,
                                on_warning=lambda: "\n".join(handler.text))
    finally:
        server.stop()
        logging.getLogger("calico.datastore").removeHandler(handler)
    print(f"outage {args.outage:g} s: reported {out.outage_reported}, updates during it "
          f"{out.updates_during_outage} (deletions {out.deletions_during_outage}), state kept "
          f"{out.view_kept}; after it: {out.changed_after} keys changed, "
          f"{out.updates_after} updates delivered, {out.unchanged_resent} unchanged re-sent, "
          f"resync {_s(out.resync_s)} after etcd was back")


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    main()
