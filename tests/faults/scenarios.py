"""Datastore fault scenarios on real etcd, shared by the tests (short) and
`benchmarks/faults/report.py` (full length). Each returns its figures; the caller asserts.

`leader_kill_under_churn`: writer threads, each with its own client and its own keys, apply
and delete GlobalNetworkPolicies and WorkloadEndpoints through `ResourceClient` while a
`Syncer` consumes; the leader is killed mid-churn. A write whose outcome is unknown (timeout)
is retried until acknowledged, so each key's last acknowledged write is its final state.

`outage_and_resync`: a one-member etcd is killed for `outage` seconds under a synced consumer,
then started again and changed right away; the consumer must keep its state through the
outage and then receive exactly the changes.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from calico import api
from calico.datastore.client import ResourceClient, kind_prefix, storage_key
from calico.datastore.errors import ResourceNotFound
from calico.datastore.etcd import EtcdBackend
from calico.datastore.kv import Backend, DatastoreError
from calico.datastore.syncer import Syncer, SyncStatus, SyncUpdate
from tests.fixtures.etcd import EtcdCluster, EtcdServer

V3 = "projectcalico.org/v3"
KINDS = ("GlobalNetworkPolicy", "WorkloadEndpoint")


def policy(name: str, order: int) -> dict[str, Any]:
    return {"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
            "spec": {"order": order, "selector": f"app == '{name}'",
                     "ingress": [{"action": "Allow", "protocol": "TCP",
                                  "destination": {"ports": [1 + order % 65000]}}]}}


def endpoint(pod: str, n: int, version: int = 0) -> dict[str, Any]:
    return {"apiVersion": V3, "kind": "WorkloadEndpoint",
            "metadata": {"name": f"node1-k8s-{pod}-eth0", "namespace": "churn",
                         "labels": {"app": pod, "version": str(version)}},
            "spec": {"orchestrator": "k8s", "node": "node1", "pod": pod, "endpoint": "eth0",
                     "interfaceName": f"cali{n % 10**11:011d}",
                     "ipNetworks": [f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}/32"]}}


class View:
    """A syncer consumer: its current view (key -> mod revision), every update it got, and
    its statuses, with a condition to wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.view: dict[str, int] = {}
        self.updates: list[tuple[float, SyncUpdate]] = []
        self.statuses: list[SyncStatus] = []

    def on_status(self, status: SyncStatus) -> None:
        with self.cond:
            self.statuses.append(status)
            self.cond.notify_all()

    def on_updates(self, updates: list[SyncUpdate]) -> None:
        now = time.monotonic()
        with self.cond:
            for up in updates:
                self.updates.append((now, up))
                if up.value is None:
                    self.view.pop(up.key, None)
                else:
                    self.view[up.key] = up.revision
            self.cond.notify_all()

    def wait(self, predicate, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout)

    def snapshot(self) -> dict[str, int]:
        with self.cond:
            return dict(self.view)


def store_view(backend: Backend) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in KINDS:
        kvs, _ = backend.list(kind_prefix(kind))
        out.update({kv.key: kv.mod_revision for kv in kvs})
    return out


