"""EtcdClient against a scripted stand-in for etcd's JSON gateway: which failures are retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from calico.datastore.etcdclient import EtcdClient, EtcdError


class _Gateway(ThreadingHTTPServer):
    """Answers each POST with the next scripted (status, body) for its path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: dict[str, list[tuple[int, dict]]] = {}
        self.seen: list[tuple[str, str | None]] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Gateway

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        status, body = self.server.script[self.path].pop(0)
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[_Gateway]:
    server = _Gateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(gateway: _Gateway, **options: object) -> EtcdClient:
    return EtcdClient([f"http://127.0.0.1:{gateway.server_address[1]}"], unreachable_after=2.0,
                      **options)


OK = (200, {"header": {"revision": "7"}, "kvs": []})


def test_authentication_during_a_leader_election_is_retried(gateway: _Gateway) -> None:
    # Authenticate goes through raft: while a new leader is elected etcd answers "leader
    # changed"; that is as retryable for the token as for the request it is for.
    gateway.script = {
        "/v3/auth/authenticate": [(503, {"code": 14, "message": "etcdserver: leader changed"}),
                                  (200, {"token": "tok"})],
        "/v3/kv/range": [OK],
    }
    client = _client(gateway, username="root", password="pw")
    assert client.call("/v3/kv/range", {"key": "YQ=="})["header"]["revision"] == "7"
    assert gateway.seen[-1] == ("/v3/kv/range", "tok")


def test_a_wrong_password_is_not_retried(gateway: _Gateway) -> None:
    gateway.script = {"/v3/auth/authenticate": [
        (400, {"code": 3, "message": "etcdserver: authentication failed, invalid user ID or "
                                     "password"})]}
    client = _client(gateway, username="root", password="bad")
    with pytest.raises(EtcdError, match="authentication as 'root' failed"):
        client.call("/v3/kv/range", {"key": "YQ=="})
    assert len(gateway.seen) == 1


def test_an_expired_token_is_renewed(gateway: _Gateway) -> None:
    gateway.script = {
        "/v3/auth/authenticate": [(200, {"token": "t1"}), (200, {"token": "t2"})],
        "/v3/kv/range": [(401, {"code": 16, "message": "etcdserver: invalid auth token"}), OK],
    }
    client = _client(gateway, username="root", password="pw")
    client.call("/v3/kv/range", {"key": "YQ=="})
    assert gateway.seen[-1] == ("/v3/kv/range", "t2")
