"""A stand-in for Keystone's identity API v3, just what the driver asks (no Keystone is
installed here): `POST /v3/auth/tokens` (password method; answers 201 with an
X-Subject-Token for the one account it knows, 401 otherwise) and `GET /v3/projects` (the
projects it was given, for that token only). It records the requests it served."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class KeystoneStandIn:
    def __init__(self, projects: list[dict], username: str = "neutron",
                 password: str = "secret") -> None:
        self.projects, self.username, self.password = projects, username, password
        self.token = uuid.uuid4().hex
        self.requests: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # noqa: D102 - quiet
                pass

            def _reply(self, code: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                standin.requests.append(f"POST {self.path}")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["auth"]["identity"]["password"]["user"]
                if (self.path != "/v3/auth/tokens" or user["name"] != standin.username
                        or user["password"] != standin.password):
                    return self._reply(401, {"error": {"code": 401}})
                return self._reply(201, {"token": {}}, {"X-Subject-Token": standin.token})

            def do_GET(self):  # noqa: N802
                standin.requests.append(f"GET {self.path}")
                if self.headers.get("X-Auth-Token") != standin.token:
                    return self._reply(401, {"error": {"code": 401}})
                if self.path.split("?")[0] != "/v3/projects":
                    return self._reply(404, {"error": {"code": 404}})
                return self._reply(200, {"projects": standin.projects})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> KeystoneStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
