"""`calicoctl cluster diags`: one archive with what it takes to debug a Calico cluster here.

Calico's command collects through kubectl (pods, their logs, `calico-node` diagnostics). We
have no Kubernetes, so the same content comes from where it lives here:

    calico-diagnostics-<UTC time>/
      cluster/<plural>.yaml, .txt   every kind, as `calicoctl get -o yaml` and `-o wide`
      ipam/keys.json                every key under /calico/ipam/v2/ (blocks, affinities,
                                    handles, config), values as stored
      felix/status.json             every key under /calico/felix/v2/ (each Felix's status and
                                    its endpoints' status)
      nodes/<dir>/...               per BIRD control socket found: `calicoctl node status`,
                                    `birdc show status|protocols all|route`
      host/...                      this host's (this namespace's) addresses, routes, rules,
                                    sysctls and the `inet calico` nftables table
      logs/...                      the newest --max-logs files per name under each --log-dir
                                    (*.log, the last 10 MiB of each), newer than --since
      host/checksystem.txt          `calicoctl node checksystem` on this host (as root)
      version.txt                   calicoctl's and the cluster's versions, the datastore type
      errors.txt                    every step that failed, and why (the rest still runs)

Sockets and logs are searched for under `--log-dir` (repeatable; default /var/log/calico and
/var/run/calico): `bird.ctl`/`bird6.ctl` sockets and `*.log` files, so pointing it at a
`calico-lab` state directory collects every lab host. The archive is written to `--output`
(default the current directory); the temporary directory is removed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from calico import api
from calico.bgp.status import BirdUnavailable, bird_peers, run_birdc
from calico.datastore import kv

from . import goformat, tables
from .node import format_status
from .session import Session

DEFAULT_LOG_DIRS = ("/var/log/calico", "/var/run/calico")
LOG_TAIL = 10 << 20
HOST_COMMANDS = {
    "addresses.txt": ["ip", "-d", "address", "show"],
    "routes-ipv4.txt": ["ip", "-4", "route", "show", "table", "all"],
    "routes-ipv6.txt": ["ip", "-6", "route", "show", "table", "all"],
    "rules.txt": ["ip", "rule", "show"],
    "nftables-calico.txt": ["nft", "list", "table", "inet", "calico"],
    "sysctl-forwarding.txt": ["sysctl", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"],
}


class Collector:
    """Writes files under `root`; a failing step is recorded, never fatal."""

    def __init__(self, root: str, emit: Callable[[str], None]) -> None:
        self.root, self.emit, self.errors = root, emit, []

    def write(self, rel: str, text: str) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def step(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as err:  # a diagnostics step must not stop the others
            self.errors.append(f"{what}: {err}")
            self.emit(f"ERROR {what}: {err}")


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(f"exit code {proc.returncode}: {why[0] if why else ''}")
    return proc.stdout


def collect_resources(session: Session, out: Collector) -> None:
    ctx = tables.Context()
    for kind, cls in sorted(api.KINDS.items()):
        def one(kind: str = kind, plural: str = cls.PLURAL,
                namespaced: bool = cls.NAMESPACED) -> None:
            listed = session.client.list(kind)
            items = [goformat.order_resource(r.to_dict()) for r in listed.items]
            obj = goformat.list_object(kind, items, str(listed.revision))
            out.write(f"cluster/{plural}.yaml", goformat.to_yaml(obj))
            heads = tables.headings_for(kind, True, namespaced)
            out.write(f"cluster/{plural}.txt", tables.render(kind, items, heads, ctx))
        out.step(f"collecting {kind} resources", one)


def collect_keys(session: Session, out: Collector) -> None:
    for prefix, rel in (("/calico/ipam/v2/", "ipam/keys.json"),
                        ("/calico/felix/v2/", "felix/status.json")):
        def one(prefix: str = prefix, rel: str = rel) -> None:
            items, revision = session.backend.list(prefix)
            out.write(rel, json.dumps({"revision": revision, "keys": {
                i.key: _json_or_text(i.value) for i in items}}, indent=2) + "\n")
        out.step(f"reading {prefix}", one)


def _json_or_text(value: str | None) -> Any:
    try:
        return json.loads(value or "")
    except ValueError:
        return value


def _found(dirs: list[str], match: Callable[[str, os.stat_result], bool]) -> list[str]:
    paths = []
    for top in dirs:
        for root, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if match(name, st):
                    paths.append(path)
    return sorted(paths)


def collect_bird(dirs: list[str], out: Collector) -> None:
    sockets = _found(dirs, lambda n, st: n in ("bird.ctl", "bird6.ctl")
                     and stat.S_ISSOCK(st.st_mode))
    if not sockets:
        out.errors.append(f"no BIRD control socket under {', '.join(dirs) or '-'}")
        out.emit(f"No BIRD control socket under {', '.join(dirs) or '-'}")
    for sock in sockets:
        rel = "nodes/" + os.path.relpath(os.path.dirname(sock), "/").replace("/", "_")
        out.emit(f"Collecting BGP status from {sock}...")

        def one(sock: str = sock, rel: str = rel) -> None:
            try:
                status = format_status(bird_peers(sock))
            except BirdUnavailable as err:
                raise RuntimeError(f"BIRD does not answer on {sock}: {err}") from None
            out.write(f"{rel}/node-status.txt", status + "\n")
            for what in ("status", "protocols all", "route"):
                out.write(f"{rel}/birdc-show-{what.replace(' ', '-')}.txt",
                          run_birdc(sock, "show", *what.split()))
        out.step(f"collecting BIRD state from {sock}", one)


def collect_host(out: Collector) -> None:
    for rel, argv in HOST_COMMANDS.items():
        out.step(f"running {' '.join(argv)}",
                 lambda rel=rel, argv=argv: out.write(f"host/{rel}", _run(argv)))
    if os.geteuid() == 0:  # the probes need to make network namespaces
        def checks() -> None:
            from .checksystem import checksystem

            lines: list[str] = []
            checksystem(lines.append)
            out.write("host/checksystem.txt", "\n".join(lines) + "\n")
        out.step("checking kernel features", checks)


def collect_version(session: Session, out: Collector) -> None:
    from .crud import CLIENT_VERSION

    def one() -> None:
        cfg = session.datastore_config
        lines = [f"Client Version:    {CLIENT_VERSION}", f"Datastore type:    {cfg.type}"]
        try:
            spec = session.client.get("ClusterInformation", "default", None).to_dict()["spec"]
            lines.append(f"Cluster Version:   {spec.get('calicoVersion', 'unknown')}")
            lines.append(f"Cluster Type:      {spec.get('clusterType', 'unknown')}")
        except kv.KeyNotFound:
            lines.append("Cluster Version:   unknown (no ClusterInformation)")
        out.write("version.txt", "\n".join(lines) + "\n")
    out.step("reading versions", one)


def collect_logs(dirs: list[str], out: Collector, max_logs: int, since: float) -> None:
    cutoff = time.time() - since if since > 0 else 0.0
    logs = _found(dirs, lambda n, st: n.endswith(".log") and stat.S_ISREG(st.st_mode)
                  and st.st_mtime >= cutoff)
    by_name: dict[str, list[str]] = {}
    for path in logs:
        by_name.setdefault(os.path.basename(path), []).append(path)
    for paths in by_name.values():
        for path in sorted(paths, key=os.path.getmtime, reverse=True)[:max_logs]:
            def one(path: str = path) -> None:
                with open(path, "rb") as f:
                    f.seek(max(0, os.path.getsize(path) - LOG_TAIL))
                    data = f.read()
                out.write("logs/" + os.path.relpath(path, "/"), data.decode(errors="replace"))
            out.step(f"copying {path}", one)


def parse_since(text: str) -> float:
    """Calico's --since: a duration in s, m or h ("0s": everything)."""
    units = {"s": 1, "m": 60, "h": 3600}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"invalid --since {text!r}: a whole number of seconds (s), "
                         "minutes (m) or hours (h), e.g. 30m")
    return int(text[:-1]) * units[text[-1]]


