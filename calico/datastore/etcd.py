"""The `etcdv3` backend: a real etcd 3.x cluster through its v3 JSON gateway.

We speak etcd's gRPC-gateway (POST /v3/kv/range, /v3/kv/txn, /v3/watch, ...; keys and values
base64, int64s as strings) with a small client of our own on the standard library's
`http.client`, because the things that matter in production are exactly the things a
generic client hides:

- **Short timeouts, retries, fail-over, auth and TLS** in `EtcdClient` (etcdclient.py).
- **Streaming watch.** Each watcher holds one POST /v3/watch stream on a background thread
  that reads one JSON message a line. When the stream breaks it reconnects (to any member)
  from the revision after the last event it delivered, so no event is lost or repeated; a
  `compact_revision` in a message becomes `Compacted`; no member for `unreachable_after`
  becomes `Unreachable`.

A write retried after a timeout may have been applied by its first attempt; a CAS write
(create, update, txn) then reports a conflict for what was its own change. Callers already
handle conflicts by re-reading, which converges; we do not guess by comparing values here,
since another writer may have stored the same value (IPAM, whose block values are unique per
write, recognises its own: see `IPAMStore.commit`).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from .etcdclient import NOT_FOUND, UNAUTHENTICATED, Endpoint, EtcdClient, EtcdError, error_of
from .kv import (
    KV,
    Backend,
    Compacted,
    Compare,
    DatastoreError,
    Delete,
    EventType,
    KeyExists,
    KeyNotFound,
    Put,
    RevisionConflict,
    Unreachable,
    Watcher,
    WatchEvent,
)
from .watchqueue import QueueWatcher

log = logging.getLogger(__name__)

LIST_PAGE = 5_000


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(data: str | None) -> str:
    return base64.b64decode(data).decode() if data else ""


def _prefix_end(prefix: str) -> str:
    """etcd's range_end for a prefix, as base64 (the last byte that can be incremented)."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return base64.b64encode(bytes(raw)).decode()
        raw.pop()
    return base64.b64encode(b"\0").decode()  # every key


def _kv(item: dict[str, Any]) -> KV:
    return KV(key=_unb64(item.get("key")), value=_unb64(item.get("value")),
              mod_revision=int(item.get("mod_revision", 0)),
              create_revision=int(item.get("create_revision", 0)),
              lease=int(item.get("lease", 0)))


def _map_error(err: EtcdError, revision: int = 0) -> DatastoreError:
    if "compacted" in str(err):
        return Compacted(revision, 0)
    if "future revision" in str(err):
        return DatastoreError(f"revision {revision} is in the future")
    return err


