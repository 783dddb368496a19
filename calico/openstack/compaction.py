"""Periodic etcd compaction by the Neutron driver's master, as networking-calico does it.

Without compaction etcd keeps every revision of every key and its database grows without
bound. With `etcd_compaction_period_mins` > 0 (default 60) the master calls `check()` about
every minute; a compaction is considered at most once per period and keeps the history of
the whole previous period and at least `etcd_compaction_min_revisions` (default 1000).

State lives in the datastore under networking-calico's keys, so either driver can take over
from the other:
- `/calico/compaction/v1/trigger`: on a lease of one period: while it exists, nothing is due;
- `/calico/compaction/v1/last`: the revision of the last compaction; the key's own mod
  revision is the datastore revision at the last check (one period ago).

When the trigger has expired: with no `last` yet, record it (nothing to compact: the history
of one period is not known yet); else compact at `current - max(min_revisions,
current - last_check)` if that is past the last compaction, and record it. A compaction that
the datastore refuses (someone else compacted further) counts as done at the current
revision. Errors are logged; the next check tries again.
"""

from __future__ import annotations

import logging
import os

from calico.datastore.kv import Backend, DatastoreError

log = logging.getLogger(__name__)

PREFIX = "/calico/compaction/v1/"
TRIGGER_KEY = PREFIX + "trigger"
LAST_KEY = PREFIX + "last"


class Compactor:
    """The master's compaction check (see above); `check()` returns the revision it
    compacted at, or None."""

    def __init__(self, backend: Backend, period_mins: int, min_revisions: int = 1000) -> None:
        self.backend, self.period_mins, self.min_revisions = backend, period_mins, min_revisions
        self.compactions = 0

    @property
    def enabled(self) -> bool:
        return self.period_mins > 0

    def check(self) -> int | None:
        if not self.enabled:
            return None
        try:
            return self._check()
        except DatastoreError as err:
            log.warning("etcd compaction check failed (%s); trying again later", err)
            return None

    def _check(self) -> int | None:
        if self.backend.get(TRIGGER_KEY) is not None:
            return None  # less than a period since the last check
        last = self.backend.get(LAST_KEY)
        try:
            last_compaction = int(last.value) if last is not None else None
        except ValueError:
            log.warning("%s holds %r, not a revision; starting over", LAST_KEY, last.value)
            last_compaction = None
        if last is None or last_compaction is None:
            self._record(0)
            return None
        current = self.backend.revision()
        if last_compaction > current:  # a restored backup: revisions went back
            self._record(0)
            return None
        keep = max(self.min_revisions, current - last.mod_revision)
        at = current - keep
        if current <= self.min_revisions or at <= last_compaction:
            self._record(last_compaction)
            return None
        try:
            self.backend.compact(at)
        except DatastoreError as err:
            log.info("compaction at %d refused (%s): someone else compacts; counting it done",
                     at, err)
            self._record(current)
            return None
        log.info("compacted the datastore's history before revision %d (keeping %d)", at, keep)
        self.compactions += 1
        self._record(at)
        return at

    def _record(self, revision: int) -> None:
        self.backend.put(LAST_KEY, str(revision))
        lease = self.backend.grant_lease(max(1, self.period_mins * 60))
        self.backend.put(TRIGGER_KEY, str(os.getpid()), lease=lease)
