"""A real Neutron server for tests, and a small JSON client for its API.

`NeutronServer(venv, state_dir, datastore_path, ...)` writes neutron.conf / ml2_conf.ini
(recipe: shared/recipes/neutron.md; noauth, SQLite, ML2 with type drivers local,flat and our
mechanism driver `calico` on the local datastore, or with the `[calico]` options given in
`calico=`, further sections in `extra=` and ML2 extension drivers in
`extension_drivers=`, e.g. "port_security,dns" for networks' dns_domain) and starts tests/openstack/
neutron_launcher.py with the venv's Python on 127.0.0.1 and a free port. `stop()` terminates
it; `kill()` is SIGKILL (a crashed server: its election lease is not released).

`NeutronAPI(url)` speaks the Networking API v2.0 as an admin in project `fake_project_id`.

`run_sdk(venv, script, url, *args)` runs one of the openstacksdk scripts here (sdk_main.py)
with the venv's Python and returns the JSON line it printed; a failure raises
AssertionError with the script's stderr.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_venv() -> Path:
    """scripts/neutron-venv.sh: idempotent, cached outside the tree; returns the venv."""
    out = subprocess.run(["bash", str(REPO / "scripts" / "neutron-venv.sh")], check=True,
                         stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def run_sdk(venv: Path, script: str, url: str, *args: str) -> dict:
    proc = subprocess.run([str(venv / "bin" / "python"), "-W", "ignore", str(HERE / script),
                           url, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args[:1])} failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class NeutronServer:
    def __init__(self, venv: Path, state_dir: Path, datastore_path: str, *,
                 resync_interval: float = 2.0, election_ttl: int = 3, name: str = "neutron-a",
                 db_dir: Path | None = None, calico: dict[str, str] | None = None,
                 extra: str = "", service_plugins: str = "",
                 extension_drivers: str = "port_security") -> None:
        self.venv, self.dir = venv, state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "state" / "lock").mkdir(parents=True, exist_ok=True)
        paste = venv / "etc" / "neutron" / "api-paste.ini"
        (self.dir / "api-paste.ini").write_text(paste.read_text())
        db = (db_dir or self.dir) / "neutron.db"
        self.db = db
        if calico is None:
            calico = {"datastore_type": "local", "datastore_path": datastore_path}
        calico_lines = "\n".join(f"{k} = {v}" for k, v in calico.items())
        (self.dir / "neutron.conf").write_text(f"""[DEFAULT]
bind_host = 127.0.0.1
bind_port = {self.port}
host = {name}
core_plugin = ml2
service_plugins = {service_plugins}
auth_strategy = noauth
transport_url = fake:/
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_paste_config = {self.dir}/api-paste.ini
state_path = {self.dir}/state
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
debug = false
log_file = {self.dir}/neutron.log
[database]
connection = sqlite:///{db}
[oslo_concurrency]
lock_path = {self.dir}/state/lock
[oslo_messaging_notifications]
driver = noop
""")
        (self.dir / "ml2_conf.ini").write_text(f"""[ml2]
type_drivers = local,flat
tenant_network_types = local
mechanism_drivers = calico
extension_drivers = {extension_drivers}
[ml2_type_flat]
flat_networks = *
[securitygroup]
enable_security_group = true
firewall_driver = noop
[calico]
{calico_lines}
resync_interval = {resync_interval}
election_ttl = {election_ttl}
elector_name = {name}
{extra}""")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> NeutronServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV",
                                                                          "PYTHON"))}
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "python"), str(HERE / "neutron_launcher.py"),
             str(self.dir), str(self.port)],
            cwd=str(self.dir), env=env, stdout=subprocess.PIPE,
            stderr=open(self.dir / "stderr.log", "w"), text=True, start_new_session=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            self.stop()
            raise RuntimeError(f"Neutron did not start: {self.logs()[-3000:]}")
        api = NeutronAPI(self.url)
        while time.monotonic() < deadline:
            try:
                api.get("/v2.0/networks")
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Neutron at {self.url} did not answer: {self.logs()[-3000:]}")

    def logs(self) -> str:
        out = ""
        for name in ("stderr.log", "neutron.log"):
            path = self.dir / name
            if path.exists():
                out += f"--- {name}\n" + path.read_text(errors="replace")[-20000:]
        return out

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class APIError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class NeutronAPI:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as err:
            raise APIError(err.code, err.read().decode(errors="replace")) from None
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self._call("PUT", path, body)

    def delete(self, path: str) -> None:
        self._call("DELETE", path)