class EtcdBackend(Backend):
    """The `kv.Backend` contract on an etcd v3 cluster: thread-safe; each watcher reads its own
    stream on its own thread and resumes after the last event it delivered (none lost or
    repeated)."""

    def __init__(self, endpoints: Sequence[str], **options: Any) -> None:
        self.client = EtcdClient(endpoints, **options)

    # ---- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> KV | None:
        data = self.client.call("/v3/kv/range", {"key": _b64(key)})
        kvs = data.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def list(self, prefix: str, revision: int | None = None) -> tuple[list[KV], int]:
        start, end = _b64(prefix or "\0"), _prefix_end(prefix)
        out: list[KV] = []
        while True:
            body: dict[str, Any] = {"key": start, "range_end": end, "limit": LIST_PAGE}
            if revision:
                body["revision"] = revision
            try:
                data = self.client.call("/v3/kv/range", body)
            except EtcdError as err:
                raise _map_error(err, revision or 0) from None
            revision = revision or int(data["header"]["revision"])
            kvs = [_kv(item) for item in data.get("kvs") or []]
            out.extend(kvs)
            if not data.get("more") or not kvs:
                return out, revision
            start = _b64(kvs[-1].key + "\0")

    def revision(self) -> int:
        data = self.client.call("/v3/kv/range", {"key": _b64("\0"), "count_only": True})
        return int(data["header"]["revision"])

    # ---- writes --------------------------------------------------------------------------

    def _txn(self, compares: list[dict], success: list[dict], failure: list[dict]
             ) -> tuple[bool, int, list[dict]]:
        try:
            data = self.client.call("/v3/kv/txn", {"compare": compares, "success": success,
                                                   "failure": failure})
        except EtcdError as err:
            if err.code == NOT_FOUND and "lease" in str(err):
                raise KeyNotFound("lease") from None
            raise
        return (bool(data.get("succeeded")), int(data["header"]["revision"]),
                data.get("responses") or [])

    @staticmethod
    def _put_op(key: str, value: str, lease: int) -> dict:
        op: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            op["lease"] = str(lease)
        return {"request_put": op}

    @staticmethod
    def _compare(key: str, mod_revision: int) -> dict:
        return {"key": _b64(key), "target": "MOD", "result": "EQUAL",
                "mod_revision": str(mod_revision)}

    @staticmethod
    def _current(responses: list[dict]) -> KV | None:
        kvs = (responses[0].get("response_range") or {}).get("kvs") if responses else None
        return _kv(kvs[0]) if kvs else None

    def create(self, key: str, value: str, lease: int = 0) -> int:
        ok, rev, resp = self._txn([self._compare(key, 0)], [self._put_op(key, value, lease)],
                                  [{"request_range": {"key": _b64(key)}}])
        if ok:
            return rev
        raise KeyExists(key)

    def update(self, key: str, value: str, mod_revision: int, lease: int = 0) -> int:
        ok, rev, resp = self._txn([self._compare(key, mod_revision)],
                                  [self._put_op(key, value, lease)],
                                  [{"request_range": {"key": _b64(key)}}])
        if ok:
            return rev
        cur = self._current(resp)
        if cur is None:
            raise KeyNotFound(key)
        raise RevisionConflict(key, mod_revision, cur.mod_revision)

    def put(self, key: str, value: str, lease: int = 0) -> int:
        ok, rev, _ = self._txn([], [self._put_op(key, value, lease)], [])
        return rev

    def delete(self, key: str, mod_revision: int | None = None) -> int:
        compares = [] if mod_revision is None else [self._compare(key, mod_revision)]
        ok, rev, resp = self._txn(
            compares + [{"key": _b64(key), "target": "CREATE", "result": "GREATER",
                         "create_revision": "0"}],
            [{"request_delete_range": {"key": _b64(key)}}],
            [{"request_range": {"key": _b64(key)}}])
        if ok:
            return rev
        cur = self._current(resp)
        if cur is None:
            raise KeyNotFound(key)
        raise RevisionConflict(key, mod_revision or 0, cur.mod_revision)

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> int | None:
        keys = [op.key for op in ops]
        if len(set(keys)) != len(keys):
            raise DatastoreError("a transaction may not write the same key twice")
        success = [self._put_op(o.key, o.value, o.lease) if isinstance(o, Put)
                   else {"request_delete_range": {"key": _b64(o.key)}} for o in ops]
        ok, rev, _ = self._txn([self._compare(c.key, c.mod_revision) for c in compares],
                               success, [])
        return rev if ok else None

    # ---- leases and compaction -----------------------------------------------------------

    def grant_lease(self, ttl: int) -> int:
        data = self.client.call("/v3/lease/grant", {"TTL": ttl})
        return int(data["ID"])

    def keepalive(self, lease: int) -> None:
        data = self.client.call("/v3/lease/keepalive", {"ID": str(lease)})
        if int((data.get("result") or {}).get("TTL", 0)) <= 0:
            raise KeyNotFound(f"lease {lease}")

    def revoke(self, lease: int) -> None:
        try:
            self.client.call("/v3/lease/revoke", {"ID": str(lease)})
        except EtcdError as err:
            if err.code == NOT_FOUND:
                raise KeyNotFound(f"lease {lease}") from None
            raise

    def compact(self, revision: int) -> None:
        try:
            self.client.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        except EtcdError as err:
            if "compacted" not in str(err):
                raise _map_error(err, revision) from None

    # ---- watches -------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> Watcher:
        watcher = QueueWatcher(prefix, start_revision)
        _WatchStream(self.client, watcher).start()
        return watcher

    def close(self) -> None:
        self.client.close()


