"""The HTTP side of the `etcdv3` backend: JSON calls to an etcd 3.x cluster's v3 gateway.

`EtcdClient.call(path, body)` POSTs one request (keys and values base64, int64s as strings)
with a small client of our own on the standard library's `http.client`, because the things
that matter in production are exactly the things a generic client hides:

- **Short timeouts, retries and fail-over.** Each request gets `request_timeout` (1.5 s);
  on a timeout, a refused connection or a retryable etcd error (Unavailable, leader changed,
  no leader, request timed out) the next member is tried, with a short back-off once every
  member has failed. Killing a leader stalls writes 1.5-2 s; a long timeout would hang a
  request 7 s. When no member answers for `unreachable_after` (4 s), `Unreachable` is raised.
- **Auth.** With a username the client authenticates per member (etcd's simple tokens are
  local to the member that issued them) and re-authenticates when a token is rejected;
  authenticating fails over and retries like any request.
- **TLS.** An `ssl.SSLContext` from the CA / client certificate / key files.

Connections are pooled per member. What flows out: the parsed answer, `EtcdError` (an answer
that is an error, with its gRPC code) or `Unreachable`. The watch stream (etcd.py) borrows
`connection()`, `headers()`, `endpoint()` and `fail_over()`.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence

from .kv import DatastoreError, Unreachable

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 1.5
UNREACHABLE_AFTER = 4.0

# gRPC status codes etcd returns through the gateway.
NOT_FOUND, DEADLINE, UNAVAILABLE, UNAUTHENTICATED = 5, 4, 14, 16
_RETRY_MESSAGES = ("leader changed", "no leader", "timed out", "not capable",
                   "too many requests", "raft", "stopped")


class EtcdError(DatastoreError):
    """An error etcd answered with (not a connectivity failure)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Endpoint:
    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise DatastoreError(f"etcd endpoint {url!r} is not an http(s) URL")
        self.url = url
        self.tls = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port or 2379
        self.token: str | None = None
        self.idle: list[http.client.HTTPConnection] = []


def _tls_context(ca_cert_file: str | None, cert_file: str | None,
                 key_file: str | None) -> ssl.SSLContext:
    """The TLS context from the CA, certificate and key files. A file that is missing or
    cannot be used is named in the error, with the setting that names it."""
    files = (("etcdCACertFile (ETCD_CA_CERT_FILE)", ca_cert_file),
             ("etcdCertFile (ETCD_CERT_FILE)", cert_file),
             ("etcdKeyFile (ETCD_KEY_FILE)", key_file))
    for setting, path in files:
        if path and not os.path.isfile(path):
            raise DatastoreError(f"{setting}: {path}: no such file")
    try:
        context = ssl.create_default_context(cafile=ca_cert_file)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise DatastoreError(f"{files[0][0]}: {ca_cert_file}: cannot be used: {err}") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError, ValueError) as err:
            raise DatastoreError(f"etcdCertFile / etcdKeyFile (ETCD_CERT_FILE / ETCD_KEY_FILE):"
                                 f" {cert_file}, {key_file}: cannot be used: {err}") from None
    return context


