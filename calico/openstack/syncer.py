"""The one pattern for "make the datastore match Neutron": a resource syncer.

Neutron is the source of truth. A syncer owns the datastore keys of one kind of record (the
`openstack` WorkloadEndpoints, the `ossg.default.*` NetworkPolicies, the DHCP subnet records)
and knows, from a `Snapshot` of Neutron, which records there should be. `resync(snapshot)`
lists what is stored, compares, and repairs both ways: it creates what is missing, rewrites
what differs (including values that are not valid records at all) and deletes what Neutron
no longer has. `sync_one(key, wanted)` does the same for one record, for the driver's
event handlers.

Every write is compare-and-swap on the key's mod revision (create = "must not exist",
update/delete = "still at the revision I compared"), so a resync racing with an event
handler, or with another Neutron server that still believes it is the master, never
overwrites a newer write blindly: the loser re-reads and compares again. A record that
keeps conflicting is left for the next resync.

Subclasses say which keys they own (`prefix`, `owns`), what Neutron wants (`wanted`), how a
wanted record is written (`render`, given what is stored now, so metadata like a resource's
uid survives) and whether a stored value already says what is wanted (`matches`). Side
effects of a record's lifetime (IPAM for endpoints) go in `on_written` / `on_deleted`.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from calico.datastore.kv import KV, Backend, KeyExists, KeyNotFound, RevisionConflict

from .endpoints import Project

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 3


@dataclass
class Snapshot:
    """What Neutron holds, as plain dicts keyed by id (the driver reads it from Neutron's
    plugin; tests build it by hand). `security_groups` carry their rules in
    `security_group_rules`, as Neutron's API returns them."""

    ports: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    security_groups: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    subnets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    projects: Mapping[str, Project] = field(default_factory=dict)  # by project id
    floating_ips: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by id
    networks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by id


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.created) + len(self.updated) + len(self.deleted)


class ResourceSyncer(abc.ABC):
    """Base of the per-kind syncers. `W` (the wanted record) is whatever the subclass needs to
    render and compare; the base only moves keys and revisions."""

    kind = "record"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # ---- what a subclass provides ---------------------------------------------------------

    @abc.abstractmethod
    def prefix(self) -> str:
        """The datastore prefix under which this syncer's keys live."""

    def owns(self, key: str) -> bool:
        """Whether a stored key under `prefix()` is this syncer's to repair or delete."""
        return True

    @abc.abstractmethod
    def wanted(self, snapshot: Snapshot) -> dict[str, Any]:
        """key -> wanted record, for everything Neutron says should exist."""

    @abc.abstractmethod
    def render(self, wanted: Any, existing: KV | None) -> str:
        """The text to store for `wanted`, given the value stored now (None: no key)."""

    @abc.abstractmethod
    def matches(self, existing: KV, wanted: Any) -> bool:
        """Whether the stored value already says what `wanted` says."""

    def on_written(self, key: str, wanted: Any) -> None:  # noqa: B027
        """After a record was created or rewritten (and after a resync found it right)."""

    def on_deleted(self, key: str, existing: KV) -> None:  # noqa: B027
        """After a stale record was deleted."""

    # ---- the algorithm ---------------------------------------------------------------------

    def resync(self, snapshot: Snapshot) -> SyncReport:
        """Compare everything and repair. Datastore errors other than CAS conflicts
        propagate (the caller retries the whole resync later)."""
        report = SyncReport()
        want = self.wanted(snapshot)
        stored, _ = self.backend.list(self.prefix())
        have = {kv.key: kv for kv in stored if self.owns(kv.key)}
        for key in sorted(set(want) | set(have)):
            self._reconcile(key, want.get(key), have.get(key), report)
        if report.changes or report.conflicts:
            log.info("%s resync: created %d, updated %d, deleted %d, conflicts %d", self.kind,
                     len(report.created), len(report.updated), len(report.deleted),
                     len(report.conflicts))
        return report

    def sync_one(self, key: str, wanted: Any | None) -> SyncReport:
        """Make one key match `wanted` (None: the key should not exist)."""
        report = SyncReport()
        self._reconcile(key, wanted, self.backend.get(key), report)
        return report

    def _reconcile(self, key: str, wanted: Any | None, existing: KV | None,
                   report: SyncReport) -> None:
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                existing = self.backend.get(key)
            try:
                self._apply(key, wanted, existing, report)
                return
            except (KeyExists, KeyNotFound, RevisionConflict) as err:
                log.debug("%s %s: %s; re-reading", self.kind, key, err)
        log.warning("%s %s kept changing under us; leaving it to the next resync",
                    self.kind, key)
        report.conflicts.append(key)

    def _apply(self, key: str, wanted: Any | None, existing: KV | None,
               report: SyncReport) -> None:
        if wanted is None:
            if existing is not None:
                self.backend.delete(key, mod_revision=existing.mod_revision)
                report.deleted.append(key)
                self.on_deleted(key, existing)
            return
        if existing is None:
            self.backend.create(key, self.render(wanted, None))
            report.created.append(key)
        elif not self.matches(existing, wanted):
            self.backend.update(key, self.render(wanted, existing), existing.mod_revision)
            report.updated.append(key)
        self.on_written(key, wanted)