class _WatchStream(threading.Thread):
    """Feeds one QueueWatcher from a POST /v3/watch stream, reconnecting as needed."""

    def __init__(self, client: EtcdClient, watcher: QueueWatcher) -> None:
        super().__init__(name=f"calico-etcd-watch {watcher.prefix}", daemon=True)
        self.client = client
        self.watcher = watcher
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._delivered = False
        watcher_close = watcher.close

        def close() -> None:
            watcher_close()
            self._interrupt()
        watcher.close = close  # type: ignore[method-assign]

    def _interrupt(self) -> None:
        """Wake the reader thread (from another thread): it sees EOF and cleans up."""
        with self._lock:
            conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _release(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def run(self) -> None:
        failing_since: float | None = None
        last_error = ""
        while not self.watcher.closed:
            ep = self.client.endpoint()
            try:
                if self._stream(ep):
                    return
                last_error = f"{ep.url}: the watch stream ended"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as err:
                last_error = f"{ep.url}: {err or type(err).__name__}"
            except EtcdError as err:
                if err.code == UNAUTHENTICATED:
                    ep.token = None
                last_error = f"{ep.url}: {err}"
            except DatastoreError as err:  # Compacted, or authentication failed
                self.watcher.fail(err)
                return
            finally:
                self._release()
            if self.watcher.closed:
                return
            if self._delivered:
                failing_since = None
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since >= self.client.unreachable_after:
                self.watcher.fail(Unreachable(f"etcd watch on {self.watcher.prefix!r} broke: "
                                              f"{last_error}"))
                return
            log.debug("etcd watch reconnecting after: %s", last_error)
            self.client.fail_over(ep)
            time.sleep(0.05 + random.random() * 0.1)

    def _stream(self, ep: Endpoint) -> bool:
        """Run one stream until it breaks (returns False) or the watcher closes (True)."""
        self._delivered = False
        start = self.watcher.last_revision + 1
        body = {"create_request": {"key": _b64(self.watcher.prefix or "\0"),
                                   "range_end": _prefix_end(self.watcher.prefix),
                                   "start_revision": str(start)}}
        conn = self.client.connection(ep, self.client.request_timeout)
        with self._lock:
            if self.watcher.closed:
                return True
            self._conn = conn
        conn.request("POST", "/v3/watch", json.dumps(body), self.client.headers(ep))
        resp = conn.getresponse()
        if resp.status != 200:
            code, message = error_of(json.loads(resp.read() or b"{}"))
            raise EtcdError(code, message)
        _keepalive(conn.sock)
        conn.sock.settimeout(None)  # idle watches are normal; TCP keepalive finds dead peers
        while True:
            line = resp.readline()
            if not line:
                return self.watcher.closed
            msg = json.loads(line)
            if "error" in msg:
                code, message = error_of(msg)
                raise EtcdError(code, message)
            result = msg.get("result") or {}
            compact = int(result.get("compact_revision", 0))
            if compact:
                raise Compacted(self.watcher.last_revision + 1, compact)
            if result.get("canceled"):
                raise EtcdError(0, result.get("cancel_reason") or "watch canceled by etcd")
            events = [_event(e) for e in result.get("events") or []]
            if events:
                self.watcher.push(events)
            self._delivered = True


def _event(item: dict[str, Any]) -> WatchEvent:
    kv = item.get("kv") or {}
    key, rev = _unb64(kv.get("key")), int(kv.get("mod_revision", 0))
    if item.get("type") == "DELETE":
        return WatchEvent(EventType.DELETE, key, None, rev)
    return WatchEvent(EventType.PUT, key, _unb64(kv.get("value")), rev,
                      int(kv.get("create_revision", 0)))


def _keepalive(sock: socket.socket | None) -> None:
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