class EtcdClient:
    """JSON-over-HTTP calls to an etcd cluster with timeouts, fail-over and auth."""

    def __init__(self, endpoints: Sequence[str], *, ca_cert_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None,
                 username: str | None = None, password: str | None = None,
                 request_timeout: float = REQUEST_TIMEOUT,
                 unreachable_after: float = UNREACHABLE_AFTER) -> None:
        if not endpoints:
            raise DatastoreError("no etcd endpoints configured")
        self.endpoints = [Endpoint(u) for u in endpoints]
        self.request_timeout = request_timeout
        self.unreachable_after = unreachable_after
        self.username, self.password = username, password
        self._ssl: ssl.SSLContext | None = None
        if any(e.tls for e in self.endpoints) or ca_cert_file or cert_file:
            self._ssl = _tls_context(ca_cert_file, cert_file, key_file)
        self._lock = threading.Lock()
        self._current = 0
        self._closed = False

    # ---- connections ---------------------------------------------------------------------

    def connection(self, ep: Endpoint, timeout: float) -> http.client.HTTPConnection:
        if ep.tls:
            return http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout,
                                               context=self._ssl)
        return http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)

    def _take(self, ep: Endpoint) -> http.client.HTTPConnection:
        with self._lock:
            if ep.idle:
                return ep.idle.pop()
        return self.connection(ep, self.request_timeout)

    def _give(self, ep: Endpoint, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(ep.idle) < 8:
                ep.idle.append(conn)
                return
        conn.close()

    def endpoint(self) -> Endpoint:
        with self._lock:
            return self.endpoints[self._current]

    def fail_over(self, ep: Endpoint) -> None:
        with self._lock:
            if self.endpoints[self._current] is ep:
                self._current = (self._current + 1) % len(self.endpoints)
            idle, ep.idle = ep.idle, []
        for conn in idle:
            conn.close()

    def headers(self, ep: Endpoint) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.username and ep.token is None:
            self._authenticate(ep)
        if ep.token:
            headers["Authorization"] = ep.token
        return headers

    def _authenticate(self, ep: Endpoint) -> None:
        status, data = self._send(ep, "/v3/auth/authenticate",
                                  {"name": self.username, "password": self.password}, auth=False)
        if status != 200:
            code, message = error_of(data)
            raise EtcdError(code, f"etcd authentication as {self.username!r} failed: {message}")
        ep.token = data.get("token")

    def _send(self, ep: Endpoint, path: str, body: dict, auth: bool = True
              ) -> tuple[int, dict]:
        headers = self.headers(ep) if auth else {"Content-Type": "application/json"}
        conn = self._take(ep)
        try:
            conn.request("POST", path, json.dumps(body), headers)
            resp = conn.getresponse()
            raw = resp.read()
        except BaseException:
            conn.close()
            raise
        self._give(ep, conn)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"error": raw.decode(errors="replace").strip(), "code": 0}
        return resp.status, data

    # ---- calls ---------------------------------------------------------------------------

    def call(self, path: str, body: dict) -> dict:
        """POST `body` to `path` on a live member; the parsed answer. Raises EtcdError for an
        answer that is an error, Unreachable when no member answers in time."""
        deadline = time.monotonic() + self.unreachable_after
        tried, delay, last, reauth = 0, 0.05, "", 0
        refused_tls = ""  # a TLS alert from the server: the reason, whichever attempt gave it
        while True:
            if self._closed:
                raise DatastoreError("the etcd client is closed")
            ep = self.endpoint()
            try:
                status, data = self._send(ep, path, body)
                if status == 200:
                    return data
                code, message = error_of(data)
                if code == UNAUTHENTICATED and self.username and "token" in message \
                        and reauth < 3:
                    ep.token, reauth = None, reauth + 1
                    continue
                raise EtcdError(code, message)
            except EtcdError as err:
                # etcd's answer to the request, or to authenticating with this member (which
                # goes through raft, so it fails like a write while a leader is elected).
                if not retryable(err):
                    raise
                last = f"{ep.url}: {err}"
            except (OSError, http.client.HTTPException) as err:
                last = f"{ep.url}: {err or type(err).__name__}"
                # With TLS 1.3 the server's alert (a missing client certificate) races the
                # close: an attempt may see only EOF. Keep the alert for the final message.
                if isinstance(err, ssl.SSLError) and not isinstance(err, ssl.SSLEOFError):
                    refused_tls = last
            log.debug("etcd request %s failed: %s", path, last)
            self.fail_over(ep)
            tried += 1
            if time.monotonic() >= deadline:
                raise Unreachable(f"etcd did not answer within {self.unreachable_after:g}s "
                                  f"({refused_tls or last})")
            if tried % len(self.endpoints) == 0:
                time.sleep(min(delay * (1 + random.random()), max(0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.5)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for ep in self.endpoints for c in ep.idle]
            for ep in self.endpoints:
                ep.idle = []
        for conn in conns:
            conn.close()


def error_of(data: dict) -> tuple[int, str]:
    err = data.get("error")
    if isinstance(err, dict):  # stream messages nest it
        return int(err.get("grpc_code", err.get("code", 0))), str(err.get("message", err))
    return int(data.get("code", 0)), str(data.get("message") or err or data)


def retryable(err: EtcdError) -> bool:
    """An error another member (or the same one, a moment later) may not give."""
    return err.code in (UNAVAILABLE, DEADLINE) or any(m in str(err) for m in _RETRY_MESSAGES)
