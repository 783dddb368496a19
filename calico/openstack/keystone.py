"""Project names and parents from Keystone, for the endpoint labels
`projectcalico.org/openstack-project-name` and `...-project-parent-id`.

Only when a Keystone endpoint is configured: `[keystone_authtoken] auth_url` (with
`username`, `password`, `project_name`, `user_domain_name`, `project_domain_name`, the
section Neutron's own Keystone middleware reads). Without one the driver has no `Projects`
and the labels are simply not written (the project-id label always is) — silently, as
networking-calico would have nothing to ask either.

`Projects.get(project_id)` answers from a cache; on a miss it lists every project the
account can see (`GET /v3/projects`, with a token from `POST /v3/auth/tokens`, password
method) and caches them all, at most once per `min_interval` seconds, and flushes the cache
when it holds `cache_max` projects (networking-calico's `project_name_cache_max`). A Keystone
that fails is logged once per failure kind; the labels come back with the next successful
lookup (the resync rewrites the endpoints).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from .endpoints import Project

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeystoneAuth:
    auth_url: str
    username: str
    password: str
    project_name: str | None = None
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"

    @property
    def v3(self) -> str:
        url = self.auth_url.rstrip("/")
        return url if url.endswith("/v3") else url + "/v3"

    def token_request(self) -> dict:
        identity = {"methods": ["password"], "password": {"user": {
            "name": self.username, "password": self.password,
            "domain": {"name": self.user_domain_name}}}}
        auth: dict = {"identity": identity}
        if self.project_name:
            auth["scope"] = {"project": {"name": self.project_name,
                                         "domain": {"name": self.project_domain_name}}}
        return {"auth": auth}


class Projects:
    """Project id -> Project (name, parent id), from Keystone (see above). Thread-safe."""

    def __init__(self, auth: KeystoneAuth, *, cache_max: int = 100, min_interval: float = 10.0,
                 timeout: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.auth, self.cache_max, self.min_interval = auth, cache_max, min_interval
        self.timeout, self._clock = timeout, clock
        self._cache: dict[str, Project] = {}
        self._listed_at: float | None = None
        self._last_error: str | None = None
        self._lock = threading.Lock()

    def get(self, project_id: str | None) -> Project | None:
        if not project_id:
            return None
        with self._lock:
            if project_id in self._cache:
                return self._cache[project_id]
            now = self._clock()
            if self._listed_at is not None and now - self._listed_at < self.min_interval:
                return None
            self._listed_at = now
            try:
                projects = self._list()
            except (OSError, ValueError, KeyError) as err:
                if str(err) != self._last_error:
                    self._last_error = str(err)
                    log.warning("Keystone at %s: listing projects failed (%s); endpoints "
                                "go without project name labels until it answers",
                                self.auth.v3, err)
                return None
            self._last_error = None
            if len(self._cache) + len(projects) > self.cache_max:
                self._cache.clear()
            self._cache.update(projects)
            return self._cache.get(project_id)

    def _request(self, method: str, path: str, body: dict | None = None,
                 token: str | None = None) -> tuple[dict, str | None]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["X-Auth-Token"] = token
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.auth.v3 + path, data=data, method=method,
                                     headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read().decode() or "{}"), resp.headers.get("X-Subject-Token")

    def _list(self) -> dict[str, Project]:
        _, token = self._request("POST", "/auth/tokens", self.auth.token_request())
        if not token:
            raise ValueError("Keystone returned no X-Subject-Token")
        doc, _ = self._request("GET", "/projects", token=token)
        return {p["id"]: Project(p.get("name") or "", p.get("parent_id"))
                for p in doc["projects"]}