def diags(session: Session, log_dirs: list[str], output: str, max_logs: int,
          since: str) -> str:
    """Collect everything, write the archive and return its path."""
    since_s = parse_since(since)
    if max_logs < 0:
        raise ValueError(f"invalid --max-logs {max_logs}: must not be negative")
    emit = click.echo
    emit("==== Begin collecting diagnostics. ====")
    name = "calico-diagnostics-" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    with tempfile.TemporaryDirectory() as tmp:
        emit(f"Created temporary directory: {tmp}")
        out = Collector(os.path.join(tmp, name), emit)
        emit("Collecting Calico resources...")
        collect_version(session, out)
        collect_resources(session, out)
        emit("Collecting IPAM and Felix status from the datastore...")
        collect_keys(session, out)
        dirs = [d for d in log_dirs if os.path.isdir(d)]
        collect_bird(dirs, out)
        emit("Collecting this host's addresses, routes and nftables...")
        collect_host(out)
        emit(f"Collecting logs from {', '.join(dirs) or '(no log directory)'}...")
        collect_logs(dirs, out, max_logs, since_s)
        out.write("errors.txt", "".join(f"{e}\n" for e in out.errors))
        archive = os.path.join(output, f"{name}.tar.gz")
        with tarfile.open(archive + ".tmp", "w:gz") as tar:
            tar.add(out.root, arcname=name)
        os.replace(archive + ".tmp", archive)
    emit(f"Diagnostic bundle available at {archive}")
    return archive


@click.group()
def cluster() -> None:
    """Access cluster information."""


@cluster.command("diags")
@click.option("-c", "--config", default="/etc/calico/calicoctl.cfg", show_default=True,
              help="Path to the calicoctl config file.")
@click.option("--since", default="0s", show_default=True,
              help="Only logs newer than this (s, m or h); 0s: all.")
@click.option("--max-logs", default=5, show_default=True,
              help="At most this many log files of each name.")
@click.option("--log-dir", "log_dirs", multiple=True,
              help="Where to look for logs and BIRD sockets (repeatable; default "
              "/var/log/calico and /var/run/calico).")
@click.option("--output", default=".", show_default=True,
              help="Directory to write the archive to.")
@click.option("--focus-nodes", default=None, help="Accepted for compatibility.")
@click.option("--max-parallelism", default=10, help="Accepted for compatibility.")
@click.option("--allow-version-mismatch", is_flag=True, help="Accepted for compatibility.")
@click.option("--skip-temp-dir-cleanup", is_flag=True, help="Accepted for compatibility.")
def diags_cmd(config: str, since: str, max_logs: int, log_dirs: tuple[str, ...], output: str,
              focus_nodes: str | None, max_parallelism: int, allow_version_mismatch: bool,
              skip_temp_dir_cleanup: bool) -> None:
    """Collect resources, node status, Felix and BIRD state and logs into a .tar.gz."""
    from .main import _run as run_cmd

    run_cmd(diags, Session.from_config(config), list(log_dirs or DEFAULT_LOG_DIRS), output,
            max_logs, since)

