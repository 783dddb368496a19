"""Running the plugin executables exactly as a runtime does: CNI_* in the environment, the
network configuration on stdin, the answer (result or CNI error) on stdout.

Also a local datastore with IP pools for the plugins to use (no root needed for that part).
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend

BIN_DIR = os.path.dirname(sys.executable)
CALICO = os.path.join(BIN_DIR, "calico")
CALICO_IPAM = os.path.join(BIN_DIR, "calico-ipam")
POOL_V4 = "10.77.0.0/16"
POOL_V6 = "fd00:77::/64"


@dataclass
class Answer:
    rc: int
    doc: Any  # the parsed stdout (None when empty)
    stdout: str
    stderr: str

    @property
    def error(self) -> dict:
        assert self.rc != 0, f"expected a CNI error, got rc 0: {self.stdout}"
        assert isinstance(self.doc, dict) and "code" in self.doc, self.stdout
        return self.doc


def run(binary: str, command: str | None, conf: dict | bytes | str | None = None, *,
        container_id: str | None = "c0ffee01", netns: str | None = "/run/netns/none",
        ifname: str | None = "eth0", cni_args: str | None = None,
        path: str | None = "/usr/lib/cni", env: dict[str, str] | None = None,
        timeout: float = 60, in_process: bool = False) -> Answer:
    """One invocation; a None argument leaves that variable out of the environment. With
    `in_process`, the same skeleton runs in this process (the environment is passed, not
    set): for the many small error cases, where a process start per case costs too much."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    for key in ("DATASTORE_TYPE", "ETCD_ENDPOINTS", "CALICO_DATASTORE_PATH"):
        full.pop(key, None)
    for key, value in (("CNI_COMMAND", command), ("CNI_CONTAINERID", container_id),
                       ("CNI_NETNS", netns), ("CNI_IFNAME", ifname), ("CNI_ARGS", cni_args),
                       ("CNI_PATH", path)):
        if value is not None:
            full[key] = value
    full.update(env or {})
    if isinstance(conf, dict):
        stdin = json.dumps(conf).encode()
    elif isinstance(conf, str):
        stdin = conf.encode()
    else:
        stdin = conf or b""
    if in_process:
        from calico.cni import ipam_plugin, plugin
        from calico.cni.spec import run_plugin

        handlers = plugin.HANDLERS if binary == CALICO else ipam_plugin.HANDLERS
        buf = io.StringIO()
        rc = run_plugin(handlers, env=full, stdin=stdin, stdout=buf)
        proc = subprocess.CompletedProcess([binary], rc, buf.getvalue().encode(), b"")
    else:
        proc = subprocess.run([binary], input=stdin, env=full, capture_output=True,
                              timeout=timeout)
    out = proc.stdout.decode()
    try:
        doc = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        doc = None
    return Answer(proc.returncode, doc, out, proc.stderr.decode())


def make_store(path: str, v4: str | None = POOL_V4, v6: str | None = POOL_V6,
               v4_block: int = 26) -> ResourceClient:
    client = ResourceClient(LocalBackend(path))
    for name, cidr, block in (("pool-v4", v4, v4_block), ("pool-v6", v6, 122)):
        if cidr:
            client.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                           "metadata": {"name": name},
                           "spec": {"cidr": cidr, "blockSize": block}})
    return client


def netconf(store: str, tmp: str, *, name: str = "calico-net", version: str = "1.0.0",
            ipam: dict | None = None, **extra: Any) -> dict:
    conf = {"cniVersion": version, "name": name, "type": "calico", "nodename": "node-1",
            "datastore_type": "local", "datastore_path": store,
            "ipam_lock_file": os.path.join(tmp, "ipam.lock"),
            "ipam": ipam or {"type": "calico-ipam"}}
    conf.update(extra)
    return conf


def handle_addresses(client: ResourceClient, handle: str) -> list[str]:
    """Addresses the IPAM blocks hold for `handle`."""
    found = []
    items, _ = client.backend.list("/calico/ipam/v2/assignment/")
    for kv in items:
        block = json.loads(kv.value)
        attrs = block.get("attributes") or []
        base = ipaddress.ip_network(block["cidr"]).network_address
        for ordinal, index in enumerate(block.get("allocations") or []):
            if index is not None and attrs[index].get("handle_id") == handle:
                found.append(str(base + ordinal))
    return found


def handle_exists(client: ResourceClient, handle: str) -> bool:
    return client.backend.get(f"/calico/ipam/v2/handle/{handle}") is not None


def endpoints(client: ResourceClient) -> list:
    return client.list("WorkloadEndpoint").items