def wait_until_equal(view: View, backend: Backend, timeout: float) -> float | None:
    """Seconds until the consumer's view equals the store (None: not within `timeout`)."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            want = store_view(backend)
        except DatastoreError:
            time.sleep(0.05)
            continue
        if view.wait(lambda v, want=want: v.view == want,
                     max(0.0, min(0.5, deadline - time.monotonic()))):
            return time.monotonic() - started
    return None


# ---- leader kill under churn -----------------------------------------------------------------


@dataclass
class Writer:
    index: int
    client: ResourceClient
    keys: int
    acked: list[tuple[str, int, float]] = field(default_factory=list)  # key, revision, when
    last: dict[str, int | None] = field(default_factory=dict)  # key -> revision or None
    retries: int = 0
    worst: float = 0.0
    worst_at: float = 0.0

    def run(self, stop: threading.Event, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        while not stop.is_set():
            j = rng.randrange(self.keys)
            if rng.random() < 0.5:
                doc = policy(f"churn-w{self.index}-p{j}", n)
            else:
                doc = endpoint(f"w{self.index}e{j}", self.index * 10_000 + j, n)
            n += 1
            delete = rng.random() < 0.15
            started = time.monotonic()
            self._until_acked(doc, delete)
            took = time.monotonic() - started
            if took > self.worst:
                self.worst, self.worst_at = took, started

    def _until_acked(self, doc: dict[str, Any], delete: bool) -> None:
        meta = doc["metadata"]
        while True:
            try:
                if delete:
                    try:
                        self.client.delete(doc["kind"], meta["name"], meta.get("namespace"))
                    except ResourceNotFound:
                        pass  # never written, or a retried delete that had happened
                    key = storage_key(api.validate(doc))
                    self.last[key] = None
                else:
                    res = self.client.apply(doc)
                    rev = int(res.metadata.resourceVersion or 0)
                    key = storage_key(res)
                    self.acked.append((key, rev, time.monotonic()))
                    self.last[key] = rev
                return
            except DatastoreError:
                self.retries += 1
                time.sleep(0.05)


@dataclass
class ChurnFigures:
    writes_acked: int = 0
    deletes_acked: int = 0
    write_retries: int = 0
    events: int = 0
    lost: int = 0  # acknowledged writes the syncer never delivered
    duplicated: int = 0  # (key, revision) delivered more than once
    out_of_order: int = 0  # a key's revisions not increasing
    missing_final: int = 0  # keys whose final store state is not their last acked write
    max_write_latency: float = 0.0
    election_s: float = 0.0  # leader killed -> a new leader answers
    resume_s: float | None = None  # new leader seen -> first post-election write delivered
    max_delivery_lag: float = 0.0  # the longest a write waited between its ack and delivery
    max_event_gap: float = 0.0  # the longest pause in deliveries while writers ran
    settle_s: float | None = None  # writers stopped -> syncer view equals the store
    view_equals_store: bool = False

    def lines(self) -> list[str]:
        return [f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}"
                for k, v in vars(self).items()]


def leader_kill_under_churn(cluster: EtcdCluster, *, writers: int = 4, keys: int = 25,
                            before: float = 1.5, after: float = 3.0,
                            settle_timeout: float = 10.0) -> ChurnFigures:
    leader = cluster.leader()
    # Every client starts on the leader, so the kill hits the writers and the watch.
    endpoints = [leader.endpoint] + [m.endpoint for m in cluster.members if m is not leader]
    view = View()
    sync_backend = EtcdBackend(endpoints)
    syncer = Syncer(sync_backend, KINDS, view, retry_delay=0.2)
    workers = [Writer(i, ResourceClient(EtcdBackend(endpoints)), keys) for i in range(writers)]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop, i), daemon=True)
               for i, w in enumerate(workers)]
    figures = ChurnFigures()
    try:
        syncer.start()
        assert view.wait(lambda v: SyncStatus.IN_SYNC in v.statuses, 10), "never in sync"
        for t in threads:
            t.start()
        time.sleep(before)
        killed_at = time.monotonic()
        leader.kill()
        while True:
            try:
                cluster.leader()
                break
            except RuntimeError:
                time.sleep(0.02)
        back_at = time.monotonic()
        figures.election_s = back_at - killed_at
        time.sleep(after)
        stop.set()
        for t in threads:
            t.join(30)
        stopped_at = time.monotonic()
        check = EtcdBackend(endpoints[1:])
        figures.settle_s = wait_until_equal(view, check, settle_timeout)
        figures.view_equals_store = figures.settle_s is not None
        settled_at = time.monotonic()
        _count(figures, workers, view, check, back_at, stopped_at)
        if figures.settle_s is not None:
            figures.settle_s = settled_at - stopped_at
        check.close()
    finally:
        stop.set()
        syncer.stop()
        sync_backend.close()
        for w in workers:
            w.client.backend.close()
    return figures


def _count(figures: ChurnFigures, workers: list[Writer], view: View, store: Backend,
           back_at: float, stopped_at: float) -> None:
    with view.cond:
        updates = list(view.updates)
    delivered = Counter((u.key, u.revision) for _, u in updates if u.value is not None)
    figures.events = len(updates)
    figures.duplicated = sum(n - 1 for n in delivered.values() if n > 1)
    last_rev: dict[str, int] = {}
    for _, u in updates:
        if u.value is not None:
            if u.revision <= last_rev.get(u.key, 0):
                figures.out_of_order += 1
            last_rev[u.key] = u.revision
    final = store_view(store)
    seen_at: dict[tuple[str, int], float] = {}
    for t, u in updates:
        seen_at.setdefault((u.key, u.revision), t)
    first_after: float | None = None
    for w in workers:
        figures.writes_acked += len({(key, rev) for key, rev, _ in w.acked})
        figures.deletes_acked += sum(1 for v in w.last.values() if v is None)
        figures.write_retries += w.retries
        figures.max_write_latency = max(figures.max_write_latency, w.worst)
        for key, rev, when in w.acked:
            if (key, rev) not in delivered:
                figures.lost += 1
            else:
                seen = seen_at[(key, rev)]
                figures.max_delivery_lag = max(figures.max_delivery_lag, seen - when)
                if when >= back_at:
                    first_after = seen if first_after is None else min(first_after, seen)
        for key, rev in w.last.items():
            if final.get(key) != rev:
                figures.missing_final += 1
    figures.resume_s = None if first_after is None else max(0.0, first_after - back_at)
    times = sorted(t for t, _ in updates if t <= stopped_at)
    figures.max_event_gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


# ---- whole-datastore outage and resync ---------------------------------------------------------


@dataclass
class OutageFigures:
    outage_s: float = 0.0
    outage_reported: bool = False
    updates_during_outage: int = 0
    deletions_during_outage: int = 0
    view_kept: bool = False
    changed_after: int = 0  # keys changed right after etcd returned
    updates_after: int = 0  # updates the consumer got after etcd returned
    unchanged_resent: int = 0  # of those, for keys that had not changed
    resync_s: float | None = None  # etcd answering again -> consumer view equals the store

    def lines(self) -> list[str]:
        return [f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}"
                for k, v in vars(self).items()]


def outage_and_resync(server: EtcdServer, *, outage: float = 15.0, objects: int = 100,
                      changes: int = 10, on_warning=None) -> OutageFigures:
    """`on_warning()` -> the warnings logged so far (text), to see the outage reported."""
    figures = OutageFigures(outage_s=outage)
    backend = EtcdBackend([server.endpoint])
    client = ResourceClient(backend)
    for i in range(objects):
        client.apply(policy(f"out-p{i}", i))
        client.apply(endpoint(f"out{i}", i))
    view = View()
    sync_backend = EtcdBackend([server.endpoint])
    syncer = Syncer(sync_backend, KINDS, view)
    try:
        syncer.start()
        assert view.wait(lambda v: SyncStatus.IN_SYNC in v.statuses, 10), "never in sync"
        before = view.snapshot()
        assert before == store_view(backend)
        n_before = len(view.updates)
        server.kill()
        time.sleep(outage)
        with view.cond:
            during = [u for _, u in view.updates[n_before:]]
        figures.updates_during_outage = len(during)
        figures.deletions_during_outage = sum(1 for u in during if u.value is None)
        figures.view_kept = view.snapshot() == before
        figures.outage_reported = bool(on_warning and "etcd" in on_warning())
        server.start()
        back_at = time.monotonic()
        n_back = len(view.updates)
        changed = _change_some(client, objects, changes)
        figures.changed_after = len(changed)
        figures.resync_s = wait_until_equal(view, backend, 30.0)
        if figures.resync_s is not None:
            figures.resync_s = time.monotonic() - back_at
        time.sleep(0.3)  # anything late and extra would show now
        with view.cond:
            after = [u for _, u in view.updates[n_back:]]
        figures.updates_after = len(after)
        figures.unchanged_resent = sum(1 for u in after if u.key not in changed)
    finally:
        syncer.stop()
        sync_backend.close()
        backend.close()
    return figures


def _change_some(client: ResourceClient, objects: int, changes: int) -> set[str]:
    """Modify, delete and add a few resources right after etcd returns; their keys."""
    changed: set[str] = set()

    def retry(fn, *args):
        deadline = time.monotonic() + 30
        while True:
            try:
                return fn(*args)
            except ResourceNotFound:
                return None  # a retried delete whose first attempt had happened
            except DatastoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    for i in range(changes):
        res = retry(client.apply, policy(f"out-p{i}", 10_000 + i))
        changed.add(storage_key(res))
    for i in range(changes, 2 * changes):
        doc = endpoint(f"out{i}", i)
        retry(client.delete, "WorkloadEndpoint", doc["metadata"]["name"], "churn")
        changed.add(storage_key(api.validate(doc)))
    for i in range(changes):
        res = retry(client.apply, policy(f"out-new{i}", i))
        changed.add(storage_key(res))
    return changed
